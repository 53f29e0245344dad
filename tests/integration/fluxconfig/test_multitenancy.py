"""multiTenancy.enforce=false (``--multi-tenancy-enforce=false``) restores Flux's default: a namespace-scope
config's Kustomization is no longer confined to its namespace (test_fluxconfig has the enforced case)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gitops_mesh.bus.topics import Topics
from gitops_mesh.kube import KubeClient
from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.mesh import running
from gitops_mesh_dev.repos import Repo
from tests.integration.fluxconfig.conftest import (
    KS,
    FluxMesh,
    b64,
    configmap,
    fluxconfig,
    fluxconfig_args,
    protected,
)
from tests.integration.kustomize.controller.conftest import kustomize_args, source_args
from tests.support.bus import BusLog
from tests.support.fixtures import PASSWORD, USERNAME

pytestmark = pytest.mark.stack


@pytest.fixture
async def opted_out(
    stack_env: dict[str, str], kube: KubeClient, namespace: str, tmp_path: Path, topics: Topics
) -> AsyncIterator[FluxMesh]:
    fc = [*fluxconfig_args(stack_env, topics, namespace), "--multi-tenancy-enforce=false"]
    async with (
        running("source-controller", source_args(stack_env, topics, namespace, tmp_path), tmp_path / "source.log"),
        running("kustomize-controller", kustomize_args(stack_env, topics, namespace, tmp_path), tmp_path / "ks.log"),
        running("fluxconfig-controller", fc, tmp_path / "fluxconfig.log"),
    ):
        yield FluxMesh(BusLog(), tmp_path, kube, namespace)


async def test_opting_out_restores_flux_s_default(
    opted_out: FluxMesh, git_https: GitServer, make_repo: Callable[..., Repo], unique: str
) -> None:
    kube, ns = opted_out.kube, opted_out.namespace
    other = f"{unique}-else"
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    try:
        repo = make_repo("main")
        repo.commit({"x/cm.yaml": configmap("reaches-out", other)})
        repo.push()
        assert git_https.tls is not None
        await protected(kube, ns, "free", {"httpsKey": PASSWORD})
        spec = {
            "scope": "namespace",
            "gitRepository": {
                "url": git_https.url(repo.name),
                "repositoryRef": {"branch": "main"},
                "httpsUser": USERNAME,
                "httpsCACert": b64(git_https.tls.ca_pem),
            },
            "kustomizations": {"x": {"path": "./x"}},
        }
        await kube.create(fluxconfig(ns, "free", spec))
        ks = await opted_out.until_ready(KS, "Kustomization", "free-x", timeout=60)
        assert "serviceAccountName" not in ks["spec"]
        await kube.get("v1", "ConfigMap", "reaches-out", namespace=other)
    finally:
        await kube.delete("v1", "Namespace", other)
