"""Drift detection against the real apiserver: a release the real helm installed, edited and half deleted behind its back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gitops_mesh import commands
from gitops_mesh.bus.envelope import Event
from gitops_mesh.bus.topics import Topic, Topics, ensure_topics
from gitops_mesh.errors import NotFound
from gitops_mesh.helmcli import helm_env
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.client import PatchType
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh_dev.chartrepo import PODINFO_CHART, ChartRepo
from gitops_mesh_dev.mesh import mesh_for
from helm_controller import drift
from helm_controller.drift import DiffType
from helm_controller.releases import last_release
from tests.integration.helm import test_helmrelease as hr_e2e
from tests.support.bus import recording

RELEASE = "tiny"


async def helm(stack_env: dict[str, str], home: Path, *args: str) -> str:
    argv = [stack_env["HELM"], *args, "--kubeconfig", stack_env["KUBECONFIG"]]
    done = await commands.run(argv, env=helm_env(home), timeout=120)
    return done.stdout.decode()


@pytest.fixture
async def release(stack_env: dict[str, str], kube: KubeClient, namespace: str, tmp_path: Path) -> str:
    """``helm create``'s chart (Deployment, Service, ServiceAccount) installed by helm with 2 replicas."""
    home = tmp_path / "home"
    home.mkdir()
    await helm(stack_env, home, "create", str(tmp_path / RELEASE))
    templates = tmp_path / RELEASE / "templates"
    for extra in ("tests/test-connection.yaml", "hpa.yaml", "ingress.yaml", "httproute.yaml"):
        (templates / extra).unlink(missing_ok=True)
    await helm(stack_env, home, "install", RELEASE, str(tmp_path / RELEASE), "-n", namespace, "--set", "replicaCount=2")
    return namespace


