"""Matching with the real apiserver: matchLabels from the involved objects' cache, --no-cross-namespace-refs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from gitops_mesh.bus.envelope import EventKind, ObjectRef, Severity, build_event
from gitops_mesh.bus.topics import Topic
from gitops_mesh.kube import KubeClient
from tests.integration.conftest import eventually
from tests.integration.notification.conftest import Bus, Controller, applied, make_alert, make_provider, wait_for
from tests.support.sink import Sink

pytestmark = pytest.mark.stack

GIT_API = "source.toolkit.fluxcd.io/v1"


async def test_match_labels_come_from_the_involved_object(
    kube: KubeClient,
    namespace: str,
    bus: Bus,
    sinks: Callable[..., Awaitable[Sink]],
    controller_factory: Callable[..., Awaitable[Controller]],
) -> None:
    sink = await sinks()
    for name, labels in (("team-a", {"team": "a"}), ("team-b", {"team": "b"})):
        await kube.create(
            {
                "apiVersion": GIT_API,
                "kind": "GitRepository",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "spec": {"url": "https://example.com/repo.git", "interval": "10m"},
            }
        )
    await make_provider(kube, namespace, "hook", type="generic", address=f"{sink.url}/hook")
    await make_alert(
        kube, namespace, "team-a", "hook", [{"kind": "GitRepository", "name": "*", "matchLabels": {"team": "a"}}]
    )
    ctl = await controller_factory()
    for name in ("team-b", "missing", "team-a"):
        event = build_event(
            kind=EventKind.ARTIFACT_READY,
            controller="source-controller",
            instance="sc-0",
            involved_object=ObjectRef(GIT_API, "GitRepository", namespace, name),
            severity=Severity.INFO,
            reason="NewArtifact",
            message=f"stored artifact for {name}",
            revision="main@sha1:" + "c" * 40,
        )
        await bus.publish(Topic.ARTIFACT_READY, event)
    await wait_for(lambda: len(sink.ok()) >= 1, 30, "the labelled repository's delivery", ctl)
    await asyncio.sleep(2)
    assert [r.json()["involvedObject"]["name"] for r in sink.requests] == ["team-a"]


async def test_no_cross_namespace_refs_refuses_events_of_other_namespaces(
    kube: KubeClient,
    namespace: str,
    bus: Bus,
    sinks: Callable[..., Awaitable[Sink]],
    controller_factory: Callable[..., Awaitable[Controller]],
) -> None:
    sink = await sinks()
    await make_provider(kube, namespace, "hook", type="generic", address=f"{sink.url}/hook")
    await make_alert(
        kube,
        namespace,
        "both",
        "hook",
        [{"kind": "Kustomization", "name": "*"}, {"kind": "Kustomization", "name": "*", "namespace": "elsewhere"}],
    )
    ctl = await controller_factory("--no-cross-namespace-refs=true")
    await bus.publish(Topic.APPLIED, applied("remote", "elsewhere"))
    await bus.publish(Topic.APPLIED, applied("local", namespace))
    await wait_for(lambda: len(sink.ok()) >= 1, 30, "the same-namespace delivery", ctl)

    async def warned() -> bool:
        events = await kube.list("v1", "Event", namespace=namespace)
        return any("cross-namespace references have been blocked" in e.get("message", "") for e in events.items)

    await eventually(warned, timeout=20)
    assert [r.json()["involvedObject"]["name"] for r in sink.requests] == ["local"]
