"""FluxConfig compliance of a HelmRelease its Kustomization applied: helmReleaseProperties from helm-controller.

source-, kustomize- and helm-controller run as processes; the config's GitRepository and Kustomization are
made by the test as the core reconciler makes them (see test_status_feed.py). The Kustomization applies a
HelmRepository and a HelmRelease of the podinfo test chart; the feed lists the HelmRelease with the
revision helm-controller released and its HelmChart, and follows an upgrade to release 2.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gitops_mesh.bus.topics import Topics, ensure_topics
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh_dev.chartrepo import PODINFO_CHART, ChartRepo
from gitops_mesh_dev.fluxconfig_feed import feed_running
from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.mesh import mesh_for
from gitops_mesh_dev.repos import Repo
from tests.integration.conftest import eventually
from tests.integration.fluxconfig.test_status_feed import CFG, make_config
from tests.support.fixtures import git_http, git_root, make_repo  # noqa: F401

pytestmark = pytest.mark.stack

HR = "helm.toolkit.fluxcd.io/v2"
API = "clusterconfig.azure.com/v1alpha1"


def helm_manifests(namespace: str, chart_url: str, version: str) -> str:
    return (
        f"apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: charts\n"
        f"  namespace: {namespace}\nspec:\n  url: {chart_url}\n  interval: 10m\n---\n"
        f"apiVersion: {HR}\nkind: HelmRelease\nmetadata:\n  name: web\n  namespace: {namespace}\n"
        "spec:\n  interval: 10m\n  timeout: 1m\n  chart:\n    spec:\n      chart: podinfo\n"
        f"      version: {version}\n      interval: 10m\n"
        "      sourceRef: {kind: HelmRepository, name: charts}\n"
    )


@pytest.fixture
async def charts(stack_env: dict[str, str], tmp_path: Path) -> AsyncIterator[ChartRepo]:
    async with ChartRepo(tmp_path / "charts", helm=stack_env["HELM"]) as r:
        await r.add(PODINFO_CHART, version="1.0.0", app_version="6.0.0")
        await r.add(PODINFO_CHART, version="1.0.1", app_version="6.0.1")
        yield r


async def test_helmrelease_properties_follow_helm_controller(
    kube: KubeClient,
    namespace: str,
    stack_env: dict[str, str],
    unique: str,
    tmp_path: Path,
    charts: ChartRepo,
    git_http: GitServer,  # noqa: F811
    make_repo: Callable[..., Repo],  # noqa: F811
) -> None:
    topics = Topics(f"{unique}.")
    await ensure_topics(stack_env["KAFKA_BOOTSTRAP"], topics.all(), partitions=1)
    repo = make_repo("main")
    repo.commit({"infra/helm.yaml": helm_manifests(namespace, charts.url, "1.0.0")})
    repo.push()
    mesh = mesh_for(stack_env, topics, namespace, tmp_path, f"{unique}-nc", helm=True)
    await mesh.start()
    try:
        async with feed_running(
            kubeconfig=stack_env["KUBECONFIG"],
            bootstrap=stack_env["KAFKA_BOOTSTRAP"],
            topics=topics,
            namespace=namespace,
        ) as running:
            await running.joined()
            await make_config(kube, namespace, git_http.url(repo.name))
            web: dict[str, KubeObject] = {}

            async def released(revision: int) -> bool:
                cfg = await kube.get(API, "FluxConfig", CFG, namespace=namespace)
                status = cfg.get("status") or {}
                found = [s for s in status.get("statuses") or [] if s["kind"] == "HelmRelease"]
                if not found or status.get("complianceState") != "Compliant":
                    return False
                web["entry"] = found[0]
                return bool(found[0].get("helmReleaseProperties", {}).get("lastRevisionApplied") == revision)

            await eventually(lambda: released(1), timeout=90)
            entry = web["entry"]
            assert (entry["name"], entry["namespace"], entry["complianceState"]) == ("web", namespace, "Compliant")
            assert entry["appliedBy"] == {"name": f"{CFG}-infra", "namespace": namespace}
            assert entry["helmReleaseProperties"]["helmChartRef"] == {
                "name": f"{namespace}-web",
                "namespace": namespace,
            }
            assert "failureCount" not in entry["helmReleaseProperties"], "no failures, none counted"

            # An upgrade through git: the config follows helm-controller to release 2.
            repo.commit({"infra/helm.yaml": helm_manifests(namespace, charts.url, "1.0.1")})
            repo.push()
            await kube.patch(
                "source.toolkit.fluxcd.io/v1", "GitRepository", CFG,
                {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "upgrade"}}}, namespace=namespace,
            )  # fmt: skip
            await eventually(lambda: released(2), timeout=90)
    finally:
        await mesh.stop()
