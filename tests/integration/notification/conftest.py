"""The notification-controller as a real process against the stack, with real webhook sinks and Kafka."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from gitops_mesh.bus.envelope import CloudEvent, EventKind, ObjectRef, Severity, build_event
from gitops_mesh.bus.kafka import Producer
from gitops_mesh.bus.producer import Publisher
from gitops_mesh.bus.topics import Topic, Topics, ensure_topics
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh_dev import mesh
from gitops_mesh_dev.gitserver import TlsFiles, make_tls
from gitops_mesh_dev.mesh import common_args, free_port
from notification_controller.records import RETRY_TOPIC
from tests.support.sink import Behaviour, Sink

API = "notification.toolkit.fluxcd.io/v1beta3"
KS_API = "kustomize.toolkit.fluxcd.io/v1"


# ---- webhook sinks -------------------------------------------------------------------------------------


@pytest.fixture
async def sinks() -> AsyncIterator[Callable[..., Awaitable[Sink]]]:
    started: list[Sink] = []

    async def make(
        behaviour: Behaviour | None = None, *, retry_after: str | None = None, tls: TlsFiles | None = None
    ) -> Sink:
        sink = Sink(retry_after=retry_after, tls=tls)
        if behaviour is not None:
            sink.behaviour = behaviour
        started.append(await sink.start())
        return sink

    yield make
    for s in started:
        await s.stop()


@pytest.fixture(scope="session")
def sink_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("sink-tls"))


# ---- the bus -------------------------------------------------------------------------------------------


@dataclass
class Bus:
    bootstrap: str
    topics: Topics
    producer: Producer
    publisher: Publisher

    @property
    def retry_topic(self) -> str:
        return f"{self.topics.prefix}{RETRY_TOPIC}"

    async def publish(self, topic: Topic, event: CloudEvent) -> None:
        assert self.publisher.publish(topic, event)
        assert await self.publisher.flush(20), "kafka did not take the event"

    async def send_raw(self, topic: Topic, value: bytes, key: bytes = b"garbage") -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(self.topics.name(topic), value, key=key)
        finally:
            await producer.stop()

    async def records(self, topic: str) -> list[Any]:
        """Every record on ``topic`` (one partition) so far."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            await consumer.seek_to_beginning(tp)
            records: list[Any] = []
            deadline = time.monotonic() + 10
            while len(records) < end and time.monotonic() < deadline:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
            return records
        finally:
            await consumer.stop()

    async def dead_letters(self) -> list[tuple[dict[str, str], Any]]:
        out = []
        for r in await self.records(self.topics.name(Topic.DLQ)):
            headers = {k: v.decode() for k, v in r.headers or ()}
            try:
                value = orjson.loads(r.value) if r.value else None
            except orjson.JSONDecodeError:
                value = r.value  # garbage is dead-lettered as it came
            out.append((headers, value))
        return out


@pytest.fixture
async def bus(stack_env: dict[str, str], unique: str) -> AsyncIterator[Bus]:
    topics = Topics(f"{unique}.")
    await ensure_topics(stack_env["KAFKA_BOOTSTRAP"], [*topics.all(), f"{unique}.{RETRY_TOPIC}"], partitions=1)
    producer = Producer(bootstrap=stack_env["KAFKA_BOOTSTRAP"])
    publisher = Publisher(producer=producer, topics=topics)
    await publisher.start()
    try:
        yield Bus(stack_env["KAFKA_BOOTSTRAP"], topics, producer, publisher)
    finally:
        await publisher.close()
        await producer.close()


def applied(
    name: str,
    namespace: str,
    *,
    message: str = "Applied revision: main@sha1:" + "a" * 40,
    revision: str = "main@sha1:" + "a" * 40,
    severity: Severity = Severity.INFO,
    reason: str = "ReconciliationSucceeded",
    kind: str = "Kustomization",
    api_version: str = KS_API,
    metadata: dict[str, str] | None = None,
) -> CloudEvent:
    """An ``applied`` event about ``kind`` ``namespace/name`` as the kustomize-controller publishes it."""
    return build_event(
        kind=EventKind.APPLIED,
        controller="kustomize-controller",
        instance="kc-0",
        involved_object=ObjectRef(api_version, kind, namespace, name, uid=f"uid-{name}"),
        severity=severity,
        reason=reason,
        message=message,
        revision=revision,
        metadata=metadata,
    )


# ---- Kubernetes objects --------------------------------------------------------------------------------


async def make_secret(kube: KubeClient, namespace: str, name: str, data: dict[str, str]) -> None:
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }
    )


async def make_provider(kube: KubeClient, namespace: str, name: str, **spec: Any) -> KubeObject:
    return await kube.create(
        {"apiVersion": API, "kind": "Provider", "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    )


async def make_alert(
    kube: KubeClient, namespace: str, name: str, provider: str, sources: list[dict[str, Any]] | None = None, **spec: Any
) -> KubeObject:
    spec = {
        "providerRef": {"name": provider},
        "eventSources": sources or [{"kind": "Kustomization", "name": "*"}],
        **spec,
    }
    return await kube.create(
        {"apiVersion": API, "kind": "Alert", "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    )


# ---- the controller process ----------------------------------------------------------------------------


@dataclass
class Controller(mesh.Controller):
    """The notification-controller process, with its receiver on a port of its own."""

    receiver_port: int = field(default_factory=free_port)

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]


@pytest.fixture
async def controller_factory(
    stack_env: dict[str, str], namespace: str, bus: Bus, tmp_path: Path, unique: str
) -> AsyncIterator[Callable[..., Awaitable[Controller]]]:
    made: list[Controller] = []

    async def make(*flags: str) -> Controller:
        receiver_port = free_port()
        args = [
            *common_args(stack_env, bus.topics, namespace),
            f"--receiver-addr=127.0.0.1:{receiver_port}",
            f"--consumer-group={unique}-nc",
            "--offset-reset=earliest",
            *flags,
        ]
        ctl = Controller(
            "notification-controller", args, tmp_path / "notification-controller.log", receiver_port=receiver_port
        )
        ctl.start()
        made.append(ctl)
        await ctl.ready()
        return ctl

    yield make
    for ctl in made:
        await ctl.stop()


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str, ctl: Controller | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}" + (f"\n{ctl.tail()}" if ctl else ""))
        await asyncio.sleep(0.05)
