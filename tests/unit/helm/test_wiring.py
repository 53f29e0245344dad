"""helm-controller's pure wiring: what a HelmRelease refers to, its action inputs, refused fields, helm's kubeconfig."""

from __future__ import annotations

import io
import json
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

from gitops_mesh.errors import DependencyNotReady, InvalidSpec
from gitops_mesh.reconcile.unsupported import UNSUPPORTED_FIELD
from helm_controller import references as refs
from helm_controller.action_requests import action_request, timeout_of, uninstall_options
from helm_controller.actions import CRDsPolicy, KubeAccess
from helm_controller.chart_meta import ChartUnreadable, chart_metadata
from helm_controller.helmrelease import check_storage_namespace
from helm_controller.kubeconfig_file import helm_kubeconfig, in_cluster_kubeconfig
from helm_controller.settings import parse
from helm_controller.unsupported import HELMRELEASE, refuse_unsupported

ACCESS = KubeAccess(Path("/kubeconfig"))


def hr(spec: dict[str, Any], name: str = "web", namespace: str = "apps") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "generation": 1}, "spec": spec}


CHART = {"chart": {"spec": {"chart": "podinfo", "sourceRef": {"kind": "HelmRepository", "name": "charts"}}}}


def test_chart_from_template_is_named_after_the_release_in_the_sources_namespace() -> None:
    assert refs.chart_key(hr(CHART)) == ("apps", "apps-web")
    elsewhere = {"chart": {"spec": {**CHART["chart"]["spec"], "sourceRef": {"name": "c", "namespace": "flux"}}}}
    assert refs.chart_key(hr(elsewhere)) == ("flux", "apps-web")
    assert refs.chart_refs(hr({"chartRef": {"kind": "HelmChart", "name": "shared"}})) == ["HelmChart/apps/shared"]


def test_values_and_dependency_refs() -> None:
    obj = hr(
        {
            "valuesFrom": [{"kind": "ConfigMap", "name": "v"}, {"kind": "Secret", "name": "s"}],
            "dependsOn": [{"name": "db"}],
        }
    )
    assert refs.values_refs(obj) == ["ConfigMap/apps/v", "Secret/apps/s"]
    assert refs.dependency_refs(obj) == ["HelmRelease/apps/db"]


def test_cross_namespace_references_refused_when_asked() -> None:
    obj = hr({"chartRef": {"kind": "HelmChart", "name": "c", "namespace": "other"}})
    refs.check_cross_namespace(obj, allowed=True)
    with pytest.raises(InvalidSpec, match="cross-namespace"):
        refs.check_cross_namespace(obj, allowed=False)
    with pytest.raises(InvalidSpec, match="cannot depend on 'x/db'"):
        refs.check_cross_namespace(hr({"dependsOn": [{"name": "db", "namespace": "x"}]}), allowed=False)


def test_dependencies_wait_and_cycles_stall() -> None:
    ready = {
        "metadata": {"name": "db", "namespace": "apps", "generation": 2},
        "spec": {},
        "status": {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]},
    }
    stale = {**ready, "status": {**ready["status"], "observedGeneration": 1}}
    web = hr({"dependsOn": [{"name": "db"}]})
    refs.check_dependencies(web, lambda ns, name: ready)
    with pytest.raises(DependencyNotReady, match="is not ready"):
        refs.check_dependencies(web, lambda ns, name: stale)
    with pytest.raises(DependencyNotReady, match="not found"):
        refs.check_dependencies(web, lambda ns, name: None)
    loop = {"db": hr({"dependsOn": [{"name": "web"}]}, name="db"), "web": web}
    with pytest.raises(InvalidSpec, match="circular dependency: apps/web -> apps/db -> apps/web"):
        refs.check_dependencies(web, lambda ns, name: loop.get(name))


def test_chart_artifact_missing_is_a_dependency_wait() -> None:
    with pytest.raises(DependencyNotReady, match="HelmChart 'apps/apps-web' is not ready"):
        refs.chart_artifact(hr(CHART), {"status": {}})
    assert refs.chart_artifact(hr(CHART), {"status": {"artifact": {"revision": "1.0.0"}}})["revision"] == "1.0.0"


def test_chart_of_a_generation_not_reconciled_yet_is_not_ready() -> None:
    """As Flux's isReady: after a version change the old artifact must not be released with the new values."""
    artifact = {"artifact": {"revision": "1.0.0"}}
    stale: dict[str, Any] = {"metadata": {"generation": 3}, "status": {"observedGeneration": 2, **artifact}}
    with pytest.raises(DependencyNotReady, match="is not ready: latest generation of object has not been reconciled"):
        refs.chart_artifact(hr(CHART), stale)
    ready_false = {"type": "Ready", "status": "False", "reason": "InvalidChartReference", "message": "no version 9"}
    with pytest.raises(DependencyNotReady, match="is not ready: no version 9"):
        refs.chart_artifact(hr(CHART), {**stale, "status": {**stale["status"], "conditions": [ready_false]}})
    stalled = {"type": "Stalled", "status": "True", "reason": "InvalidChartReference", "message": "bad ref"}
    current: dict[str, Any] = {"metadata": {"generation": 3}, "status": {"observedGeneration": 3, **artifact}}
    with pytest.raises(DependencyNotReady, match="is not ready: bad ref"):
        refs.chart_artifact(hr(CHART), {**current, "status": {**current["status"], "conditions": [stalled]}})
    assert refs.chart_artifact(hr(CHART), current)["revision"] == "1.0.0"


