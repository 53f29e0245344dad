"""The notification-controller as a real process against the stack, with real webhook sinks and Kafka."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition

from gitops_mesh.bus.envelope import CloudEvent, EventKind, ObjectRef, Severity, build_event
from gitops_mesh.bus.producer import Publisher
from gitops_mesh.bus.topics import Topic, Topics, ensure_topics
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from notification_controller.records import RETRY_TOPIC
from tests.conftest import ROOT
from tests.support.gitserver import TlsFiles, make_tls

BIN = ROOT / ".venv" / "bin" / "notification-controller"
API = "notification.toolkit.fluxcd.io/v1beta3"
KS_API = "kustomize.toolkit.fluxcd.io/v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- webhook sinks -------------------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    def json(self) -> Any:
        return orjson.loads(self.body)


Behaviour = Callable[["Received", int], Awaitable[int] | int]


@dataclass
class Sink:
    """A real HTTP server on 127.0.0.1 recording every request; ``behaviour`` picks each answer's status."""

    behaviour: Behaviour = lambda _r, _n: 200
    requests: list[Received] = field(default_factory=list)
    retry_after: str | None = None
    port: int = 0
    tls: TlsFiles | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def ok(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.status < 300]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        rec = Received(request.method, request.path_qs, dict(request.headers), body, 0, time.monotonic())
        answer = self.behaviour(rec, len(self.requests))
        status = answer if isinstance(answer, int) else await answer
        rec.status = status
        self.requests.append(rec)
        headers = {"Retry-After": self.retry_after} if self.retry_after and status in (429, 503) else {}
        return web.Response(status=status, text="ok" if status < 300 else "nope", headers=headers)

    async def start(self) -> Sink:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        context = None
        if self.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.tls.cert, self.tls.key)
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


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
    publisher = Publisher(bootstrap=stack_env["KAFKA_BOOTSTRAP"], topics=topics)
    await publisher.start()
    try:
        yield Bus(stack_env["KAFKA_BOOTSTRAP"], topics, publisher)
    finally:
        await publisher.close()


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
class Controller:
    stack_env: dict[str, str]
    namespace: str
    bus: Bus
    log: Path
    group: str
    flags: list[str]
    metrics_port: int = 0
    receiver_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.metrics_port = free_port()
        self.receiver_port = self.receiver_port or free_port()
        args = [
            str(BIN),
            f"--kubeconfig={self.stack_env['KUBECONFIG']}",
            f"--kafka-bootstrap={self.stack_env['KAFKA_BOOTSTRAP']}",
            f"--topic-prefix={self.bus.topics.prefix}",
            f"--metrics-addr=127.0.0.1:{self.metrics_port}",
            f"--receiver-addr=127.0.0.1:{self.receiver_port}",
            "--watch-all-namespaces=false",
            f"--watch-namespace={self.namespace}",
            f"--consumer-group={self.group}",
            "--offset-reset=earliest",
            "--log-level=debug",
            *self.flags,
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    async def ready(self, timeout: float = 60) -> None:
        """Wait for /readyz: informers synced and both consumer groups joined."""
        deadline = time.monotonic() + timeout
        last = ""
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    pytest.fail(f"controller exited with {self.proc.returncode}:\n{self.tail()}")
                try:
                    async with http.get(f"http://127.0.0.1:{self.metrics_port}/readyz") as resp:
                        last = await resp.text()
                        if resp.status == 200:
                            return
                except aiohttp.ClientError as e:
                    last = str(e)
                await asyncio.sleep(0.2)
        pytest.fail(f"controller not ready after {timeout}s: {last}\n{self.tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    async def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.to_thread(self.proc.wait, 20)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def tail(self, n: int = 6000) -> str:
        return self.log.read_text()[-n:] if self.log.exists() else ""

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    async def metric(self, name: str, **labels: str) -> float:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as r:
            text = await r.text()
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


@pytest.fixture
async def controller_factory(
    stack_env: dict[str, str], namespace: str, bus: Bus, tmp_path: Path, unique: str
) -> AsyncIterator[Callable[..., Awaitable[Controller]]]:
    made: list[Controller] = []

    async def make(*flags: str) -> Controller:
        ctl = Controller(
            stack_env, namespace, bus, tmp_path / "notification-controller.log", f"{unique}-nc", list(flags)
        )
        ctl.start()
        made.append(ctl)
        await ctl.ready()
        return ctl

    yield make
    for ctl in made:
        await ctl.stop()
        if ctl.proc is not None and ctl.proc.returncode not in (0, -15, -9):
            sys.stderr.write(ctl.tail())


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str, ctl: Controller | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}" + (f"\n{ctl.tail()}" if ctl else ""))
        await asyncio.sleep(0.05)
