"""source-, kustomize- and fluxconfig-controller as real processes against the stack, over real Kafka."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gitops_mesh.bus.topics import Topic, Topics
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.mesh import common_args, running
from tests.integration.conftest import eventually
from tests.integration.kustomize.controller.conftest import kustomize_args, source_args, topics  # noqa: F401
from tests.support.bus import BusLog, recording
from tests.support.fixtures import git_https, git_root, git_tls, make_repo, sshd  # noqa: F401

API = "clusterconfig.azure.com/v1alpha1"
SRC = "source.toolkit.fluxcd.io/v1"
KS = "kustomize.toolkit.fluxcd.io/v1"


@dataclass
class FluxMesh:
    bus: BusLog
    logs: Path
    kube: KubeClient
    namespace: str

    async def config(self, name: str) -> KubeObject:
        return await self.kube.get(API, "FluxConfig", name, namespace=self.namespace)

    async def until_config(self, name: str, check: Callable[[KubeObject], bool], timeout: float = 60) -> KubeObject:
        """The FluxConfig once ``check`` holds for it."""
        found: dict[str, KubeObject] = {}

        async def ok() -> bool:
            found["obj"] = await self.config(name)
            return check(found["obj"])

        try:
            await eventually(ok, timeout=timeout, interval=0.2)
        except TimeoutError:
            raise AssertionError(f"FluxConfig {name}: {found.get('obj', {}).get('status')}") from None
        return found["obj"]

    async def until_ready(self, api: str, kind: str, name: str, timeout: float = 60) -> KubeObject:
        found: dict[str, KubeObject] = {}

        async def ok() -> bool:
            found["obj"] = await self.kube.get(api, kind, name, namespace=self.namespace)
            return c.is_ready(found["obj"])

        try:
            await eventually(ok, timeout=timeout, interval=0.2)
        except TimeoutError:
            raise AssertionError(f"{kind} {name} not ready: {found.get('obj', {}).get('status')}") from None
        return found["obj"]


def fluxconfig_args(stack_env: dict[str, str], topics: Topics, namespace: str) -> list[str]:
    return [*common_args(stack_env, topics, namespace), "--retry-interval=1s", "--deletion-poll=500ms"]


@pytest.fixture
async def mesh(
    stack_env: dict[str, str],
    kube: KubeClient,
    namespace: str,
    tmp_path: Path,
    unique: str,
    topics: Topics,
) -> AsyncIterator[FluxMesh]:
    which = [Topic.ARTIFACT_READY, Topic.APPLIED, Topic.FAILED]
    async with (
        recording(stack_env["KAFKA_BOOTSTRAP"], topics, f"{unique}-observer", which) as bus,
        running("source-controller", source_args(stack_env, topics, namespace, tmp_path), tmp_path / "source.log"),
        running("kustomize-controller", kustomize_args(stack_env, topics, namespace, tmp_path), tmp_path / "ks.log"),
        running("fluxconfig-controller", fluxconfig_args(stack_env, topics, namespace), tmp_path / "fluxconfig.log"),
    ):
        yield FluxMesh(bus, tmp_path, kube, namespace)


def b64(value: str | bytes) -> str:
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode()


def fluxconfig(namespace: str, name: str, spec: dict[str, Any]) -> KubeObject:
    return {"apiVersion": API, "kind": "FluxConfig", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


async def protected(kube: KubeClient, namespace: str, config: str, values: dict[str, str | bytes]) -> None:
    """The protected parameters Secret as the agent writes it: each value base64 as ARM takes it."""
    data = {k: b64(b64(v)) for k, v in values.items()}  # ARM's base64, then the Secret's own
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{config}-protected-parameters", "namespace": namespace},
            "data": data,
        }
    )


def configmap(name: str, namespace: str | None = None) -> str:
    ns = f"\n  namespace: {namespace}" if namespace else ""
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}{ns}\ndata:\n  k: v\n"


async def gone(call: Callable[[], Awaitable[Any]]) -> bool:
    from gitops_mesh.errors import NotFound

    try:
        await call()
    except NotFound:
        return True
    return False


async def sleep_a_little() -> None:
    await asyncio.sleep(0.5)
