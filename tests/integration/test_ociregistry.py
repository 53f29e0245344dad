"""The dev OCI registry (gitops_mesh_dev.ociregistry): Helm charts pushed and pulled with the real helm."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gitops_mesh import commands
from gitops_mesh.helmcli import helm_env
from gitops_mesh_dev.chartrepo import PODINFO_CHART, ChartRepo
from gitops_mesh_dev.ociregistry import OciRegistry

pytestmark = [pytest.mark.stack, pytest.mark.timeout(120)]

HELM_CONFIG_MEDIA_TYPE = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART_MEDIA_TYPE = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[OciRegistry]:
    async with OciRegistry(tmp_path / "registry") as running:
        yield running


async def test_a_chart_pushed_with_helm_is_served_as_an_oci_artifact(
    registry: OciRegistry, stack_env: dict[str, str], tmp_path: Path
) -> None:
    async with ChartRepo(tmp_path / "charts", helm=stack_env["HELM"]) as repo:
        archive = await repo.add(PODINFO_CHART, version="6.0.1", app_version="6.0.1")
    home = tmp_path / "home"

    async def helm(*args: str) -> commands.Completed:
        return await commands.run([stack_env["HELM"], *args], env=helm_env(home), timeout=60, cwd=tmp_path)

    pushed = await helm("push", str(archive), f"oci://{registry.address}/charts", "--plain-http")
    said = pushed.stdout.decode() + pushed.stderr.decode()
    digest = next(line.split()[-1] for line in said.splitlines() if line.startswith("Digest:"))

    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://{registry.address}/v2/charts/podinfo/tags/list") as tags:
            assert (await tags.json())["tags"] == ["6.0.1"]
        accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        async with http.get(f"http://{registry.address}/v2/charts/podinfo/manifests/6.0.1", headers=accept) as got:
            assert got.headers["Docker-Content-Digest"] == digest
            manifest = json.loads(await got.read())
    assert manifest["config"]["mediaType"] == HELM_CONFIG_MEDIA_TYPE
    assert [layer["mediaType"] for layer in manifest["layers"]] == [HELM_CHART_MEDIA_TYPE]

    shown = await helm(
        "show", "chart", f"oci://{registry.address}/charts/podinfo", "--version", "6.0.1", "--plain-http"
    )
    assert "appVersion: 6.0.1" in shown.stdout.decode()
    pulled = tmp_path / "pulled"
    pulled.mkdir()
    await helm(
        "pull", f"oci://{registry.address}/charts/podinfo", "--version", "6.0.1", "--plain-http", "-d", str(pulled)
    )
    assert (pulled / "podinfo-6.0.1.tgz").read_bytes() == archive.read_bytes()


async def test_the_registry_stops_with_its_context(tmp_path: Path) -> None:
    async with OciRegistry(tmp_path / "registry") as registry:
        address = registry.address
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.get(f"http://{address}/v2/"):
                pass
