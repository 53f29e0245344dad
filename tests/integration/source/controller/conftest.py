"""The source-controller as a real process against the stack, with real git servers and Kafka."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitops_mesh.bus.envelope import Event
from gitops_mesh.bus.topics import Topic, Topics, ensure_topics
from gitops_mesh_dev.mesh import common_args, free_port, running
from tests.support.bus import BusLog, recording
from tests.support.fixtures import git_http, git_root, make_repo  # noqa: F401


@dataclass
class Controller:
    storage: Path
    storage_port: int
    log: Path
    topics: Topics
    bus: BusLog

    @property
    def events(self) -> list[Event]:
        return self.bus.events

    def events_of(self, kind: str, name: str) -> list[Event]:
        return self.bus.of(kind, name)

    def log_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]


@pytest.fixture
async def controller(
    stack_env: dict[str, str], namespace: str, tmp_path: Path, unique: str
) -> AsyncIterator[Controller]:
    topics = Topics(f"{unique}.")
    await ensure_topics(stack_env["KAFKA_BOOTSTRAP"], topics.all(), partitions=1)
    storage, port, log = tmp_path / "storage", free_port(), tmp_path / "source-controller.log"
    args = [*common_args(stack_env, topics, namespace), f"--storage-path={storage}", f"--storage-addr=127.0.0.1:{port}"]
    async with (
        recording(
            stack_env["KAFKA_BOOTSTRAP"], topics, f"{unique}-observer", [Topic.ARTIFACT_READY, Topic.FAILED]
        ) as bus,
        running("source-controller", args, log),
    ):
        yield Controller(storage, port, log, topics, bus)
