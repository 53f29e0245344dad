"""A Kustomization setting a field kustomize-controller does not implement (spec.kubeConfig) is refused: Stalled
with the reason and a clear message, a Warning event and a `failed` bus event, and nothing applied or pruned on
this cluster — until the field is removed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gitops_mesh.kube import KubeClient
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.repos import Repo
from gitops_mesh_dev.waits import until_applied
from tests.integration.conftest import eventually
from tests.integration.kustomize.controller.conftest import Mesh
from tests.integration.kustomize.controller.test_kustomization import (
    KS,
    configmap,
    exists,
    gitrepo,
    ks_status,
    kustomization,
)

pytestmark = pytest.mark.stack

REFUSED = "spec.kubeConfig is not supported by this controller"


async def test_kubeconfig_is_refused_and_nothing_is_applied_here(
    kube: KubeClient, namespace: str, mesh: Mesh, git_http: GitServer, make_repo: Callable[..., Repo]
) -> None:
    repo = make_repo("main")
    sha = repo.commit({"remote/a.yaml": configmap("remote-a", "1"), "local/b.yaml": configmap("local-b", "1")})
    repo.push()
    await kube.create(gitrepo(namespace, git_http.url(repo.name)))
    remote = {"secretRef": {"name": "remote-cluster", "key": "value"}}
    await kube.create(kustomization(namespace, "remote", "./remote", targetNamespace=namespace, kubeConfig=remote))
    await kube.create(kustomization(namespace, "local", "./local", targetNamespace=namespace))
    # The same artifact applies through a Kustomization without the field: the refusal is the only difference.
    await until_applied(kube, namespace, "local", sha)

    async def refused() -> bool:
        obj = await ks_status(kube, namespace, "remote")
        return (
            c.is_false(obj, "Ready")
            and c.get_reason(obj, "Ready") == "UnsupportedField"
            and c.is_stalled(obj)
            and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
        )

    await eventually(refused, timeout=30)
    obj = await ks_status(kube, namespace, "remote")
    message = c.get_message(obj, "Ready")
    assert message.startswith(REFUSED)
    assert "would apply (and prune) the manifests on this cluster" in message
    assert not obj["status"].get("inventory")
    assert not obj["status"].get("lastAppliedRevision")
    assert not await exists(kube, "ConfigMap", namespace, "remote-a"), "a remote cluster's manifest applied here"

    async def warned() -> bool:
        events = await kube.list("v1", "Event", namespace=namespace)
        return any(
            e["reason"] == "UnsupportedField"
            and e["type"] == "Warning"
            and e["involvedObject"]["name"] == "remote"
            and REFUSED in str(e.get("message"))
            for e in events.items
        )

    await eventually(warned, timeout=20)

    async def failed_on_the_bus() -> bool:
        return any(e.reason == "UnsupportedField" and REFUSED in e.message for e in mesh.bus.of("failed", "remote"))

    await eventually(failed_on_the_bus, timeout=20)

    # Stalled until the spec changes: without the field it applies.
    await kube.patch(KS, "Kustomization", "remote", {"spec": {"kubeConfig": None}}, namespace=namespace)
    await until_applied(kube, namespace, "remote", sha)
    assert await exists(kube, "ConfigMap", namespace, "remote-a")
