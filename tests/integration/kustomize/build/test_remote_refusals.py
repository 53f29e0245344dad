"""The real kustomize never reaches the network or the controller's files (issue #11 item 3).

A probe HTTP server on loopback stands for an internal endpoint: every build below must leave it with
zero requests. The checker refuses first (:mod:`kustomize_controller.build.graph`); where kustomize is
run directly, past the checker, its environment still refuses (git's protocol allow-list, the
unreachable proxy, helm off).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gitops_mesh_dev.http import serve
from kustomize_controller.build import KustomizeFailed, RemoteBaseRefused, UnsafeReference, build
from kustomize_controller.build.kustomize import kustomize_build
from tests.integration.kustomize.build.conftest import Binaries, write_tree

pytestmark = [pytest.mark.timeout(120)]

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\ndata: {{a: '1'}}\n"


class Probe:
    """A loopback HTTP server that records every request it gets."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def probe() -> AsyncIterator[Probe]:
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path_qs}")
        return web.Response(text="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: leaked}\n")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner, port = await serve(app)
    found = Probe(port)
    found.requests = seen
    try:
        yield found
    finally:
        await runner.cleanup()


async def run(tree: Path, binaries: Binaries, *, no_remote_bases: bool, **spec: Any) -> list[dict[str, Any]]:
    return await build(
        tree,
        {"path": "app", **spec},
        kustomize=binaries.kustomize,
        sops=None,
        kube=None,
        namespace="flux-system",
        no_remote_bases=no_remote_bases,
        timeout=60.0,
    )


def kustomizations(url: str) -> dict[str, str]:
    """One kustomization per field that kustomize loads a URL from, each pointing at ``url``."""
    return {
        "GIT:: resource": f"resources: ['GIT::{url}/org/repo//base']\n",
        "HTTP resource": f"resources: ['HTTP://{url.removeprefix('http://')}/cm.yaml']\n",
        "generator files": f"configMapGenerator: [{{name: x, files: ['{url}/files']}}]\n",
        "generator key=file": f"configMapGenerator: [{{name: x, files: ['k=HtTp{url[4:]}/key']}}]\n",
        "generator envs": f"secretGenerator: [{{name: x, envs: ['{url}/envs']}}]\n",
        "patches path": f"resources: [cm.yaml]\npatches: [{{path: '{url}/patch'}}]\n",
        "patchesStrategicMerge": f"resources: [cm.yaml]\npatchesStrategicMerge: ['{url}/psm']\n",
        "patchesJson6902": f"resources: [cm.yaml]\npatchesJson6902: [{{path: '{url}/json', target: {{kind: X}}}}]\n",
        "openapi": f"resources: [cm.yaml]\nopenapi: {{path: '{url}/openapi'}}\n",
        "crds": f"resources: [cm.yaml]\ncrds: ['{url}/crds']\n",
        "configurations": f"resources: [cm.yaml]\nconfigurations: ['{url}/configurations']\n",
        "replacements": f"resources: [cm.yaml]\nreplacements: [{{path: '{url}/replacements'}}]\n",
        "components": f"components: ['{url}/org/repo//comp']\n",
        "helmCharts": f"helmCharts: [{{name: c, repo: '{url}/charts', version: 1.0.0}}]\n",
        "inline transformer": (
            "resources: [cm.yaml]\ntransformers:\n- |\n  apiVersion: builtin\n  kind: PatchTransformer\n"
            f"  metadata: {{name: p}}\n  path: {url}/inline\n  target: {{kind: ConfigMap}}\n"
        ),
        "folded field name": f"RE\u017fOURCES: ['{url}/folded.yaml']\n",
    }


@pytest.mark.parametrize("case", list(kustomizations("http://x")))
async def test_no_field_reaches_the_network_without_remote_bases(
    tmp_path: Path, binaries: Binaries, probe: Probe, case: str
) -> None:
    tree = write_tree(
        tmp_path / "repo", {"app/kustomization.yaml": kustomizations(probe.url)[case], "app/cm.yaml": CM.format("x")}
    )
    with pytest.raises(RemoteBaseRefused, match=r"is a remote (base|file), and remote bases are disabled"):
        await run(tree, binaries, no_remote_bases=True)
    assert probe.requests == []


async def test_a_patched_plugin_configuration_cannot_fetch(tmp_path: Path, binaries: Binaries, probe: Probe) -> None:
    # the live probe's way round a static check: a directory of configurations patching their path
    tree = write_tree(
        tmp_path / "repo",
        {
            "app/kustomization.yaml": "resources: [cm.yaml]\ntransformers: [cfg]\n",
            "app/cm.yaml": CM.format("x"),
            "app/cfg/kustomization.yaml": (
                "resources: [t.yaml]\npatches:\n- target: {kind: PatchTransformer}\n"
                f'  patch: \'[{{"op": "replace", "path": "/path", "value": "{probe.url}/patched"}}]\'\n'
            ),
            "app/cfg/t.yaml": "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: p.yaml\n",
        },
    )
    for no_remote_bases in (True, False):
        with pytest.raises(UnsafeReference, match="is listed as plugin configurations and sets patches"):
            await run(tree, binaries, no_remote_bases=no_remote_bases)
    assert probe.requests == []


