"""Events, finalizers, leader election and a kwok-scheduled Deployment against the real stack."""

from __future__ import annotations

import asyncio
import time

import pytest

from gitops_mesh.errors import Conflict, NotFound
from gitops_mesh.kube import (
    EventRecorder,
    KubeClient,
    KubeObject,
    LeaderElector,
    add_finalizer,
    has_finalizer,
    remove_finalizer,
)
from tests.integration.conftest import eventually

pytestmark = pytest.mark.stack


async def events_for(kube: KubeClient, namespace: str, name: str) -> list[KubeObject]:
    listed = await kube.list("v1", "Event", namespace=namespace, field_selector=f"involvedObject.name={name}")
    return listed.items


async def test_events_are_aggregated(kube: KubeClient, namespace: str) -> None:
    obj = await kube.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "subject", "namespace": namespace}}
    )
    recorder = EventRecorder(kube, "test-controller", "instance-1")
    for _ in range(3):
        await recorder.normal(obj, "Progressing", "reconciliation in progress")
    await recorder.warning(obj, "BuildFailed", "kustomize build failed")

    events = {e["reason"]: e for e in await events_for(kube, namespace, "subject")}
    assert set(events) == {"Progressing", "BuildFailed"}
    progressing = events["Progressing"]
    assert progressing["count"] == 3
    assert progressing["type"] == "Normal"
    assert progressing["source"]["component"] == "test-controller"
    assert progressing["involvedObject"]["uid"] == obj["metadata"]["uid"]
    assert progressing["lastTimestamp"] >= progressing["firstTimestamp"]
    assert (events["BuildFailed"]["type"], events["BuildFailed"]["count"]) == ("Warning", 1)

    # An aggregated Event that disappeared (expired) is recreated rather than lost.
    await kube.delete("v1", "Event", progressing["metadata"]["name"], namespace=namespace)
    await recorder.normal(obj, "Progressing", "reconciliation in progress")
    again = [e for e in await events_for(kube, namespace, "subject") if e["reason"] == "Progressing"]
    assert [e["count"] for e in again] == [1]


async def test_event_recorder_never_raises(kube: KubeClient, namespace: str) -> None:
    nobody = kube.impersonate("nobody", namespace)  # may not create events
    obj: KubeObject = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": namespace}}
    await EventRecorder(nobody, "test-controller", "i").warning(obj, "Failed", "boom")
    assert await events_for(kube, namespace, "x") == []


async def test_finalizers(kube: KubeClient, namespace: str) -> None:
    obj = await kube.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "guarded", "namespace": namespace}}
    )
    guarded = await add_finalizer(kube, obj, "gitops.example.com/finalizer")
    assert has_finalizer(guarded, "gitops.example.com/finalizer")
    assert await add_finalizer(kube, guarded, "gitops.example.com/finalizer") is guarded

    # Computed from a stale read: refused, so a concurrent writer's list is never overwritten.
    with pytest.raises(Conflict):
        await add_finalizer(kube, obj, "other.example.com/finalizer")
    both = await add_finalizer(kube, guarded, "other.example.com/finalizer")
    assert both["metadata"]["finalizers"] == ["gitops.example.com/finalizer", "other.example.com/finalizer"]

    await kube.delete("v1", "ConfigMap", "guarded", namespace=namespace)
    deleting = await kube.get("v1", "ConfigMap", "guarded", namespace=namespace)
    assert deleting["metadata"]["deletionTimestamp"]
    deleting = await remove_finalizer(kube, deleting, "other.example.com/finalizer")
    assert deleting["metadata"]["finalizers"] == ["gitops.example.com/finalizer"]
    await remove_finalizer(kube, deleting, "gitops.example.com/finalizer")
    with pytest.raises(NotFound):
        await kube.get("v1", "ConfigMap", "guarded", namespace=namespace)
    # Removing from an object already gone is done, not an error.
    assert not has_finalizer(await remove_finalizer(kube, deleting, "gitops.example.com/finalizer"), "x")


async def test_leader_election_hands_over(kube: KubeClient, namespace: str) -> None:
    timeline: list[str] = []
    timings = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.3}

    def elector(identity: str) -> LeaderElector:
        return LeaderElector(
            kube,
            namespace,
            "controller-leader",
            identity,
            **timings,
            on_started_leading=lambda: timeline.append(f"{identity}+"),
            on_stopped_leading=lambda: timeline.append(f"{identity}-"),
        )

    a, b, c = elector("a"), elector("b"), elector("c")
    a.start()
    await a.wait_for_leadership(timeout=10)
    b.start()
    await asyncio.sleep(2 * timings["lease_duration"])  # well past a lease duration: a keeps renewing
    assert (a.is_leader, b.is_leader) == (True, False)
    lease = await kube.get("coordination.k8s.io/v1", "Lease", "controller-leader", namespace=namespace)
    assert lease["spec"]["holderIdentity"] == "a"

    # A graceful stop releases the lease: b takes over well before the lease would have expired.
    started = time.monotonic()
    await a.stop()
    await b.wait_for_leadership(timeout=timings["lease_duration"])
    assert time.monotonic() - started < timings["lease_duration"]
    assert not a.is_leader
    lease = await kube.get("coordination.k8s.io/v1", "Lease", "controller-leader", namespace=namespace)
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] >= 1

    # A leader that vanishes without releasing is replaced once its lease runs out, not before.
    c.start()
    await asyncio.sleep(0.5)
    started = time.monotonic()
    await b.stop(release=False)
    await c.wait_for_leadership(timeout=4 * timings["lease_duration"])
    assert time.monotonic() - started >= timings["lease_duration"] - 1.0
    await c.stop()
    assert timeline == ["a+", "a-", "b+", "b-", "c+", "c-"]


async def test_deployment_becomes_available_on_kwok_nodes(kube: KubeClient, namespace: str) -> None:
    deployment: KubeObject = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "ghcr.io/stefanprodan/podinfo:6.7.0"}]},
            },
        },
    }
    await kube.apply(deployment, field_manager="kustomize-controller")

    async def available() -> bool:
        got = await kube.get("apps/v1", "Deployment", "web", namespace=namespace)
        status = got.get("status") or {}
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        return status.get("availableReplicas") == 2 and conditions.get("Available") == "True"

    await eventually(available, timeout=90, interval=0.5)
    pods = (await kube.list("v1", "Pod", namespace=namespace, label_selector="app=web")).items
    running = [p for p in pods if p["status"].get("phase") == "Running" and "deletionTimestamp" not in p["metadata"]]
    assert len(running) == 2
    assert all(p["spec"]["nodeName"].startswith("kwok-node-") for p in running)
