"""postBuild substitution with variables read from real ConfigMaps and Secrets on the apiserver."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gitops_mesh.kube import KubeClient
from kustomize_controller.build import SubstitutionFailed, VariablesNotFound, build
from tests.integration.conftest import until_available
from tests.integration.kustomize.build.conftest import Binaries, write_tree

pytestmark = [pytest.mark.stack, pytest.mark.timeout(120)]

MANIFEST = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings-${cluster_name}
  labels:
    env: ${cluster_env:=dev}
data:
  region: ${region}
  tier: ${tier}
  token: ${token}
  untouched: $${literal}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: script
  annotations:
    kustomize.toolkit.fluxcd.io/substitute: disabled
data:
  run.sh: echo ${HOME}
"""


async def create(kube: KubeClient, obj: dict[str, Any]) -> None:
    await until_available(lambda: kube.create(obj))


async def run(
    tree: Path, spec: dict[str, Any], binaries: Binaries, kube: KubeClient, namespace: str
) -> list[dict[str, Any]]:
    return await build(
        tree,
        spec,
        kustomize=binaries.kustomize,
        sops=None,
        kube=kube,
        namespace=namespace,
        no_remote_bases=True,
        timeout=60.0,
    )


def named(objects: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    """The one object whose name starts with ``prefix`` (kustomize orders its output its own way)."""
    (found,) = [o for o in objects if o["metadata"]["name"].startswith(prefix)]
    return found


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "repo", {"app/manifests.yaml": MANIFEST})


async def test_configmap_and_secret_sources_in_flux_order(
    tree: Path, binaries: Binaries, kube: KubeClient, namespace: str
) -> None:
    await create(
        kube,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cluster-vars", "namespace": namespace},
            "data": {"cluster_name": "eu1", "region": "from-configmap", "tier": "from-configmap"},
        },
    )
    await create(
        kube,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "cluster-secrets", "namespace": namespace},
            "stringData": {"tier": "from-secret", "token": "s3cr3t\n"},
        },
    )
    spec = {
        "path": "app",
        "postBuild": {
            "substitute": {"region": "inline"},
            "substituteFrom": [
                {"kind": "ConfigMap", "name": "cluster-vars"},
                {"kind": "Secret", "name": "cluster-secrets"},
                {"kind": "ConfigMap", "name": "absent", "optional": True},
            ],
        },
    }
    objects = await run(tree, spec, binaries, kube, namespace)
    settings, script = named(objects, "settings-"), named(objects, "script")
    assert settings["metadata"]["name"] == "settings-eu1"
    assert settings["metadata"]["labels"] == {"env": "dev"}
    assert settings["data"] == {
        "region": "inline",
        "tier": "from-secret",
        "token": "s3cr3t",
        "untouched": "${literal}",
    }
    assert script["data"] == {"run.sh": "echo ${HOME}"}


async def test_required_source_missing_names_it(
    tree: Path, binaries: Binaries, kube: KubeClient, namespace: str
) -> None:
    spec = {"path": "app", "postBuild": {"substituteFrom": [{"kind": "Secret", "name": "cluster-secrets"}]}}
    with pytest.raises(VariablesNotFound) as info:
        await run(tree, spec, binaries, kube, namespace)
    assert str(info.value) == (
        f"substitute from 'Secret/cluster-secrets' error: Secret '{namespace}/cluster-secrets' not found"
    )
    assert info.value.reason == "BuildFailed"


async def test_optional_missing_source_counts_as_empty(
    tree: Path, binaries: Binaries, kube: KubeClient, namespace: str
) -> None:
    spec = {
        "path": "app",
        "postBuild": {
            "substitute": {"cluster_name": "x"},
            "substituteFrom": [{"kind": "ConfigMap", "name": "absent", "optional": True}],
        },
    }
    objects = await run(tree, spec, binaries, kube, namespace)
    assert named(objects, "settings-")["metadata"]["name"] == "settings-x"
    assert named(objects, "settings-")["data"]["region"] is None


async def test_invalid_variable_name_from_a_configmap(
    tree: Path, binaries: Binaries, kube: KubeClient, namespace: str
) -> None:
    await create(
        kube,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "bad-vars", "namespace": namespace},
            "data": {"cluster-name": "eu1"},
        },
    )
    spec = {"path": "app", "postBuild": {"substituteFrom": [{"kind": "ConfigMap", "name": "bad-vars"}]}}
    with pytest.raises(SubstitutionFailed, match=re.escape("'cluster-name' var name is invalid")):
        await run(tree, spec, binaries, kube, namespace)


async def test_strict_substitution_names_the_object(
    tree: Path, binaries: Binaries, kube: KubeClient, namespace: str
) -> None:
    spec = {"path": "app", "postBuild": {"substitute": {"cluster_name": "x"}}}
    with pytest.raises(SubstitutionFailed, match=re.escape("'ConfigMap/settings-${cluster_name}': variable not set")):
        await build(
            tree,
            spec,
            kustomize=binaries.kustomize,
            sops=None,
            kube=kube,
            namespace=namespace,
            no_remote_bases=True,
            timeout=60.0,
            strict_substitution=True,
        )
