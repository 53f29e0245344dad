"""KindRunner against the real apiserver and Kafka: finalizer, Ready, requestedAt, Stalled, suspend, deletion."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from gitops_mesh.bus.consumer import Consumer, RecordMeta
from gitops_mesh.bus.envelope import Event, EventKind
from gitops_mesh.bus.kafka import Producer
from gitops_mesh.bus.producer import Publisher
from gitops_mesh.bus.topics import Topic, Topics, ensure_topics
from gitops_mesh.errors import InvalidSpec, NotFound, TransientError
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.events import EventRecorder
from gitops_mesh.kube.informer import Informer
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import Announcement, Outcome
from gitops_mesh.runner import KindRunner, interval_of, should_enqueue, status_patch
from tests.integration.conftest import eventually

pytestmark = pytest.mark.stack

API = "source.toolkit.fluxcd.io/v1"


class ToyReconciler:
    """Stands in for a controller: 'bad' URLs are terminal, 'flaky' ones transient, others succeed."""

    api_version = API
    kind = "GitRepository"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.finalized: list[str] = []

    async def reconcile(self, obj: KubeObject) -> Outcome:
        name, url = obj["metadata"]["name"], obj["spec"]["url"]
        self.calls.append(name)
        if "bad" in url:
            raise InvalidSpec(f"unsupported URL {url!r}")
        if "flaky" in url:
            raise TransientError("remote hung up", reason="GitOperationFailed")
        if "secret-later" in url:
            # What a GET of a Secret created after its GitRepository raises: neutral, so retried.
            raise NotFound("secret 'auth' not found", reason="AuthenticationFailed")
        obj.setdefault("status", {})["artifact"] = {
            "path": f"gitrepository/{obj['metadata']['namespace']}/{name}/{'a' * 40}.tar.gz",
            "url": f"http://127.0.0.1/gitrepository/{obj['metadata']['namespace']}/{name}/{'a' * 40}.tar.gz",
            "revision": "main@sha1:" + "a" * 40,
            "digest": "sha256:" + "b" * 64,
            "lastUpdateTime": "2026-01-01T00:00:00Z",
            "size": 1,
        }
        revision = obj["status"]["artifact"]["revision"]
        return Outcome.succeeded(
            requeue_after=interval_of(obj),
            message="stored artifact for revision 'main'",
            announce=[Announcement(EventKind.ARTIFACT_READY, "NewArtifact", "stored", revision=revision)],
        )

    async def finalize(self, obj: KubeObject) -> None:
        self.finalized.append(obj["metadata"]["name"])


def repo(name: str, namespace: str, url: str = "https://example.com/ok.git", **spec: Any) -> KubeObject:
    return {
        "apiVersion": API,
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"url": url, "interval": "10m", **spec},
    }


@pytest.fixture
async def bus(stack_env: dict[str, str], unique: str) -> AsyncIterator[tuple[Publisher, Topics]]:
    topics = Topics(f"{unique}.")
    await ensure_topics(stack_env["KAFKA_BOOTSTRAP"], topics.all(), partitions=1)
    producer = Producer(bootstrap=stack_env["KAFKA_BOOTSTRAP"])
    publisher = Publisher(producer=producer, topics=topics)
    await publisher.start()
    try:
        yield publisher, topics
    finally:
        await publisher.close()
        await producer.close()


@pytest.fixture
async def runner(
    kube: KubeClient, namespace: str, bus: tuple[Publisher, Topics]
) -> AsyncIterator[tuple[KindRunner, ToyReconciler]]:
    toy = ToyReconciler()
    informer = Informer(kube, API, "GitRepository", namespace=namespace)
    r = KindRunner(
        client=kube,
        reconciler=toy,
        informer=informer,
        controller="test-controller",
        instance="test-0",
        recorder=EventRecorder(kube, "test-controller", "test-0"),
        publisher=bus[0],
    )
    informer.start()
    task = asyncio.create_task(r.run())
    try:
        yield r, toy
    finally:
        r.stop()
        await asyncio.wait_for(task, 10)
        await informer.stop()


async def get(kube: KubeClient, namespace: str, name: str) -> KubeObject:
    return await kube.get(API, "GitRepository", name, namespace=namespace)


async def test_new_object_gets_finalizer_then_ready(
    kube: KubeClient, namespace: str, runner: tuple[KindRunner, ToyReconciler]
) -> None:
    await kube.create(repo("ok", namespace))

    async def ready() -> bool:
        return c.is_ready(await get(kube, namespace, "ok"))

    await eventually(ready)
    obj = await get(kube, namespace, "ok")
    assert obj["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert obj["status"]["artifact"]["revision"].startswith("main@sha1:")
    assert c.get_message(obj, "Ready") == "stored artifact for revision 'main'"
    assert not c.has(obj, "Reconciling")
    events = await kube.list("v1", "Event", namespace=namespace)
    assert any(e["reason"] == "ReconciliationSucceeded" and e["type"] == "Normal" for e in events.items)


async def test_requested_at_is_handled_once(
    kube: KubeClient, namespace: str, runner: tuple[KindRunner, ToyReconciler]
) -> None:
    _, toy = runner
    await kube.create(repo("req", namespace))

    async def ready() -> bool:
        return c.is_ready(await get(kube, namespace, "req"))

    await eventually(ready)
    calls = toy.calls.count("req")
    await kube.patch(
        API,
        "GitRepository",
        "req",
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "now-1"}}},
        namespace=namespace,
    )

    async def handled() -> bool:
        obj = await get(kube, namespace, "req")
        return bool(obj["status"].get("lastHandledReconcileAt") == "now-1")

    await eventually(handled)
    assert toy.calls.count("req") == calls + 1
    await asyncio.sleep(0.5)  # our own status patch must not trigger another run
    assert toy.calls.count("req") == calls + 1


async def test_terminal_error_stalls_and_publishes_failed(
    kube: KubeClient,
    namespace: str,
    runner: tuple[KindRunner, ToyReconciler],
    bus: tuple[Publisher, Topics],
    stack_env: dict[str, str],
) -> None:
    _, topics = bus
    got: list[Event] = []

    async def handle(event: Event, _: RecordMeta) -> None:
        got.append(event)

    consumer = Consumer(
        bootstrap=stack_env["KAFKA_BOOTSTRAP"],
        group_id=f"{namespace}-g",
        topics=[topics.name(Topic.FAILED)],
        handler=handle,
        # Only for dead letters, which this handler never causes: never started, nothing to close.
        producer=Producer(bootstrap=stack_env["KAFKA_BOOTSTRAP"]),
        offset_reset="earliest",
    )
    await consumer.start()
    try:
        await kube.create(repo("broken", namespace, url="https://example.com/bad.git"))

        async def stalled() -> bool:
            return c.is_stalled(await get(kube, namespace, "broken"))

        await eventually(stalled)
        obj = await get(kube, namespace, "broken")
        assert c.get_reason(obj, "Ready") == "InvalidSpec"
        assert "unsupported URL" in c.get_message(obj, "Ready")
        assert obj["status"]["observedGeneration"] == 1

        async def published() -> bool:
            return any(e.involved_object.name == "broken" for e in got)

        await eventually(published)
        event = next(e for e in got if e.involved_object.name == "broken")
        assert event.reason == "InvalidSpec"
        assert event.severity == "error"
        events = await kube.list("v1", "Event", namespace=namespace)
        assert any(e["reason"] == "InvalidSpec" and e["type"] == "Warning" for e in events.items)
    finally:
        await consumer.stop()


async def test_transient_error_is_retried_with_backoff(
    kube: KubeClient, namespace: str, runner: tuple[KindRunner, ToyReconciler]
) -> None:
    _, toy = runner
    await kube.create(repo("flaky", namespace, url="https://example.com/flaky.git"))

    async def retried() -> bool:
        return toy.calls.count("flaky") >= 3

    await eventually(retried, timeout=20)
    obj = await get(kube, namespace, "flaky")
    assert c.is_false(obj, "Ready")
    assert c.get_reason(obj, "Ready") == "GitOperationFailed"
    assert not c.is_stalled(obj)
    assert "observedGeneration" not in obj["status"] or obj["status"]["observedGeneration"] == -1


async def test_an_api_error_is_retried_not_stalled(
    kube: KubeClient, namespace: str, runner: tuple[KindRunner, ToyReconciler]
) -> None:
    _, toy = runner
    await kube.create(repo("later", namespace, url="https://example.com/secret-later.git"))

    async def retried() -> bool:
        return toy.calls.count("later") >= 2

    await eventually(retried, timeout=20)
    obj = await get(kube, namespace, "later")
    assert not c.is_stalled(obj)
    assert c.get_reason(obj, "Ready") == "AuthenticationFailed"
    assert c.get_message(obj, "Ready") == "secret 'auth' not found"


async def test_announcements_go_out_after_the_status_is_written(
    kube: KubeClient,
    namespace: str,
    runner: tuple[KindRunner, ToyReconciler],
    bus: tuple[Publisher, Topics],
    stack_env: dict[str, str],
) -> None:
    _, topics = bus
    seen_status: list[KubeObject] = []

    async def handle(event: Event, _: RecordMeta) -> None:
        if event.involved_object.name == "announced":
            # The status that records the artifact is already there when the event arrives.
            seen_status.append(await get(kube, namespace, "announced"))

    consumer = Consumer(
        bootstrap=stack_env["KAFKA_BOOTSTRAP"],
        group_id=f"{namespace}-a",
        topics=[topics.name(Topic.ARTIFACT_READY)],
        handler=handle,
        # Only for dead letters, which this handler never causes: never started, nothing to close.
        producer=Producer(bootstrap=stack_env["KAFKA_BOOTSTRAP"]),
        offset_reset="earliest",
    )
    await consumer.start()
    try:
        await kube.create(repo("announced", namespace))

        async def announced() -> bool:
            return bool(seen_status)

        await eventually(announced)
        status = seen_status[0]["status"]
        assert status["artifact"]["revision"] == "main@sha1:" + "a" * 40
        assert c.is_ready(seen_status[0])
    finally:
        await consumer.stop()


async def test_suspended_objects_are_left_alone_and_deletion_finalizes(
    kube: KubeClient, namespace: str, runner: tuple[KindRunner, ToyReconciler]
) -> None:
    _, toy = runner
    await kube.create(repo("paused", namespace, suspend=True))

    async def has_finalizer() -> bool:
        return bool((await get(kube, namespace, "paused"))["metadata"].get("finalizers"))

    await eventually(has_finalizer)
    series = {"kind": "GitRepository", "namespace": namespace, "name": "paused"}

    async def suspended_is_scraped() -> bool:
        return REGISTRY.get_sample_value("gotk_suspend_status", series) == 1.0

    await eventually(suspended_is_scraped)
    await asyncio.sleep(0.3)
    assert "paused" not in toy.calls
    await kube.delete(API, "GitRepository", "paused", namespace=namespace)

    async def gone() -> bool:
        try:
            await get(kube, namespace, "paused")
        except NotFound:
            return True
        return False

    await eventually(gone)
    assert toy.finalized == ["paused"]

    async def series_forgotten() -> bool:
        return REGISTRY.get_sample_value("gotk_suspend_status", series) is None

    await eventually(series_forgotten)  # a deleted object is not scraped forever


def test_predicates_ignore_status_only_updates() -> None:
    old = {"metadata": {"generation": 1, "annotations": {}}, "status": {}}
    assert should_enqueue("ADDED", old, None)
    assert not should_enqueue("MODIFIED", {**old, "status": {"x": 1}}, old)
    assert should_enqueue("MODIFIED", {"metadata": {"generation": 2}}, old)
    req = {"metadata": {"generation": 1, "annotations": {"reconcile.fluxcd.io/requestedAt": "t"}}}
    assert should_enqueue("MODIFIED", req, old)
    assert should_enqueue("MODIFIED", {"metadata": {"generation": 1, "deletionTimestamp": "x"}}, old)
    assert not should_enqueue("DELETED", old, old)


def test_status_patch_nulls_removed_keys() -> None:
    assert status_patch({"a": 1}, {"a": 1}) is None
    assert status_patch({"a": 1, "b": 2}, {"a": 1, "c": 3}) == {"b": None, "c": 3}
