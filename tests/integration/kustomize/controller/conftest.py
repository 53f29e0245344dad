"""source-controller and kustomize-controller as real processes, talking over real Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitops_mesh.bus.topics import Topic, Topics, ensure_topics
from gitops_mesh_dev.mesh import common_args, free_port, running
from tests.support.bus import BusLog, recording
from tests.support.fixtures import git_http, git_root, make_repo  # noqa: F401


@dataclass
class Mesh:
    bus: BusLog
    logs: Path


def source_args(stack_env: dict[str, str], topics: Topics, namespace: str, tmp: Path) -> list[str]:
    common = common_args(stack_env, topics, namespace)
    return [*common, f"--storage-path={tmp / 'storage'}", f"--storage-addr=127.0.0.1:{free_port()}"]


def kustomize_args(stack_env: dict[str, str], topics: Topics, namespace: str, tmp: Path) -> list[str]:
    args = [
        *common_args(stack_env, topics, namespace),
        f"--kustomize-path={stack_env['KUSTOMIZE']}",
        f"--tree-cache-dir={tmp / 'trees'}",
        "--health-poll=500ms",
        "--requeue-dependency=5s",
    ]
    if stack_env.get("SOPS"):
        args.append(f"--sops-path={stack_env['SOPS']}")
    return args


@pytest.fixture
async def topics(stack_env: dict[str, str], unique: str) -> Topics:
    names = Topics(f"{unique}.")
    await ensure_topics(stack_env["KAFKA_BOOTSTRAP"], names.all(), partitions=1)
    return names


@pytest.fixture
async def mesh(
    stack_env: dict[str, str], namespace: str, tmp_path: Path, unique: str, topics: Topics
) -> AsyncIterator[Mesh]:
    source = source_args(stack_env, topics, namespace, tmp_path)
    kustomize = kustomize_args(stack_env, topics, namespace, tmp_path)
    which = [Topic.ARTIFACT_READY, Topic.APPLIED, Topic.FAILED]
    async with (
        recording(stack_env["KAFKA_BOOTSTRAP"], topics, f"{unique}-observer", which) as bus,
        running("source-controller", source, tmp_path / "source-controller.log"),
        running("kustomize-controller", kustomize, tmp_path / "kustomize-controller.log"),
    ):
        yield Mesh(bus, tmp_path)
