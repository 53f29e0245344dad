"""The kustomize-controller SIGKILLed mid-apply converges after a restart, without duplicates."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from gitops_mesh.bus.topics import Topics
from gitops_mesh.kube import KubeClient
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.mesh import running
from gitops_mesh_dev.repos import Repo
from tests.integration.conftest import eventually
from tests.integration.kustomize.controller.conftest import kustomize_args, source_args
from tests.integration.kustomize.controller.test_kustomization import gitrepo, kustomization

pytestmark = pytest.mark.stack
N = 24

MANIFESTS = """apiVersion: v1
kind: ConfigMap
metadata:
  name: cm-${index}
data: {name: "cm-${index}"}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-${index}
spec:
  replicas: 1
  selector: {matchLabels: {app: "web-${index}"}}
  template:
    metadata: {labels: {app: "web-${index}"}}
    spec: {containers: [{name: web, image: "nginx:1.27"}]}
"""


async def ready_count(kube: KubeClient, namespace: str) -> int:
    items = (await kube.list("kustomize.toolkit.fluxcd.io/v1", "Kustomization", namespace=namespace)).items
    return sum(1 for k in items if c.is_ready(k))


async def test_sigkill_mid_apply_then_restart_converges(
    kube: KubeClient,
    namespace: str,
    topics: Topics,
    stack_env: dict[str, str],
    tmp_path: Path,
    git_http: GitServer,
    make_repo: Callable[..., Repo],
) -> None:
    repo = make_repo("main")
    commit = repo.commit({"app/all.yaml": MANIFESTS})
    repo.push()
    args = kustomize_args(stack_env, topics, namespace, tmp_path)
    async with running("source-controller", source_args(stack_env, topics, namespace, tmp_path), tmp_path / "s.log"):
        await kube.create(gitrepo(namespace, git_http.url(repo.name)))
        async with running("kustomize-controller", args, tmp_path / "k1.log") as first:
            for i in range(N):
                obj = kustomization(namespace, f"app-{i}", "./app", targetNamespace=namespace, wait=True)
                obj["spec"]["postBuild"] = {"substitute": {"index": str(i)}}
                await kube.create(obj)

            async def some_applied() -> bool:
                cms = (
                    await kube.list(
                        "v1", "ConfigMap", namespace=namespace, label_selector="kustomize.toolkit.fluxcd.io/namespace"
                    )
                ).items
                return len(cms) >= 3

            await eventually(some_applied, timeout=60)
            first.send_signal(signal.SIGKILL)
        assert await ready_count(kube, namespace) < N, "the kill must land mid-way for this test to mean anything"

        async with running("kustomize-controller", args, tmp_path / "k2.log"):

            async def all_ready() -> bool:
                return await ready_count(kube, namespace) == N

            await eventually(all_ready, timeout=120)

    items = (await kube.list("kustomize.toolkit.fluxcd.io/v1", "Kustomization", namespace=namespace)).items
    for k in items:
        assert k["status"]["lastAppliedRevision"] == f"main@sha1:{commit}"
        assert len(k["status"]["inventory"]["entries"]) == 2
    owned = "kustomize.toolkit.fluxcd.io/namespace"
    cms = (await kube.list("v1", "ConfigMap", namespace=namespace, label_selector=owned)).items
    deps = (await kube.list("apps/v1", "Deployment", namespace=namespace, label_selector=owned)).items
    assert sorted(cm["metadata"]["name"] for cm in cms) == sorted(f"cm-{i}" for i in range(N))
    assert len(deps) == N
    assert all(d["status"].get("availableReplicas") == 1 for d in deps)
