"""A HelmRelease whose spec.chartRef is an OCIRepository, end to end: charts pushed by the real ``helm push`` to a
distribution registry (the stack's ``OCI_REGISTRY`` when it exports one, else a private one), an OCIRepository
selecting the Helm chart layer with ``operation: copy``, source- and helm-controller as processes, the real helm 4.

Installed as ``<version>+<digest[0:12]>`` (Flux's rule), upgraded as soon as a new chart version is announced on
the bus (the HelmRelease's interval is 10m, so nothing else wakes it), and upgraded again when the same version
is pushed again with other content: a new digest is a new chart version. What helm lists agrees at each step.
A missing tag leaves the HelmRelease waiting with Flux's SourceNotReady, and it installs once the chart is there.
An artifact of the chart layer unpacked (no layerSelector) is a chart too; one that is no chart is ArtifactFailed.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gitops_mesh import commands
from gitops_mesh.helmcli import helm_env
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh_dev.chartrepo import PODINFO_CHART, ChartRepo
from gitops_mesh_dev.ociregistry import OciRegistry
from tests.integration.helm.test_helmrelease import Running, condition, until
from tests.integration.helm.test_helmrelease import running as running  # the fixture
from tests.integration.source.oci.conftest import push, write_tree

pytestmark = [pytest.mark.stack, pytest.mark.timeout(240)]

HR = "helm.toolkit.fluxcd.io/v2"
SRC = "source.toolkit.fluxcd.io/v1"
HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


@pytest.fixture
async def registry(stack_env: dict[str, str], tmp_path: Path) -> AsyncIterator[str]:
    """host:port of a plain-HTTP registry: the stack's, else one of this test's own."""
    if stack_env.get("OCI_REGISTRY"):
        yield stack_env["OCI_REGISTRY"]
        return
    async with OciRegistry(tmp_path / "registry") as private:
        yield private.address


class Charts:
    """podinfo chart versions packaged by helm and pushed with ``helm push`` to ``oci://<registry>/<unique>``."""

    def __init__(self, helm: str, registry: str, unique: str, root: Path) -> None:
        self.helm, self.url, self.root = helm, f"oci://{registry}/{unique}", root

    async def push(self, version: str, app_version: str, values: dict[str, Any] | None = None) -> None:
        work = self.root / f"{version}-{time.monotonic_ns()}"
        async with ChartRepo(work, helm=self.helm) as repo:
            archive = await repo.add(PODINFO_CHART, version=version, app_version=app_version, values=values)
        await commands.run(
            [self.helm, "push", str(archive), self.url, "--plain-http"], env=helm_env(self.root / "home"), timeout=60
        )
        shutil.rmtree(work, ignore_errors=True)


def ocirepository(namespace: str, url: str) -> KubeObject:
    return {
        "apiVersion": SRC,
        "kind": "OCIRepository",
        "metadata": {"name": "podinfo", "namespace": namespace},
        "spec": {
            "url": f"{url}/podinfo",
            "interval": "10m",
            "insecure": True,
            "ref": {"semver": ">=1.0.0"},
            "layerSelector": {"mediaType": HELM_CHART_LAYER, "operation": "copy"},
        },
    }


def helmrelease(namespace: str) -> KubeObject:
    return {
        "apiVersion": HR,
        "kind": "HelmRelease",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {"interval": "10m", "timeout": "1m", "chartRef": {"kind": "OCIRepository", "name": "podinfo"}},
    }


async def request_reconcile(kube: KubeClient, namespace: str, token: str) -> None:
    """What `flux reconcile source oci` does: the source looks at the registry now."""
    patch = {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}}
    await kube.patch(SRC, "OCIRepository", "podinfo", patch, namespace=namespace)


def released(version: str, digest: str) -> str:
    return f"{version}+{digest.removeprefix('sha256:')[:12]}"


