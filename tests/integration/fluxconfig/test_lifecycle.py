"""FluxConfig across a SIGKILL of its controller, and suspend/resume of what it made."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gitops_mesh.bus.topics import Topics
from gitops_mesh.kube import KubeClient
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.mesh import Controller
from tests.integration.conftest import eventually
from tests.integration.fluxconfig.conftest import API, KS, SRC, fluxconfig, fluxconfig_args
from tests.integration.kustomize.controller.conftest import topics  # noqa: F401

pytestmark = pytest.mark.stack

GIT = {"url": "ssh://git@127.0.0.1:1/nowhere", "repositoryRef": {"branch": "main"}}
ENTRIES = {"a": {}, "b": {"dependsOn": ["a"]}, "c": {"dependsOn": ["b"]}}


@pytest.fixture
async def controller(
    stack_env: dict[str, str],
    namespace: str,
    tmp_path: Path,
    topics: Topics,  # noqa: F811
) -> AsyncIterator[Controller]:
    ctl = Controller("fluxconfig-controller", fluxconfig_args(stack_env, topics, namespace), tmp_path / "fc.log")
    ctl.start()
    try:
        yield ctl
    finally:
        await ctl.stop()


async def test_sigkill_mid_creation_converges_without_a_second_key(
    controller: Controller, kube: KubeClient, namespace: str
) -> None:
    ns = namespace
    await controller.ready()
    await kube.create(fluxconfig(ns, "k", {"gitRepository": GIT, "kustomizations": ENTRIES}))

    async def started() -> bool:
        secrets = (await kube.list("v1", "Secret", namespace=ns)).items
        return any(s["metadata"]["name"] == "k-ssh-keypair" for s in secrets)

    await eventually(started, timeout=30, interval=0.02)
    controller.kill()  # somewhere between the key pair and the status
    controller.start()
    await controller.ready()

    async def done() -> bool:
        cfg = await kube.get(API, "FluxConfig", "k", namespace=ns)
        return c.is_ready(cfg) and cfg["status"].get("observedGeneration") == cfg["metadata"]["generation"]

    await eventually(done, timeout=60)
    cfg = await kube.get(API, "FluxConfig", "k", namespace=ns)
    keypair = await kube.get("v1", "Secret", "k-ssh-keypair", namespace=ns)
    # the key written before the kill is the one published: a deploy key registered from it stays valid
    assert base64.b64decode(keypair["data"]["identity.pub"]).decode() == cfg["status"]["repositoryPublicKey"]
    auth = await kube.get("v1", "Secret", "k-auth", namespace=ns)
    assert auth["data"]["identity"] == keypair["data"]["identity"]
    names = sorted(k["metadata"]["name"] for k in (await kube.list(KS, "Kustomization", namespace=ns)).items)
    assert names == ["k-a", "k-b", "k-c"]
    assert [g["metadata"]["name"] for g in (await kube.list(SRC, "GitRepository", namespace=ns)).items] == ["k"]


async def test_suspend_and_resume_reach_the_flux_objects(
    controller: Controller, kube: KubeClient, namespace: str
) -> None:
    ns = namespace
    await controller.ready()
    await kube.create(fluxconfig(ns, "s", {"gitRepository": GIT, "kustomizations": {"a": {}}}))

    async def suspended_is(value: bool) -> bool:
        objs = [
            await kube.get(SRC, "GitRepository", "s", namespace=ns),
            await kube.get(KS, "Kustomization", "s-a", namespace=ns),
        ]
        return all(o["spec"].get("suspend") is value for o in objs)

    await eventually(lambda: suspended_is(False), timeout=30)
    await kube.patch(API, "FluxConfig", "s", {"spec": {"suspend": True}}, namespace=ns)
    await eventually(lambda: suspended_is(True), timeout=30)
    await kube.patch(API, "FluxConfig", "s", {"spec": {"suspend": False}}, namespace=ns)
    await eventually(lambda: suspended_is(False), timeout=30)
