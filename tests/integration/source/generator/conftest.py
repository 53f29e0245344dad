"""source-controller (with its ArtifactGenerator runner) and kustomize-controller as real processes over real Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitops_mesh.bus.topics import Topic, Topics, ensure_topics
from gitops_mesh_dev.mesh import running
from tests.integration.kustomize.controller.conftest import kustomize_args, source_args
from tests.support.bus import BusLog, recording
from tests.support.fixtures import git_http, git_root, make_repo  # noqa: F401


@dataclass
class Generators:
    bus: BusLog
    storage: Path


@pytest.fixture
async def generators(
    stack_env: dict[str, str], namespace: str, tmp_path: Path, unique: str
) -> AsyncIterator[Generators]:
    topics = Topics(f"{unique}.")
    await ensure_topics(stack_env["KAFKA_BOOTSTRAP"], topics.all(), partitions=1)
    source = source_args(stack_env, topics, namespace, tmp_path)
    kustomize = kustomize_args(stack_env, topics, namespace, tmp_path)
    which = [Topic.ARTIFACT_READY, Topic.APPLIED, Topic.FAILED]
    async with (
        recording(stack_env["KAFKA_BOOTSTRAP"], topics, f"{unique}-observer", which) as bus,
        running("source-controller", source, tmp_path / "source-controller.log"),
        running("kustomize-controller", kustomize, tmp_path / "kustomize-controller.log"),
    ):
        yield Generators(bus, tmp_path / "storage")