async def test_oci_chart_installed_upgraded_on_a_new_version_and_on_a_new_digest(
    kube: KubeClient, namespace: str, registry: str, running: Running, stack_env: dict[str, str], tmp_path: Path
) -> None:
    run = running
    charts = Charts(stack_env["HELM"], registry, namespace, tmp_path / "charts")
    await charts.push("1.0.0", "6.0.0")
    await kube.create(ocirepository(namespace, charts.url))
    await kube.create(helmrelease(namespace))

    async def source_at(version: str, not_digest: str = "") -> str:
        """The OCIRepository's artifact digest once it is this version (and not that digest)."""

        async def check() -> str:
            obj = await kube.get(SRC, "OCIRepository", "podinfo", namespace=namespace)
            revision = ((obj.get("status") or {}).get("artifact") or {}).get("revision") or ""
            tag, _, digest = revision.partition("@")
            return digest if tag == version and digest != not_digest else ""

        return str(await until(run, f"OCIRepository at {version}", check))

    async def release_at(chart_version: str) -> KubeObject:
        async def check() -> KubeObject | None:
            obj = await kube.get(HR, "HelmRelease", "web", namespace=namespace)
            history = (obj.get("status") or {}).get("history") or []
            ready = condition(obj, "Ready").get("status") == "True"
            return obj if ready and history and history[0].get("chartVersion") == chart_version else None

        return dict(await until(run, f"released {chart_version}", check, timeout=60))

    # Installed: the chart's version with the digest appended, the digest recorded, no HelmChart of ours.
    first = await source_at("1.0.0")
    obj = await release_at(released("1.0.0", first))
    status = obj["status"]
    assert status["lastAttemptedRevision"] == released("1.0.0", first)
    assert status["lastAttemptedRevisionDigest"] == first
    assert "helmChart" not in status
    [snap] = status["history"]
    assert (snap["chartName"], snap["ociDigest"], snap["action"]) == ("podinfo", first, "install")
    assert condition(obj, "Released")["reason"] == "InstallSucceeded"
    [listed] = await run.helm("list", "-n", namespace)
    assert listed["chart"] == f"podinfo-{released('1.0.0', first)}"
    assert listed["app_version"] == "6.0.0"
    applied = await until(run, "applied on the bus", run.events("applied"))
    assert applied[-1].revision == released("1.0.0", first)
    assert applied[-1].metadata.get("oci-digest") == first

    # A new chart version: announced by source-controller, released at once (the interval is 10m).
    await charts.push("1.0.1", "6.0.1")
    await request_reconcile(kube, namespace, "one")
    second = await source_at("1.0.1")
    began = time.monotonic()
    obj = await release_at(released("1.0.1", second))
    assert time.monotonic() - began < 30
    assert obj["status"]["lastAttemptedRevisionDigest"] == second
    assert [s["ociDigest"] for s in obj["status"]["history"]] == [second, first]
    assert condition(obj, "Released")["reason"] == "UpgradeSucceeded"
    [listed] = await run.helm("list", "-n", namespace)
    assert (listed["chart"], listed["revision"]) == (f"podinfo-{released('1.0.1', second)}", "2")

    # The same version pushed again with other content: a new digest, so Flux's new chart version, upgraded.
    await charts.push("1.0.1", "6.0.1", values={"replicaCount": 2})
    await request_reconcile(kube, namespace, "two")
    third = await source_at("1.0.1", not_digest=second)
    obj = await release_at(released("1.0.1", third))
    assert obj["status"]["lastAttemptedRevision"] == released("1.0.1", third)
    # Flux keeps the history up to the previous deployed release: each snapshot with its own digest.
    assert [s["ociDigest"] for s in obj["status"]["history"]] == [third, second]
    history = await run.helm("history", "web", "-n", namespace)
    assert [h["chart"] for h in history] == [
        f"podinfo-{released('1.0.0', first)}",
        f"podinfo-{released('1.0.1', second)}",
        f"podinfo-{released('1.0.1', third)}",
    ]
    assert [h["status"] for h in history] == ["superseded", "superseded", "deployed"]
    values = await run.helm("get", "values", "web", "-n", namespace, "--all")
    assert values["replicaCount"] == 2  # the content of the re-pushed chart

    # Nothing more to do: a forced look releases nothing new (the stored snapshots' digests agree).
    patch = {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "settle"}}}
    await kube.patch(HR, "HelmRelease", "web", patch, namespace=namespace)

    async def handled() -> bool:
        obj = await kube.get(HR, "HelmRelease", "web", namespace=namespace)
        return (obj.get("status") or {}).get("lastHandledReconcileAt") == "settle"

    await until(run, "the requested reconcile handled", handled)
    assert len(await run.helm("history", "web", "-n", namespace)) == 3


