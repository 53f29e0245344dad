"""A Kustomization whose sourceRef is an OCIRepository applies what `gitops-mesh push artifact` published, and
follows a new push: source-controller and kustomize-controller as real processes over Kafka."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_mesh.errors import NotFound
from gitops_mesh.kube import KubeClient
from gitops_mesh_dev.ociregistry import OciRegistry
from tests.integration.conftest import eventually
from tests.integration.kustomize.controller.conftest import Mesh
from tests.integration.source.oci.conftest import push, write_tree

pytestmark = [pytest.mark.stack, pytest.mark.timeout(180)]


def configmap(value: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-oci\ndata:\n  value: {value}\n"


async def test_kustomization_applies_from_an_oci_repository(
    kube: KubeClient, namespace: str, mesh: Mesh, registry: OciRegistry, tmp_path: Path
) -> None:
    url = f"oci://{registry.address}/manifests/app"
    files = {"app/cm.yaml": configmap("one"), "app/kustomization.yaml": "resources: [cm.yaml]\n"}
    await push(f"{url}:latest", write_tree(tmp_path / "one", files))
    await kube.create(
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "OCIRepository",
            "metadata": {"name": "app", "namespace": namespace},
            "spec": {"url": url, "interval": "10m", "insecure": True},
        }
    )
    await kube.create(
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "app", "namespace": namespace},
            "spec": {
                "interval": "10m",
                "path": "./app",
                "prune": True,
                "targetNamespace": namespace,
                "sourceRef": {"kind": "OCIRepository", "name": "app"},
            },
        }
    )

    async def value_is(expected: str) -> bool:
        try:
            cm = await kube.get("v1", "ConfigMap", "from-oci", namespace=namespace)
        except NotFound:
            return False
        return bool(cm.get("data", {}).get("value") == expected)

    await eventually(lambda: value_is("one"), timeout=90)
    source = await kube.get("source.toolkit.fluxcd.io/v1", "OCIRepository", "app", namespace=namespace)
    revision = source["status"]["artifact"]["revision"]
    assert revision.startswith("latest@sha256:")

    async def applied(revision: str) -> bool:
        return any(e.revision == revision for e in mesh.bus.of("applied", "app"))

    await eventually(lambda: applied(revision), timeout=30)

    # A new push reaches the cluster through the OCIRepository's next artifact and its artifact-ready.
    await push(f"{url}:latest", write_tree(tmp_path / "two", {**files, "app/cm.yaml": configmap("two")}))
    await kube.patch(
        "source.toolkit.fluxcd.io/v1",
        "OCIRepository",
        "app",
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "now"}}},
        namespace=namespace,
    )
    await eventually(lambda: value_is("two"), timeout=90)
