"""Kustomizations end to end: git → source-controller → Kafka → kustomize-controller → the cluster."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gitops_mesh.errors import NotFound
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.repos import Repo
from gitops_mesh_dev.waits import until_applied
from tests.integration.conftest import eventually
from tests.integration.kustomize.controller.conftest import Mesh

pytestmark = pytest.mark.stack

SRC = "source.toolkit.fluxcd.io/v1"
KS = "kustomize.toolkit.fluxcd.io/v1"


def configmap(name: str, value: str) -> str:
    return f'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: "{value}"\n'


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:1.27"}]}
"""


def gitrepo(namespace: str, url: str) -> KubeObject:
    return {
        "apiVersion": SRC,
        "kind": "GitRepository",
        "metadata": {"name": "repo", "namespace": namespace},
        "spec": {"url": url, "interval": "10m", "ref": {"branch": "main"}},
    }


def kustomization(namespace: str, name: str, path: str, **spec: Any) -> KubeObject:
    return {
        "apiVersion": KS,
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "interval": "10m",
            "path": path,
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "repo"},
            **spec,
        },
    }


async def ks_status(kube: KubeClient, namespace: str, name: str) -> KubeObject:
    return await kube.get(KS, "Kustomization", name, namespace=namespace)


async def request(kube: KubeClient, namespace: str, token: str) -> None:
    await kube.patch(
        SRC,
        "GitRepository",
        "repo",
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}},
        namespace=namespace,
    )


async def exists(kube: KubeClient, kind: str, namespace: str, name: str) -> bool:
    try:
        await kube.get("v1" if kind == "ConfigMap" else "apps/v1", kind, name, namespace=namespace)
    except NotFound:
        return False
    return True


async def test_apply_wait_update_prune_and_announce(
    kube: KubeClient, namespace: str, mesh: Mesh, git_http: GitServer, make_repo: Callable[..., Repo]
) -> None:
    repo = make_repo("main")
    first = repo.commit(
        {"deploy/a.yaml": configmap("a", "1"), "deploy/b.yaml": configmap("b", "1"), "deploy/web.yaml": DEPLOYMENT}
    )
    repo.push()
    await kube.create(gitrepo(namespace, git_http.url(repo.name)))
    await kube.create(kustomization(namespace, "app", "./deploy", wait=True, targetNamespace=namespace, timeout="2m"))

    obj = await until_applied(kube, namespace, "app", first)
    assert c.is_true(obj, "Healthy")
    ids = sorted(e["id"] for e in obj["status"]["inventory"]["entries"])
    assert ids == [f"{namespace}_a__ConfigMap", f"{namespace}_b__ConfigMap", f"{namespace}_web_apps_Deployment"]
    web = await kube.get("apps/v1", "Deployment", "web", namespace=namespace)
    assert web["status"]["availableReplicas"] == 2, "wait: true means Ready only once the rollout is done"
    labels = web["metadata"]["labels"]
    assert labels["kustomize.toolkit.fluxcd.io/name"] == "app"
    assert labels["kustomize.toolkit.fluxcd.io/namespace"] == namespace
    assert obj["status"]["history"][0]["metadata"]["revision"] == f"main@sha1:{first}"

    async def announced() -> bool:
        return bool(mesh.bus.of("applied", "app"))

    await eventually(announced)
    applied = mesh.bus.of("applied", "app")[0]
    assert applied.revision == f"main@sha1:{first}"
    assert f"ConfigMap/{namespace}/a created" in applied.message

    # A new commit reaches the cluster by itself once the source has it: artifact-ready wakes the Kustomization.
    second = repo.commit({"deploy/b.yaml": None, "deploy/a.yaml": configmap("a", "2")})
    repo.push()
    await request(kube, namespace, "second")
    obj = await until_applied(kube, namespace, "app", second)
    assert not await exists(kube, "ConfigMap", namespace, "b"), "pruned"
    a = await kube.get("v1", "ConfigMap", "a", namespace=namespace)
    assert a["data"]["value"] == "2"
    assert len(obj["status"]["inventory"]["entries"]) == 2


async def test_bad_commit_fails_clearly_keeps_objects_then_recovers(
    kube: KubeClient, namespace: str, mesh: Mesh, git_http: GitServer, make_repo: Callable[..., Repo]
) -> None:
    repo = make_repo("main")
    good = repo.commit({"deploy/a.yaml": configmap("a", "1")})
    repo.push()
    await kube.create(gitrepo(namespace, git_http.url(repo.name)))
    await kube.create(kustomization(namespace, "app", "./deploy", targetNamespace=namespace))
    await until_applied(kube, namespace, "app", good)

    repo.commit({"deploy/broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n"})
    repo.push()
    await request(kube, namespace, "bad")

    async def failed() -> bool:
        obj = await ks_status(kube, namespace, "app")
        return c.is_false(obj, "Ready") and "broken.yaml" in c.get_message(obj, "Ready")

    await eventually(failed, timeout=60)
    obj = await ks_status(kube, namespace, "app")
    assert obj["status"]["lastAppliedRevision"] == f"main@sha1:{good}", "the last good revision stays applied"
    assert await exists(kube, "ConfigMap", namespace, "a"), "previous objects are left in place"

    async def reported() -> bool:
        return any("broken.yaml" in e.message for e in mesh.bus.of("failed", "app"))

    await eventually(reported)
    assert all(e.severity == "error" for e in mesh.bus.of("failed", "app"))
    bad = obj["status"]["lastAttemptedRevision"]
    assert bad != f"main@sha1:{good}"
    assert any(e.revision == bad for e in mesh.bus.of("failed", "app")), "the failed event names the revision tried"

    fixed = repo.commit({"deploy/broken.yaml": configmap("x", "ok")})
    repo.push()
    await request(kube, namespace, "fixed")
    await until_applied(kube, namespace, "app", fixed)
    assert await exists(kube, "ConfigMap", namespace, "x")


async def test_depends_on_waits_then_follows_at_once(
    kube: KubeClient, namespace: str, mesh: Mesh, git_http: GitServer, make_repo: Callable[..., Repo]
) -> None:
    repo = make_repo("main")
    commit = repo.commit({"infra/a.yaml": configmap("infra", "1"), "apps/b.yaml": configmap("app", "1")})
    repo.push()
    await kube.create(
        kustomization(namespace, "apps", "./apps", targetNamespace=namespace, dependsOn=[{"name": "infra"}])
    )
    await kube.create(kustomization(namespace, "infra", "./infra", targetNamespace=namespace))
    await kube.create(gitrepo(namespace, git_http.url(repo.name)))

    await until_applied(kube, namespace, "apps", commit)
    infra = await ks_status(kube, namespace, "infra")
    apps = await ks_status(kube, namespace, "apps")
    assert c.is_ready(infra)
    assert apps["status"]["history"][0]["firstReconciled"] >= infra["status"]["history"][0]["firstReconciled"]

    async def both() -> bool:
        return bool(mesh.bus.of("applied", "infra")) and bool(mesh.bus.of("applied", "apps"))

    await eventually(both)
    names = [e.involved_object.name for e in mesh.bus.events if e.kind == "applied"]
    assert names.index("infra") < names.index("apps")