async def test_missing_chart_waits_with_source_not_ready_then_installs(
    kube: KubeClient, namespace: str, registry: str, running: Running, stack_env: dict[str, str], tmp_path: Path
) -> None:
    run = running
    charts = Charts(stack_env["HELM"], registry, namespace, tmp_path / "charts")
    await kube.create(ocirepository(namespace, charts.url))  # nothing pushed yet
    await kube.create(helmrelease(namespace))

    async def waiting() -> dict[str, Any]:
        obj = await kube.get(HR, "HelmRelease", "web", namespace=namespace)
        ready = condition(obj, "Ready")
        return ready if ready.get("reason") == "SourceNotReady" else {}

    ready = await until(run, "waiting for the source", waiting)
    assert ready["status"] == "False"
    assert ready["message"].startswith(f"OCIRepository '{namespace}/podinfo' is not ready: ")
    assert not await run.helm("list", "-n", namespace)

    await charts.push("1.0.0", "6.0.0")
    await request_reconcile(kube, namespace, "pushed")

    async def installed() -> list[Any]:
        return list(await run.helm("list", "-n", namespace))

    [listed] = await until(run, "installed once the chart is pushed", installed, timeout=60)
    assert listed["chart"].startswith("podinfo-1.0.0+")


async def test_extracted_chart_layer_installs_and_an_artifact_that_is_no_chart_fails(
    kube: KubeClient, namespace: str, registry: str, running: Running, stack_env: dict[str, str], tmp_path: Path
) -> None:
    """Without layerSelector the artifact is the chart layer unpacked and packed again: still a chart, as Flux
    loads it. Manifests pushed by `gitops-mesh push artifact` are not one: ArtifactFailed with Flux's wording."""
    run = running
    charts = Charts(stack_env["HELM"], registry, namespace, tmp_path / "charts")
    await charts.push("1.0.0", "6.0.0")
    extracted = ocirepository(namespace, charts.url)
    del extracted["spec"]["layerSelector"]
    await kube.create(extracted)
    manifests = write_tree(tmp_path / "manifests", {"deploy/cm.yaml": "kind: ConfigMap\n"})
    await push(f"oci://{registry}/{namespace}/manifests:v1", manifests)
    not_a_chart = ocirepository(namespace, charts.url)
    not_a_chart["metadata"]["name"] = "manifests"
    not_a_chart["spec"] |= {"url": f"oci://{registry}/{namespace}/manifests", "ref": {"tag": "v1"}}
    del not_a_chart["spec"]["layerSelector"]
    await kube.create(not_a_chart)
    await kube.create(helmrelease(namespace))
    broken = helmrelease(namespace)
    broken["metadata"]["name"] = "broken"
    broken["spec"]["chartRef"]["name"] = "manifests"
    await kube.create(broken)

    async def installed() -> list[Any]:
        return list(await run.helm("list", "-n", namespace))

    [listed] = await until(run, "the extracted chart installed", installed, timeout=60)
    assert listed["name"] == "web"
    assert listed["chart"].startswith("podinfo-1.0.0+")

    async def failed() -> dict[str, Any]:
        obj = await kube.get(HR, "HelmRelease", "broken", namespace=namespace)
        ready = condition(obj, "Ready")
        return ready if ready.get("reason") == "ArtifactFailed" else {}

    ready = await until(run, "the artifact refused as no chart", failed)
    assert ready["status"] == "False"
    assert ready["message"] == "Could not load chart: chart artifact has 0 top-level Chart.yaml files, not one"
