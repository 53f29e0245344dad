"""notification-controller: sustained fan-out from Kafka to a local webhook sink, and nothing lost while it flaps.

The real ``notification-controller`` runs as a process against the local stack (its own topic prefix and
consumer group, watching one namespace) with one ``generic`` Provider pointing at an aiohttp sink on
127.0.0.1 and one Alert for ``GitRepository/*``. Events are published with the real ``Publisher`` on the
``events`` topic (info) and, one in ten, on ``failed`` (error), about ``--objects`` GitRepositories, each
with its own message and revision (so the rate limiter lets every one through), stamped with the publish
time in ``metadata.published``. The sink records the first 2xx arrival of each ``X-Gotk-Event-Id``.

Three phases against one controller:

1. *burst*: N events published as fast as the Publisher takes them; deliveries/s from the first delivery to
   the last (the controller's sustained drain rate; its latencies are queueing, kept in the details);
2. *latency*: events published at a steady ``--rate`` below the target; p50/p99 publish→delivery;
3. *flapping*: the sink answers 503 for ``--flap-down`` s of every ``--flap-period`` s while M events are
   published at ``--flap-rate``; the sink keeps flapping until every event id arrived (or
   ``--drain-timeout``). Lost = ids published - distinct ids delivered (must be 0); duplicates (an id
   answered 2xx twice) are allowed by at-least-once delivery and reported.

``--profile FILE`` runs the controller under pyinstrument (when installed; not a project dependency) and
writes its report there: text, or html/session/pstats by the file's suffix.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiokafka.admin import AIOKafkaAdminClient

from bench.measures import Measure, emit, percentile
from gitops_mesh.bus.envelope import CloudEvent, EventKind, ObjectRef, Severity, build_event
from gitops_mesh.bus.kafka import Producer
from gitops_mesh.bus.producer import Publisher
from gitops_mesh.bus.topics import Topic, Topics, ensure_topics
from gitops_mesh.errors import NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh_dev import mesh
from gitops_mesh_dev.http import serve
from gitops_mesh_dev.mesh import BIN, free_port
from gitops_mesh_dev.stack import read_stack_env
from notification_controller.records import RETRY_TOPIC

SUITE = "notification"
API = "notification.toolkit.fluxcd.io/v1beta3"
EVENT_ID = "X-Gotk-Event-Id"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- the sink ------------------------------------------------------------------------------------------


@dataclass
class Sink:
    """A webhook receiver on 127.0.0.1: the first 2xx arrival of each event id, and its latency."""

    #: While set, 503 for ``down`` seconds at the start of every ``period`` seconds counted from ``t0``.
    flapping: bool = False
    t0: float = 0.0
    period: float = 5.0
    down: float = 2.0
    arrived: dict[str, float] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    duplicates: int = 0
    refused: int = 0
    requests: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    def flap(self, period: float, down: float) -> None:
        self.period, self.down, self.t0, self.flapping = period, down, time.time(), True

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        self.requests += 1
        if self.flapping and (now - self.t0) % self.period < self.down:
            self.refused += 1
            return web.Response(status=503, text="flapping")
        event_id = request.headers.get(EVENT_ID, "")
        if event_id in self.arrived:
            self.duplicates += 1
        else:
            self.arrived[event_id] = now
            published = orjson.loads(body).get("metadata", {}).get("published")
            if published is not None:
                self.latency[event_id] = now - float(published)
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner, self.port = await serve(app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


# ---- events --------------------------------------------------------------------------------------------


@dataclass
class Events:
    """Distinct events about ``objects`` GitRepositories in one namespace; remembers every id published."""

    namespace: str
    objects: int
    publisher: Publisher
    published: dict[str, float] = field(default_factory=dict)
    _n: int = 0

    def make(self, phase: str) -> tuple[Topic, CloudEvent]:
        i, self._n = self._n, self._n + 1
        name = f"repo-{i % self.objects}"
        revision = f"main@sha1:{i:040x}"
        failed = i % 10 == 9
        event = build_event(
            kind=EventKind.FAILED if failed else EventKind.INFO,
            controller="source-controller",
            instance="bench-0",
            involved_object=ObjectRef(
                "source.toolkit.fluxcd.io/v1", "GitRepository", self.namespace, name, f"u-{name}"
            ),
            severity=Severity.ERROR if failed else Severity.INFO,
            reason="GitOperationFailed" if failed else "NewArtifact",
            message=f"{phase} #{i}: " + ("failed to checkout" if failed else "stored artifact") + f" for {revision}",
            revision=revision,
        )
        return (Topic.FAILED if failed else Topic.EVENTS), event

    def publish(self, topic: Topic, event: CloudEvent) -> None:
        now = time.time()
        event["data"]["metadata"]["published"] = repr(now)
        if not self.publisher.publish(topic, event):
            raise RuntimeError("the publisher dropped an event (buffer too small?)")
        self.published[event["id"]] = now

    async def paced(self, phase: str, n: int, rate: float) -> list[str]:
        """Publish ``n`` events at ``rate`` per second (in 10 ms steps); returns their ids."""
        ids: list[str] = []
        start = time.monotonic()
        while len(ids) < n:
            due = min(n, int((time.monotonic() - start) * rate) + 1)
            while len(ids) < due:
                topic, event = self.make(phase)
                self.publish(topic, event)
                ids.append(event["id"])
            await asyncio.sleep(0.01)
        return ids


# ---- the controller ------------------------------------------------------------------------------------


@dataclass
class Controller(mesh.Controller):
    def cpu_seconds(self) -> float:
        """utime + stime of the controller process so far."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    async def metrics(self, prefix: str) -> dict[str, float]:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as r:
            text = await r.text()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith(prefix):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out


