"""The dev Helm repository (gitops_mesh_dev.chartrepo) and the podinfo test chart, with the real helm.

The repository is read the way users read one (``helm repo add``/``search``/``pull``); the chart is installed,
upgraded and tested on the stack's apiserver, its Pods run by a kwok of the test's own with the stack's
stages, so hook and test Pods succeed or fail by the chart's values.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gitops_mesh import commands
from gitops_mesh.helmcli import helm_env
from gitops_mesh.kube import KubeClient
from gitops_mesh_dev.chartrepo import PODINFO_CHART, ChartRepo, ChartRepoError
from tests.support.kwok_node import KwokNode, condition, kwok_node

pytestmark = [pytest.mark.stack, pytest.mark.timeout(180)]


class Helm:
    """The stack's helm with a private home, pointed at the stack's apiserver."""

    def __init__(self, stack_env: dict[str, str], home: Path) -> None:
        self.binary = stack_env["HELM"]
        self.kubeconfig = stack_env["KUBECONFIG"]
        self.home = home

    async def run(self, *args: str, check: bool = True, timeout: float = 120) -> commands.Completed:
        argv = [self.binary, *args, "--kubeconfig", self.kubeconfig]
        return await commands.run(argv, env=helm_env(self.home), timeout=timeout, check=check, cwd=self.home)

    async def out(self, *args: str) -> str:
        return (await self.run(*args)).stdout.decode()


@pytest.fixture
def helm(stack_env: dict[str, str], tmp_path: Path) -> Helm:
    home = tmp_path / "helm-home"
    home.mkdir()
    return Helm(stack_env, home)


@pytest.fixture
async def repo(stack_env: dict[str, str], tmp_path: Path) -> AsyncIterator[ChartRepo]:
    async with ChartRepo(tmp_path / "charts", helm=stack_env["HELM"]) as served:
        yield served


@pytest.fixture(scope="module")
async def node(
    stack_env: dict[str, str], kube: KubeClient, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[KwokNode]:
    async with kwok_node(kube, stack_env["KUBECONFIG"], tmp_path_factory.mktemp("kwok") / "kwok.log") as ours:
        yield ours


def chart_values(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive) as tar:
        member = tar.extractfile("podinfo/values.yaml")
        assert member is not None
        loaded = yaml.safe_load(io.TextIOWrapper(member))
    assert isinstance(loaded, dict)
    return loaded


async def test_versions_are_added_replaced_and_removed_while_serving(repo: ChartRepo, helm: Helm) -> None:
    first = await repo.add(PODINFO_CHART)
    second = await repo.add(PODINFO_CHART, version="6.0.1", app_version="6.0.1", values={"ui": {"message": "one"}})
    assert (first.name, second.name) == ("podinfo-6.0.0.tgz", "podinfo-6.0.1.tgz")
    assert chart_values(second)["ui"] == {"message": "one", "color": "#34577c"}, "values merge over the chart's"

    await helm.run("repo", "add", "local", repo.url)
    found = json.loads(await helm.out("search", "repo", "local/podinfo", "--versions", "-o", "json"))
    assert [(c["version"], c["app_version"]) for c in found] == [("6.0.1", "6.0.1"), ("6.0.0", "6.0.0")]
    entries = repo.index()["entries"]["podinfo"]
    assert all(e["urls"] == [f"podinfo-{e['version']}.tgz"] for e in entries), "relative URLs: any port serves"

    # Replacing a version changes what is served under it, and its digest in the index.
    digest = next(e["digest"] for e in entries if e["version"] == "6.0.1")
    await repo.add(PODINFO_CHART, version="6.0.1", app_version="6.0.1", values={"ui": {"message": "two"}})
    assert next(e["digest"] for e in repo.index()["entries"]["podinfo"] if e["version"] == "6.0.1") != digest
    pulled = helm.home / "pulled"
    pulled.mkdir()
    await helm.run("pull", "podinfo", "--repo", repo.url, "--version", "6.0.1", "--destination", str(pulled))
    assert chart_values(pulled / "podinfo-6.0.1.tgz")["ui"]["message"] == "two"
    assert "/podinfo-6.0.1.tgz" in repo.requests

    await repo.remove("podinfo", "6.0.0")
    await helm.run("repo", "update", "local")
    found = json.loads(await helm.out("search", "repo", "local/podinfo", "--versions", "-o", "json"))
    assert [c["version"] for c in found] == ["6.0.1"]


async def test_a_chart_helm_refuses_is_reported(repo: ChartRepo, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "Chart.yaml").write_text("apiVersion: v2\nname: broken\n")  # no version
    with pytest.raises(ChartRepoError, match="helm package"):
        await repo.add(broken)
    assert "broken" not in repo.index().get("entries", {})


async def test_basic_auth_guards_every_file(stack_env: dict[str, str], tmp_path: Path) -> None:
    async with ChartRepo(tmp_path / "charts", helm=stack_env["HELM"], username="flux", password="s3cret") as repo:
        await repo.add(PODINFO_CHART)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{repo.url}/index.yaml") as anonymous:
                assert anonymous.status == 401
            async with http.get(
                repo.chart_url("podinfo", "6.0.0"),
                headers={"Authorization": aiohttp.encode_basic_auth("flux", "s3cret")},
            ) as ok:
                assert ok.status == 200
                assert (await ok.read())[:2] == b"\x1f\x8b"


def placement(node: KwokNode) -> list[str]:
    """helm flags that put every Pod of the chart on our kwok's node."""
    return [
        "--set-json",
        "nodeSelector=" + json.dumps(node.placement()["nodeSelector"]),
        "--set-json",
        "tolerations=" + json.dumps(node.tolerations()),
    ]


async def test_podinfo_installs_upgrades_and_tests_by_its_values(
    repo: ChartRepo, helm: Helm, kube: KubeClient, namespace: str, node: KwokNode
) -> None:
    archive = await repo.add(PODINFO_CHART, values={"replicaCount": 2})
    base = ["-n", namespace, *placement(node)]

    await helm.run("install", "web", str(archive), *base, "--set", "hooks.enabled=true", "--wait", "--timeout", "60s")
    deployment = await kube.get("apps/v1", "Deployment", "web-podinfo", namespace=namespace)
    assert condition(deployment, "Available") == "True"
    assert deployment["status"]["readyReplicas"] == 2
    hook = await kube.get("batch/v1", "Job", "web-podinfo-hook", namespace=namespace)
    assert condition(hook, "Complete") == "True"

    await helm.run("upgrade", "web", str(archive), *base, "--reuse-values", "--set", "tests.enabled=true")
    tested = await helm.run("test", "web", "-n", namespace, "--timeout", "60s")
    assert "Phase:          Succeeded" in tested.stdout.decode()

    await helm.run("upgrade", "web", str(archive), *base, "--reuse-values", "--set", "tests.outcome=fail")
    failed = await helm.run("test", "web", "-n", namespace, "--timeout", "60s", check=False)
    assert failed.returncode != 0
    assert "failed" in failed.stderr.decode().lower()

    # A failing post-upgrade hook fails the upgrade: the release is recorded failed, as Helm records it.
    hook_fails = await helm.run(
        "upgrade",
        "web",
        str(archive),
        *base,
        "--reuse-values",
        "--set",
        "hooks.outcome=fail",
        "--timeout",
        "60s",
        check=False,
    )
    assert hook_fails.returncode != 0
    history = json.loads(await helm.out("history", "web", "-n", namespace, "-o", "json"))
    assert [h["status"] for h in history][-1] == "failed"
