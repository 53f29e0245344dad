"""Drift detection against the real apiserver: a release the real helm installed, edited and half deleted behind its back."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_mesh import commands
from gitops_mesh.errors import NotFound
from gitops_mesh.helmcli import helm_env
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.client import PatchType
from helm_controller import drift
from helm_controller.drift import DiffType
from helm_controller.releases import last_release

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
