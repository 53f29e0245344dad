"""The main job through every process: commit → artifact → applied (in dependsOn order) → notified, and a
push announced through the Receiver applied and notified in turn."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Flow, content

pytestmark = pytest.mark.stack


async def test_first_commit_is_applied_in_order_and_notified(flow: Flow) -> None:
    sha = flow.repo.head()
    await flow.until_applied("infra", sha)
    await flow.until_applied("apps", sha)
    assert (await flow.configmap("settings")) == {"color": "blue"}
    assert (await flow.configmap("app-config")) == {"version": "1"}
    web = await flow.kube.get("apps/v1", "Deployment", "web", namespace=flow.namespace)
    assert web["status"].get("availableReplicas") == 2, "apps waits for health, so Ready means rolled out"
    # dependsOn: on the applied topic (one partition, so in order) infra comes before apps.
    await flow.until_on_bus("applied", "apps", sha)  # our observer may be a little behind the controllers
    applied = [e.involved_object.name for e in flow.bus.events if e.kind == "applied"]
    assert applied.index("infra") < applied.index("apps"), applied

    artifact = await flow.until_notified("GitRepository", "repo", sha)
    assert artifact[0].json()["reason"] == "NewArtifact"
    for name in ("infra", "apps"):
        (note,) = await flow.until_notified("Kustomization", name, sha)
        body = note.json()
        assert body["severity"] == "info"
        assert body["reason"] == "ReconciliationSucceeded"
        assert note.headers["Gotk-Component"] == "kustomize-controller"
        assert note.headers["X-Gotk-Event-Id"]
    assert not flow.repeats()


async def test_push_through_the_receiver_is_applied_and_notified(flow: Flow) -> None:
    sha = flow.push(content(2, color="green"), "version 2")
    await flow.call_receiver()
    await flow.until_applied("infra", sha, timeout=30)
    await flow.until_applied("apps", sha, timeout=30)
    assert (await flow.configmap("settings")) == {"color": "green"}
    assert (await flow.configmap("app-config")) == {"version": "2"}
    for kind, name in (("GitRepository", "repo"), ("Kustomization", "infra"), ("Kustomization", "apps")):
        await flow.until_notified(kind, name, sha)
    (apps,) = flow.notified("Kustomization", "apps", sha)
    assert f"ConfigMap/{flow.namespace}/app-config configured" in apps.json()["message"]
    assert not flow.repeats()