def git_repository(path: Path) -> Path:
    """A repository on the controller's host, as the one the live probe cloned."""
    write_tree(path, {"base/kustomization.yaml": "resources: [cm.yaml]\n", "base/cm.yaml": CM.format("stolen")})
    env = {"PATH": "/usr/bin:/bin", "HOME": str(path), "GIT_CONFIG_NOSYSTEM": "1"}
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "."],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x"],
    ):
        subprocess.run(argv, cwd=path, env=env, check=True)
    return path


@pytest.mark.parametrize("spelling", ["git::file://{}//base", "GIT::FILE://{}//base", "file://{}//base"])
@pytest.mark.parametrize("no_remote_bases", [True, False])
async def test_a_repository_of_the_host_is_never_cloned(
    tmp_path: Path, binaries: Binaries, spelling: str, no_remote_bases: bool
) -> None:
    ref = spelling.format(git_repository(tmp_path / "host-repo"))
    tree = write_tree(tmp_path / "repo", {"app/kustomization.yaml": f"resources: ['{ref}']\n"})
    with pytest.raises(UnsafeReference, match="a file: URL names the controller's files"):
        await run(tree, binaries, no_remote_bases=no_remote_bases)


async def test_git_refuses_the_file_protocol_even_past_the_check(tmp_path: Path, binaries: Binaries) -> None:
    # kustomize run directly, as if the check had missed it: git's protocol allow-list still refuses
    repo = git_repository(tmp_path / "host-repo")
    app = write_tree(tmp_path / "work", {"kustomization.yaml": f"resources: ['git::file://{repo}//base']\n"})
    with pytest.raises(KustomizeFailed, match=re.escape("transport 'file' not allowed")):
        await kustomize_build(binaries.kustomize, app, app, timeout=60, no_remote_bases=False)


async def test_kustomize_without_remote_bases_has_no_network_even_past_the_check(
    tmp_path: Path, binaries: Binaries, probe: Probe
) -> None:
    app = tmp_path / "work"
    cases = {
        f"resources: ['git::{probe.url}/org/repo//base']\n": "transport 'http' not allowed",
        f"components: ['https://127.0.0.1:{probe.port}/org/repo//c']\n": "transport 'https' not allowed",
        "configMapGenerator: [{name: x, files: ['http://192.0.2.1/x']}]\n": "proxyconnect tcp",
        f"helmCharts: [{{name: c, repo: '{probe.url}/charts', version: 1.0.0}}]\n": "must specify --enable-helm",
    }
    for kustomization, refusal in cases.items():
        write_tree(app, {"kustomization.yaml": kustomization})
        with pytest.raises(KustomizeFailed, match=re.escape(refusal)):
            await kustomize_build(binaries.kustomize, app, app, timeout=60, no_remote_bases=True)
    assert probe.requests == []


async def test_helm_chart_inflation_cannot_fetch_even_with_remote_bases(
    tmp_path: Path, binaries: Binaries, probe: Probe
) -> None:
    tree = write_tree(
        tmp_path / "repo",
        {"app/kustomization.yaml": f"helmCharts: [{{name: c, repo: '{probe.url}/charts', version: 1.0.0}}]\n"},
    )
    with pytest.raises(KustomizeFailed, match="must specify --enable-helm"):
        await run(tree, binaries, no_remote_bases=False)
    assert probe.requests == []


async def test_target_namespace_wins_over_any_spelling_of_namespace(tmp_path: Path, binaries: Binaries) -> None:
    tree = write_tree(
        tmp_path / "repo",
        {
            "app/kustomization.yaml": "resources: [cm.yaml]\nnamespace: mine\nname\u017fpace: elsewhere\n",
            "app/cm.yaml": CM.format("x"),
        },
    )
    objects = await run(tree, binaries, no_remote_bases=True, targetNamespace="confined")
    assert [o["metadata"]["namespace"] for o in objects] == ["confined"]


async def test_ignore_missing_components_is_no_oracle_on_the_host(tmp_path: Path, binaries: Binaries) -> None:
    (tmp_path / "exists").mkdir()
    tree = write_tree(tmp_path / "repo", {"app/kustomization.yaml": "resources: []\n"})
    messages = []
    for name in ("exists", "absent"):
        spec = {"components": [f"../../{name}"], "ignoreMissingComponents": True}
        with pytest.raises(UnsafeReference) as info:
            await run(tree, binaries, no_remote_bases=False, **spec)
        messages.append(str(info.value).replace(name, "NAME"))
    assert messages[0] == messages[1]