def test_action_request_takes_flux_defaults_and_the_actions_own_options() -> None:
    spec = {
        "targetNamespace": "web",
        "timeout": "2m",
        "install": {"createNamespace": True, "crds": "CreateReplace", "timeout": "30s"},
        "upgrade": {"force": True, "cleanupOnFail": True, "serverSideApply": "disabled", "disableTakeOwnership": True},
        "test": {"filters": [{"name": "smoke", "exclude": True}]},
        "uninstall": {"keepHistory": True, "deletionPropagation": "foreground"},
    }
    obj = hr(spec)
    install = action_request(obj, "install", kube=ACCESS, chart_path=Path("c.tgz"), values={"a": 1})
    assert (install.release_name, install.target_namespace) == ("web-web", "web")
    assert (install.create_namespace, install.crds, install.timeout, install.max_history) == (
        True,
        CRDsPolicy.CREATE_REPLACE,
        30.0,
        5,
    )
    upgrade = action_request(obj, "upgrade", kube=ACCESS)
    assert (upgrade.force, upgrade.cleanup_on_fail, upgrade.server_side, upgrade.take_ownership) == (
        True,
        True,
        False,
        False,
    )
    assert upgrade.timeout == 120.0  # spec.timeout when the action names none
    assert action_request(obj, "test", kube=ACCESS).test_filters == (("smoke", True),)
    assert uninstall_options(spec) == (True, "foreground")
    assert uninstall_options({}) == (False, "background")
    assert timeout_of({}, "install") == 300.0


def test_refused_fields_stall_with_unsupported_field() -> None:
    refuse_unsupported({"driftDetection": {"mode": "disabled"}, **CHART}, HELMRELEASE)
    # post-rendering is implemented: accepted
    refuse_unsupported(
        {"postRenderers": [{"kustomize": {}}], "commonMetadata": {}, "postRenderStrategy": "nohooks"}, HELMRELEASE
    )
    refuse_unsupported({"kubeConfig": {"secretRef": {"name": "remote"}}}, HELMRELEASE)  # a remote cluster: accepted
    with pytest.raises(InvalidSpec) as err:
        refuse_unsupported(
            {"kubeConfig": {"configMapRef": {"name": "x"}}, "chartRef": {"kind": "OCIRepository"}}, HELMRELEASE
        )
    assert err.value.reason == UNSUPPORTED_FIELD
    assert "spec.kubeConfig.configMapRef" in str(err.value)
    assert "chartRef" not in str(err.value)  # charts from an OCIRepository are implemented
    refuse_unsupported({"driftDetection": {"mode": "enabled", "ignore": [{"paths": ["/spec/replicas"]}]}}, HELMRELEASE)

    # chart.spec.verify with cosign is implemented (the HelmChart verifies); notation is refused
    def verify(provider: str) -> dict[str, Any]:
        return {
            "chart": {"spec": {**CHART["chart"]["spec"], "verify": {"provider": provider, "secretRef": {"name": "k"}}}}
        }

    refuse_unsupported(verify("cosign"), HELMRELEASE)
    with pytest.raises(InvalidSpec, match=r"spec\.chart\.spec\.verify\.provider 'notation' is not supported"):
        refuse_unsupported(verify("notation"), HELMRELEASE)


def test_storage_namespace_follows_the_target_and_a_different_one_stalls() -> None:
    check_storage_namespace(hr({**CHART, "targetNamespace": "prod"}))  # stored in prod, where helm installs it
    check_storage_namespace(hr({**CHART, "targetNamespace": "prod", "storageNamespace": "prod"}))
    with pytest.raises(InvalidSpec) as err:
        check_storage_namespace(hr({**CHART, "targetNamespace": "prod", "storageNamespace": "apps"}))
    assert err.value.reason == UNSUPPORTED_FIELD
    assert "spec.storageNamespace 'apps' differs from the target namespace 'prod'" in str(err.value)


def _chart_tgz(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


async def test_chart_metadata_read_from_the_archive(tmp_path: Path) -> None:
    chart = _chart_tgz(
        tmp_path / "c.tgz",
        {
            "podinfo/Chart.yaml": "apiVersion: v2\nname: podinfo\nversion: 6.5.0\nappVersion: '6.5.0'\n",
            "podinfo/values.yaml": "",
        },
    )
    assert await chart_metadata(chart) == ("podinfo", "6.5.0", "6.5.0")
    nameless = _chart_tgz(tmp_path / "n.tgz", {"podinfo/Chart.yaml": "apiVersion: v2\n"})
    with pytest.raises(ChartUnreadable, match="no name or version"):
        await chart_metadata(nameless)
    evil = _chart_tgz(tmp_path / "e.tgz", {"../Chart.yaml": "name: x\nversion: 1\n"})
    with pytest.raises(ChartUnreadable, match="unreadable"):
        await chart_metadata(evil)


def test_helm_kubeconfig_is_ours_or_written_for_the_pod(tmp_path: Path) -> None:
    settings = parse([])
    assert helm_kubeconfig(settings, tmp_path, {"KUBECONFIG": "/k/config"}) == Path("/k/config")
    written = helm_kubeconfig(settings, tmp_path, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    config = json.loads(written.read_text())
    assert config["clusters"][0]["cluster"]["server"] == "https://10.0.0.1:443"
    # The token's path, never the token: a rotated token is read by helm from the file.
    assert config["users"][0]["user"] == {"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}
    with pytest.raises(SystemExit, match="no kubeconfig"):
        in_cluster_kubeconfig({}, Path("/sa"))
    with pytest.raises(SystemExit, match="one kubeconfig file"):
        helm_kubeconfig(settings, tmp_path, {"KUBECONFIG": "/a:/b"})