@contextlib.asynccontextmanager
async def controller(args: Sequence[str], log: Path, profile: Path | None) -> AsyncIterator[Controller]:
    wrapper = []
    if profile is not None:
        renderer = {".html": "html", ".pyisession": "session", ".pstats": "pstats"}.get(profile.suffix, "text")
        wrapper = [str(BIN / "python"), "-m", "pyinstrument", "-r", renderer, "-o", str(profile)]
    ctl = Controller("notification-controller", list(args), log, wrapper=wrapper)
    ctl.start()
    try:
        yield ctl
    finally:
        await ctl.stop()


# ---- measuring -----------------------------------------------------------------------------------------


async def until_delivered(sink: Sink, ids: Sequence[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(i in sink.arrived for i in ids):
            return True
        await asyncio.sleep(0.1)
    return False


def latency_ms(sink: Sink, ids: Sequence[str]) -> dict[str, float]:
    values = [sink.latency[i] * 1000 for i in ids if i in sink.latency]
    return {
        "p50_ms": round(percentile(values, 50), 1),
        "p99_ms": round(percentile(values, 99), 1),
        "max_ms": round(max(values, default=float("nan")), 1),
    }


async def burst(events: Events, sink: Sink, ctl: Controller, n: int, timeout: float) -> dict[str, Any]:
    batch = [events.make("burst") for _ in range(n)]
    cpu0, own0, wall0 = ctl.cpu_seconds(), time.process_time(), time.monotonic()
    for j, (topic, event) in enumerate(batch):
        events.publish(topic, event)
        if j % 500 == 499:
            await asyncio.sleep(0)
    if not await events.publisher.flush(120):
        raise RuntimeError("kafka did not take the burst within 120 s")
    acked = time.monotonic() - wall0
    ids = [e["id"] for _, e in batch]
    complete = await until_delivered(sink, ids, timeout)
    wall = time.monotonic() - wall0
    cpu, own = ctl.cpu_seconds() - cpu0, time.process_time() - own0
    times = sorted(sink.arrived[i] for i in ids if i in sink.arrived)
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    return {
        "events": n,
        "delivered": len(times),
        "complete": complete,
        "publish_acked_s": round(acked, 2),
        "first_to_last_s": round(span, 2),
        "deliveries_per_s": round((len(times) - 1) / span, 1) if len(times) > 1 else 0.0,
        "controller_cpu_s": round(cpu, 1),
        "controller_cpu_per_delivery_ms": round(cpu / max(1, len(times)) * 1000, 3),
        "bench_process_cpu_s": round(own, 1),
        "wall_s": round(wall, 1),
        **latency_ms(sink, ids),
    }


async def steady(events: Events, sink: Sink, n: int, rate: float, timeout: float) -> dict[str, Any]:
    ids = await events.paced("steady", n, rate)
    complete = await until_delivered(sink, ids, timeout)
    return {"events": n, "rate": rate, "complete": complete, **latency_ms(sink, ids)}


async def flapping(events: Events, sink: Sink, n: int, rate: float, args: argparse.Namespace) -> dict[str, Any]:
    refused0, duplicates0, started = sink.refused, sink.duplicates, time.monotonic()
    sink.flap(args.flap_period, args.flap_down)
    ids = await events.paced("flap", n, rate)
    published_s = time.monotonic() - started
    complete = await until_delivered(sink, ids, args.drain_timeout)
    drained_s = time.monotonic() - started
    sink.flapping = False
    # Late repeats of requests the controller had given up on (a hand-over cancels one in flight).
    await asyncio.sleep(args.settle)
    delivered = sum(1 for i in ids if i in sink.arrived)
    return {
        "events": n,
        "rate": rate,
        "period_s": args.flap_period,
        "down_s": args.flap_down,
        "published_s": round(published_s, 1),
        "all_delivered_after_s": round(drained_s, 1) if complete else None,
        "lost": len(set(ids)) - delivered,
        "duplicates": sink.duplicates - duplicates0,
        "refused_503": sink.refused - refused0,
        **latency_ms(sink, ids),
    }


# ---- the run -------------------------------------------------------------------------------------------


async def setup_namespace(kube: KubeClient, ns: str, sink: Sink) -> None:
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    await kube.create(
        {
            "apiVersion": API,
            "kind": "Provider",
            "metadata": {"name": "sink", "namespace": ns},
            "spec": {"type": "generic", "address": f"http://127.0.0.1:{sink.port}/hook"},
        }
    )
    await kube.create(
        {
            "apiVersion": API,
            "kind": "Alert",
            "metadata": {"name": "all-repos", "namespace": ns},
            "spec": {"providerRef": {"name": "sink"}, "eventSources": [{"kind": "GitRepository", "name": "*"}]},
        }
    )


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    with contextlib.suppress(Exception):
        await admin.start()
        await admin.delete_topics(names)
    with contextlib.suppress(Exception):
        await admin.close()


async def main_async(args: argparse.Namespace) -> None:
    env = read_stack_env()
    bootstrap = env["KAFKA_BOOTSTRAP"]
    tag = f"nbench{int(time.time())}"
    topics = Topics(f"{tag}.")
    retry_topic = f"{topics.prefix}{RETRY_TOPIC}"
    work = Path(tempfile.mkdtemp(prefix="bench-nc-"))
    kube = await KubeClient.connect(env["KUBECONFIG"])
    sink = Sink()
    await sink.start()
    producer = Producer(bootstrap=bootstrap, client_id="bench")
    publisher = Publisher(producer=producer, topics=topics, buffer_size=args.events + args.flap_events + 10_000)
    tuning = [f"--delivery-max-backoff={args.max_backoff:g}s", *args.controller_flag]
    flags = [
        f"--kubeconfig={env['KUBECONFIG']}",
        f"--kafka-bootstrap={bootstrap}",
        f"--topic-prefix={topics.prefix}",
        "--watch-all-namespaces=false",
        f"--watch-namespace={tag}",
        f"--consumer-group={tag}-nc",
        "--offset-reset=earliest",
        f"--receiver-addr=127.0.0.1:{free_port()}",
        "--log-level=info",
        *tuning,
    ]
    try:
        await ensure_topics(bootstrap, [*topics.all(), retry_topic])
        await setup_namespace(kube, tag, sink)
        await publisher.start()
        events = Events(tag, args.objects, publisher)
        async with controller(flags, work / "notification-controller.log", args.profile) as ctl:
            await ctl.ready()
            # One delivery end to end first, so connection set-up and imports are not in the figures.
            await steady(events, sink, 20, 100, 60)
            phases = {
                "burst": await burst(events, sink, ctl, args.events, args.drain_timeout),
                "steady": await steady(events, sink, args.latency_events, args.rate, args.drain_timeout),
                "flapping": await flapping(events, sink, args.flap_events, args.flap_rate, args),
            }
            counters = await ctl.metrics("gitops_notification_deliveries_total")
    finally:
        await publisher.close()
        await producer.close()
        await sink.stop()
        with contextlib.suppress(NotFound):
            await kube.delete("v1", "Namespace", tag)
        await kube.close()
        await delete_topics(bootstrap, [*topics.all(), retry_topic])
        shutil.rmtree(work, ignore_errors=True)

    b, s, f = phases["burst"], phases["steady"], phases["flapping"]
    anchor = f"{args.events} events, {args.objects} objects, 1 Alert, generic Provider, 6 partitions"
    measures = [
        Measure(SUITE, "notification fan-out deliveries/s", b["deliveries_per_s"], "1/s", ">= 2000", anchor),
        Measure(
            SUITE,
            "p99 publish→delivery latency",
            s["p99_ms"],
            "ms",
            "",
            f"steady {args.rate:g} events/s; p50 {s['p50_ms']} ms",
        ),
        Measure(
            SUITE,
            "lost while the sink flaps",
            float(f["lost"]),
            "events",
            "<= 0",
            f"{args.flap_events} events, 503 for {args.flap_down:g} s of every {args.flap_period:g} s",
        ),
        Measure(SUITE, "duplicates while the sink flaps", float(f["duplicates"]), "events", "", "at-least-once"),
    ]
    emit(measures, {"phases": phases, "controller_flags": tuning, "deliveries_total": counters})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=20_000, help="events in the burst phase")
    p.add_argument("--latency-events", type=int, default=5_000)
    p.add_argument("--rate", type=float, default=1_000, help="events/s in the latency phase")
    p.add_argument("--flap-events", type=int, default=3_000)
    p.add_argument("--flap-rate", type=float, default=200, help="events/s while the sink flaps")
    p.add_argument("--flap-period", type=float, default=5.0)
    p.add_argument("--flap-down", type=float, default=2.0)
    p.add_argument("--objects", type=int, default=200, help="distinct GitRepositories the events are about")
    p.add_argument("--max-backoff", type=float, default=5.0, help="the controller's --delivery-max-backoff (s)")
    p.add_argument("--drain-timeout", type=float, default=180.0)
    p.add_argument("--settle", type=float, default=3.0, help="seconds to wait for late duplicates")
    p.add_argument("--controller-flag", action="append", default=[], help="extra controller flag (repeatable)")
    p.add_argument("--profile", type=Path, default=None, help="run the controller under pyinstrument, report here")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.events, args.latency_events, args.flap_events, args.flap_rate = 1_000, 500, 300, 60
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
