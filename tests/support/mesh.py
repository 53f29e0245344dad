"""Controllers of the mesh as real processes in tests, and a recorder of what they say on the bus."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gitops_mesh.bus.consumer import Consumer, RecordMeta
from gitops_mesh.bus.envelope import Event
from gitops_mesh.bus.topics import Topic, Topics
from tests.conftest import ROOT

BIN = ROOT / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def common_args(stack_env: dict[str, str], topics: Topics, namespace: str) -> list[str]:
    """The shared flags: the stack, our own topics, only this test's namespace."""
    return [
        f"--kubeconfig={stack_env['KUBECONFIG']}",
        f"--kafka-bootstrap={stack_env['KAFKA_BOOTSTRAP']}",
        f"--topic-prefix={topics.prefix}",
        "--metrics-addr=127.0.0.1:0",
        "--watch-all-namespaces=false",
        f"--watch-namespace={namespace}",
        "--log-level=debug",
    ]


@contextlib.asynccontextmanager
async def running(name: str, args: Sequence[str], log: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    """``.venv/bin/<name> args`` for the duration of the block; its log is shown when it did not stop cleanly."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(BIN / name), *args], stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 15)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.returncode not in (0, -15):
            sys.stderr.write(f"--- {name} (exit {proc.returncode}) ---\n{log.read_text()[-5000:]}")


@dataclass
class BusLog:
    """Every event on the given topics since the test started."""

    events: list[Event] = field(default_factory=list)

    def of(self, kind: str, name: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind and e.involved_object.name == name]

    async def record(self, event: Event, _: RecordMeta) -> None:
        self.events.append(event)


@contextlib.asynccontextmanager
async def recording(bootstrap: str, topics: Topics, group: str, which: Sequence[Topic]) -> AsyncIterator[BusLog]:
    bus = BusLog()
    consumer = Consumer(
        bootstrap=bootstrap,
        group_id=group,
        topics=list(which),
        names=topics,
        handler=bus.record,
        offset_reset="earliest",
    )
    await consumer.start()
    try:
        yield bus
    finally:
        await consumer.stop()
