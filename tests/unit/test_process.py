"""A controller process serves probes while it runs and stops cleanly on SIGTERM or a fatal task crash."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

from gitops_mesh.bus.kafka import Producer
from gitops_mesh.bus.producer import Publisher
from gitops_mesh.bus.topics import Topic
from gitops_mesh.kube.caches import Caches
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.config import KubeConfig
from gitops_mesh.kube.events import EventRecorder
from gitops_mesh.process import Platform, ProcessContext, run_with_bus
from gitops_mesh.settings import Settings

_SCRIPT = """
import asyncio, contextlib, sys
from gitops_mesh.process import run
from gitops_mesh.settings import Settings

@contextlib.asynccontextmanager
async def setup(ctx):
    async def work():
        if sys.argv[1] == "crash":
            raise RuntimeError("boom")
        await asyncio.Event().wait()
    ctx.spawn(work(), name="work")
    ctx.checks.ready["work"] = lambda: None
    yield
    print("cleaned-up", file=sys.stderr, flush=True)

sys.exit(run("test-controller", Settings(metrics_addr="127.0.0.1:0"), setup))
"""


def _start(mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _SCRIPT, mode], stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen[str], event: str) -> dict[str, object]:
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("{"):
            rec: dict[str, object] = json.loads(line)
            if rec.get("event") == event:
                return rec
    raise AssertionError(f"process ended before logging {event!r}")


def test_probes_then_graceful_sigterm() -> None:
    proc = _start("serve")
    try:
        port = _wait_for(proc, "starting")["metrics_port"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            assert r.status == 200
            assert "[+]work ok" in r.read().decode()
        proc.send_signal(signal.SIGTERM)
        assert proc.stderr is not None
        rest = proc.stderr.read()
        assert proc.wait(timeout=10) == 0
        assert "cleaned-up" in rest
        assert '"event":"stopped"' in rest
    finally:
        proc.kill()


def test_crashed_task_stops_the_process_with_an_error() -> None:
    proc = _start("crash")
    try:
        assert proc.stderr is not None
        crash = _wait_for(proc, "task crashed")
        assert crash["task"] == "work"
        assert "boom" in str(crash.get("exception"))
        assert proc.wait(timeout=10) == 1
    finally:
        proc.kill()


async def test_run_with_bus_wires_the_consumer_under_the_prefix_and_stops_it_on_exit() -> None:
    """Without Kafka (nothing listens on port 1): the wiring is decided at once, joining happens in the background."""
    settings = Settings(kafka_bootstrap="127.0.0.1:1", topic_prefix="t1.")
    ctx = ProcessContext(controller="test-controller", settings=settings)
    kube = KubeClient(KubeConfig(host="http://127.0.0.1:1"))  # never called: no informer is asked for
    producer = Producer(bootstrap=settings.kafka_bootstrap, client_id=ctx.controller)
    p = Platform(
        kube=kube,
        producer=producer,
        publisher=Publisher(producer=producer),
        recorder=EventRecorder(kube, ctx.controller, "test"),
        caches=Caches(kube),
    )
    try:
        async with run_with_bus(ctx, p, [], topics=[Topic.APPLIED], check="wakeups") as consumer:
            assert consumer.group_id == "t1.test-controller"
            assert consumer.topics == ["t1.applied"]
            assert consumer.dlq_topic == "t1.dlq"
            assert ctx.checks.ready["wakeups"] == consumer.ready
            assert (consumer.ready() or "").startswith("joining consumer group t1.test-controller")
        assert consumer.ready() == "consumer not started", "stopped on exit: its task is gone"
    finally:
        await producer.close()
        await kube.close()