async def tamper(kube: KubeClient, namespace: str) -> None:
    """Someone scales the Deployment by hand and deletes the Service."""
    await kube.patch(
        "apps/v1",
        "Deployment",
        RELEASE,
        {"spec": {"replicas": 5}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
        field_manager="kubectl-edit",
    )
    await kube.delete("v1", "Service", RELEASE, namespace=namespace)


async def detect(kube: KubeClient, namespace: str, settings: drift.DriftDetection) -> drift.DriftReport:
    rel = await last_release(kube, namespace, RELEASE)
    assert rel is not None
    return await drift.detect(
        kube, rel.manifest_documents(), release_name=rel.name, release_namespace=rel.namespace, settings=settings
    )


def by_subject(report: drift.DriftReport) -> dict[str, DiffType]:
    return {d.subject: d.type for d in report.diffs}


async def test_in_sync_release_has_no_drift(kube: KubeClient, release: str) -> None:
    report = await detect(kube, release, drift.drift_detection({"driftDetection": {"mode": "warn"}}))
    assert not report.drifted
    assert set(by_subject(report).values()) == {DiffType.NONE}
    assert {f"Deployment/{release}/{RELEASE}", f"Service/{release}/{RELEASE}"} <= set(by_subject(report))


async def test_warn_reports_both_and_changes_nothing(kube: KubeClient, release: str) -> None:
    await tamper(kube, release)
    report = await detect(kube, release, drift.drift_detection({"driftDetection": {"mode": "warn"}}))
    assert report.drifted
    message = drift.drifted_message(f"{release}/{RELEASE}.v1", report.diffs)
    assert f"Deployment/{release}/{RELEASE} changed (0 additions, 1 changes, 0 removals)" in message
    assert f"Service/{release}/{RELEASE} removed" in message
    # Detection is dry runs only: the cluster is as the tamperer left it.
    dep = await kube.get("apps/v1", "Deployment", RELEASE, namespace=release)
    assert dep["spec"]["replicas"] == 5
    with pytest.raises(NotFound):
        await kube.get("v1", "Service", RELEASE, namespace=release)


async def test_enabled_restores_both(kube: KubeClient, release: str) -> None:
    await tamper(kube, release)
    report = await detect(kube, release, drift.drift_detection({"driftDetection": {"mode": "enabled"}}))
    correction = await drift.correct(kube, report.diffs)
    assert correction.reason == "DriftCorrected"
    assert set(correction.changes) == {
        f"Service/{release}/{RELEASE} created",
        f"Deployment/{release}/{RELEASE} configured",
    }
    dep = await kube.get("apps/v1", "Deployment", RELEASE, namespace=release)
    assert dep["spec"]["replicas"] == 2
    svc = await kube.get("v1", "Service", RELEASE, namespace=release)
    assert svc["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE
    assert not (await detect(kube, release, drift.drift_detection({"driftDetection": {"mode": "enabled"}}))).drifted


async def test_ignored_replicas_are_left_alone(kube: KubeClient, release: str) -> None:
    await tamper(kube, release)
    settings = drift.drift_detection(
        {
            "driftDetection": {
                "mode": "enabled",
                "ignore": [{"paths": ["/spec/replicas"], "target": {"kind": "Deployment"}}],
            }
        }
    )
    report = await detect(kube, release, settings)
    assert by_subject(report)[f"Deployment/{release}/{RELEASE}"] is DiffType.NONE
    correction = await drift.correct(kube, report.diffs)
    assert correction.changes == (f"Service/{release}/{RELEASE} created",)
    dep = await kube.get("apps/v1", "Deployment", RELEASE, namespace=release)
    assert dep["spec"]["replicas"] == 5


async def test_opted_out_object_is_excluded(kube: KubeClient, release: str) -> None:
    await kube.patch(
        "apps/v1",
        "Deployment",
        RELEASE,
        {"metadata": {"annotations": {drift.DRIFT_DETECTION_KEY: "disabled"}}, "spec": {"replicas": 5}},
        namespace=release,
        patch_type=PatchType.MERGE,
        field_manager="kubectl-edit",
    )
    report = await detect(kube, release, drift.drift_detection({"driftDetection": {"mode": "enabled"}}))
    assert by_subject(report)[f"Deployment/{release}/{RELEASE}"] is DiffType.EXCLUDE
    assert not report.drifted


# --- the controller: mode warn, then enabled, on a HelmRelease ----------------------------------------------------


@pytest.fixture
async def controller(
    stack_env: dict[str, str], namespace: str, unique: str, tmp_path: Path
) -> AsyncIterator[hr_e2e.Running]:
    """source- and helm-controller as processes; the bus recorded, the `events` topic (warnings) included."""
    topics = Topics(f"{unique}.")
    await ensure_topics(stack_env["KAFKA_BOOTSTRAP"], topics.all(), partitions=1)
    mesh = mesh_for(stack_env, topics, namespace, tmp_path, f"{unique}-nc", helm=True)
    which = [Topic.APPLIED, Topic.FAILED, Topic.EVENTS]
    async with recording(stack_env["KAFKA_BOOTSTRAP"], topics, f"{unique}-observer", which) as bus:
        await mesh.start()
        try:
            yield hr_e2e.Running(mesh, bus, tmp_path / "helm-home", stack_env)
        finally:
            await mesh.stop()


async def test_helmrelease_warns_then_corrects(
    kube: KubeClient, namespace: str, controller: hr_e2e.Running, tmp_path: Path
) -> None:
    run = controller
    async with ChartRepo(tmp_path / "charts", helm=run.env["HELM"]) as repo:
        await repo.add(PODINFO_CHART, version="1.0.0", app_version="6.0.0")
        await kube.create(
            {
                "apiVersion": hr_e2e.SRC,
                "kind": "HelmRepository",
                "metadata": {"name": "charts", "namespace": namespace},
                "spec": {"url": repo.url, "interval": "10m"},
            }
        )
        chart = {
            "spec": {"chart": "podinfo", "version": "1.0.0", "sourceRef": {"kind": "HelmRepository", "name": "charts"}}
        }
        spec = {"interval": "10m", "timeout": "1m", "chart": chart, "driftDetection": {"mode": "warn"}}
        await kube.create(
            {
                "apiVersion": hr_e2e.HR,
                "kind": "HelmRelease",
                "metadata": {"name": "web", "namespace": namespace},
                "spec": spec,
            }
        )

        async def hr_when(check: Callable[[KubeObject], bool]) -> KubeObject | None:
            obj = await kube.get(hr_e2e.HR, "HelmRelease", "web", namespace=namespace)
            return obj if check(obj) else None

        def drifted(status: str) -> Callable[[KubeObject], bool]:
            return lambda o: hr_e2e.condition(o, "Drifted").get("status") == status

        obj = await hr_e2e.until(run, "installed, no drift", lambda: hr_when(drifted("False")))
        assert hr_e2e.condition(obj, "Drifted")["reason"] == "NoDriftDetected"
        assert hr_e2e.condition(obj, "Ready")["status"] == "True"

        dep, svc = "web-podinfo", "web-podinfo"
        await kube.patch(
            "apps/v1", "Deployment", dep, {"spec": {"replicas": 4}}, namespace=namespace, field_manager="kubectl-edit"
        )
        await kube.delete("v1", "Service", svc, namespace=namespace)

        async def reconcile_now(stamp: str) -> None:
            patch = {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp}}}
            await kube.patch(hr_e2e.HR, "HelmRelease", "web", patch, namespace=namespace)

        # warn: the Drifted condition and a warning event list both objects; nothing is changed.
        await reconcile_now("1")
        obj = await hr_e2e.until(run, "drift reported", lambda: hr_when(drifted("True")))
        message = hr_e2e.condition(obj, "Drifted")["message"]
        assert message.startswith(f"Cluster state of release {namespace}/web.v1 has drifted from the desired state:\n")
        assert f"Deployment/{namespace}/{dep} changed" in message
        assert f"Service/{namespace}/{svc} removed" in message
        warned = await hr_e2e.until(run, "DriftDetected on the bus", lambda: _events(run, "DriftDetected"))
        assert warned[0].message == message
        assert (await kube.get("apps/v1", "Deployment", dep, namespace=namespace))["spec"]["replicas"] == 4
        with pytest.raises(NotFound):
            await kube.get("v1", "Service", svc, namespace=namespace)

        # enabled: corrected in the same reconcile, Drifted back to False, DriftCorrected on the bus.
        patch = {"spec": {"driftDetection": {"mode": "enabled"}}}
        await kube.patch(hr_e2e.HR, "HelmRelease", "web", patch, namespace=namespace)
        obj = await hr_e2e.until(
            run,
            "drift corrected",
            lambda: hr_when(lambda o: drifted("False")(o) and o["status"].get("observedGeneration") == 2),
        )
        corrected = await hr_e2e.until(run, "DriftCorrected on the bus", lambda: _events(run, "DriftCorrected"))
        assert corrected[0].message.startswith(f"Cluster state of release {namespace}/web.v1 has been corrected:\n")
        assert (await kube.get("apps/v1", "Deployment", dep, namespace=namespace))["spec"]["replicas"] == 1
        await kube.get("v1", "Service", svc, namespace=namespace)
        assert [h["version"] for h in obj["status"]["history"]] == [1]  # corrected, not upgraded


async def _events(run: hr_e2e.Running, reason: str) -> list[Event]:
    return [e for e in run.bus.events if e.reason == reason and e.involved_object.name == "web"]
