"""Kafka stopped: the mesh still converges on its intervals (informers carry the news between
controllers); the events of what happened meanwhile reach the webhook once Kafka is back."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conftest import Flow, content
from tests.integration.bus.support import stack_kafka

pytestmark = pytest.mark.stack


@pytest.fixture
def git_interval() -> str:
    """Without Kafka there is no Receiver path: the GitRepository's own interval finds the commit."""
    return "3s"


async def test_converges_without_kafka_and_notifies_after(flow: Flow) -> None:
    await stack_kafka("stop")
    try:
        sha = flow.push(content(2, color="amber"), "version 2 while Kafka is down")
        await flow.until_applied("infra", sha, timeout=60)
        await flow.until_applied("apps", sha, timeout=60)
        assert (await flow.configmap("settings")) == {"color": "amber"}
        assert (await flow.configmap("app-config")) == {"version": "2"}
        await asyncio.sleep(1)
        assert not flow.notified("Kustomization", "apps", sha), "no way to the webhook while Kafka is down"
    finally:
        # Other tests need Kafka: always bring it back.
        await stack_kafka("start")

    for kind, name in (("GitRepository", "repo"), ("Kustomization", "infra"), ("Kustomization", "apps")):
        await flow.until_notified(kind, name, sha, timeout=90)
    assert not flow.repeats()
