"""The source-controller as a real process against the stack, with real git servers and Kafka."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gitops_mesh.bus.consumer import Consumer, RecordMeta
from gitops_mesh.bus.envelope import Event
from gitops_mesh.bus.topics import Topic, Topics, ensure_topics
from tests.conftest import ROOT
from tests.support.fixtures import git_http, git_root, make_repo  # noqa: F401

BIN = ROOT / ".venv" / "bin" / "source-controller"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Controller:
    proc: subprocess.Popen[bytes]
    storage: Path
    storage_port: int
    log: Path
    topics: Topics
    events: list[Event] = field(default_factory=list)

    def events_of(self, kind: str, name: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind and e.involved_object.name == name]

    def log_lines(self) -> list[dict[str, object]]:
        out = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out


def start(
    stack_env: dict[str, str], namespace: str, tmp: Path, topics: Topics
) -> tuple[subprocess.Popen[bytes], Path, int, Path]:
    storage, port, log = tmp / "storage", free_port(), tmp / "source-controller.log"
    args = [
        str(BIN),
        f"--kubeconfig={stack_env['KUBECONFIG']}",
        f"--kafka-bootstrap={stack_env['KAFKA_BOOTSTRAP']}",
        f"--topic-prefix={topics.prefix}",
        "--metrics-addr=127.0.0.1:0",
        f"--storage-path={storage}",
        f"--storage-addr=127.0.0.1:{port}",
        "--watch-all-namespaces=false",
        f"--watch-namespace={namespace}",
        "--log-level=debug",
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return proc, storage, port, log


@pytest.fixture
async def controller(
    stack_env: dict[str, str], namespace: str, tmp_path: Path, unique: str
) -> AsyncIterator[Controller]:
    topics = Topics(f"{unique}.")
    await ensure_topics(stack_env["KAFKA_BOOTSTRAP"], topics.all(), partitions=1)
    proc, storage, port, log = start(stack_env, namespace, tmp_path, topics)
    ctl = Controller(proc, storage, port, log, topics)

    async def record(event: Event, _: RecordMeta) -> None:
        ctl.events.append(event)

    consumer = Consumer(
        bootstrap=stack_env["KAFKA_BOOTSTRAP"],
        group_id=f"{unique}-observer",
        topics=[Topic.ARTIFACT_READY, Topic.FAILED],
        names=topics,
        handler=record,
        offset_reset="earliest",
    )
    await consumer.start()
    try:
        yield ctl
    finally:
        await consumer.stop()
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 15)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.returncode not in (0, -15):
            sys.stderr.write(log.read_text()[-5000:])
