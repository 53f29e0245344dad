"""spec.chartRef to an OCIRepository or ExternalArtifact: the source followed, its readiness, the digest-qualified
chart version Flux releases, the repacked chart, and the ociDigest carried in status."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_mesh.errors import DependencyNotReady, InvalidSpec
from helm_controller import references as refs
from helm_controller import status as st
from helm_controller.chart_meta import ChartUnreadable, chart_metadata
from helm_controller.chart_repack import set_version, with_version
from helm_controller.chart_revision import ChartMutateError, ChartRevision, chart_revision, tracks_digest
from helm_controller.chart_template import chart_source, stale_helmchart
from helm_controller.unsupported import HELMRELEASE, refuse_unsupported

DIGEST = "sha256:0cc9a8446c95009ef382f5eade883a67c257f77d50f84e78ecef2aac9428d1e5"
OCI = {"chartRef": {"kind": "OCIRepository", "name": "podinfo"}}
EA = {"chartRef": {"kind": "ExternalArtifact", "name": "chart", "namespace": "builds"}}


def hr(spec: dict[str, Any], name: str = "web", namespace: str = "apps") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "generation": 1}, "spec": spec}


def source(generation: int = 2, observed: int = 2, artifact: bool = True, **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"observedGeneration": observed, **status}
    if artifact:
        body["artifact"] = {"revision": f"6.6.1@{DIGEST}", "digest": "sha256:ab", "url": "http://s/a.tgz"}
    return {"metadata": {"name": "podinfo", "namespace": "apps", "generation": generation}, "status": body}


# --- which object is followed ---------------------------------------------------------------------------------


def test_chart_ref_kinds_are_followed_under_their_own_kind() -> None:
    assert refs.chart_source_key(hr(OCI)) == ("OCIRepository", "apps", "podinfo")
    assert refs.chart_refs(hr(OCI)) == ["OCIRepository/apps/podinfo"]
    assert refs.chart_refs(hr(EA)) == ["ExternalArtifact/builds/chart"]
    template = {"chart": {"spec": {"chart": "podinfo", "sourceRef": {"kind": "HelmRepository", "name": "c"}}}}
    assert refs.chart_refs(hr(template)) == ["HelmChart/apps/apps-web"]


def test_chart_ref_kinds_are_accepted_and_others_refused() -> None:
    refuse_unsupported(OCI, HELMRELEASE)  # no longer refused
    refuse_unsupported(EA, HELMRELEASE)
    assert chart_source(hr(EA)).kind == "ExternalArtifact"
    with pytest.raises(InvalidSpec, match="must be one of ExternalArtifact, HelmChart, OCIRepository"):
        chart_source(hr({"chartRef": {"kind": "Bucket", "name": "b"}}))


def test_cross_namespace_chart_ref_is_refused_when_disallowed() -> None:
    refs.check_cross_namespace(hr(EA), allowed=True)
    with pytest.raises(InvalidSpec, match="cannot access chartRef in namespace 'builds'"):
        refs.check_cross_namespace(hr(EA), allowed=False)
    refs.check_cross_namespace(hr(OCI), allowed=False)  # same namespace


def test_switching_from_template_to_an_oci_chart_ref_deletes_our_helmchart() -> None:
    stale = stale_helmchart(hr(OCI), "apps/apps-web")
    assert stale is not None
    assert (stale.kind, str(stale)) == ("HelmChart", "apps/apps-web")


# --- readiness of the source (Flux's isSourceReady) -----------------------------------------------------------


def test_oci_repository_without_artifact_waits_with_flux_reason() -> None:
    assert refs.chart_artifact(hr(OCI), source())["revision"] == f"6.6.1@{DIGEST}"
    with pytest.raises(DependencyNotReady) as err:
        refs.chart_artifact(hr(OCI), source(artifact=False))
    assert err.value.reason == "SourceNotReady"
    assert str(err.value) == "OCIRepository 'apps/podinfo' is not ready: does not have an artifact"
    failing = source(
        generation=3, conditions=[{"type": "Ready", "status": "False", "reason": "OCIPullFailed", "message": "no tag"}]
    )
    with pytest.raises(DependencyNotReady, match="OCIRepository 'apps/podinfo' is not ready: no tag"):
        refs.chart_artifact(hr(OCI), failing)
    with pytest.raises(DependencyNotReady) as err:
        refs.chart_artifact(hr(OCI), None)
    assert err.value.reason == "ArtifactFailed"
    assert 'ocirepositories.source.toolkit.fluxcd.io "podinfo" not found' in str(err.value)


def test_external_artifact_needs_only_an_artifact() -> None:
    # no observedGeneration to wait for: its producer writes its status
    assert refs.chart_artifact(hr(EA), source(generation=5, observed=0))["url"] == "http://s/a.tgz"
    with pytest.raises(DependencyNotReady, match="ExternalArtifact 'builds/chart' is not ready: does not have"):
        refs.chart_artifact(hr(EA), source(artifact=False))


# --- the version released (Flux's mutateChartWithSourceRevision) ----------------------------------------------


def test_oci_chart_version_carries_the_digest() -> None:
    assert chart_revision("OCIRepository", f"6.6.1@{DIGEST}", "6.6.1") == ChartRevision("6.6.1+0cc9a8446c95", DIGEST)
    # a digest reference, and existing build metadata replaced
    assert chart_revision("OCIRepository", DIGEST, "6.6.1+build.7").version == "6.6.1+0cc9a8446c95"
    # Helm writes '+' as '_' in tags; build metadata is not compared
    assert chart_revision("OCIRepository", f"6.6.1_x@{DIGEST}", "6.6.1").digest == DIGEST
    # a tag that is no version is not compared
    assert chart_revision("OCIRepository", f"latest@{DIGEST}", "1.0.0").version == "1.0.0+0cc9a8446c95"


def test_a_new_digest_is_a_new_version_for_the_same_chart() -> None:
    other = "sha256:" + "f" * 64
    first = chart_revision("OCIRepository", f"1.0.0@{DIGEST}", "1.0.0")
    again = chart_revision("OCIRepository", f"1.0.0@{other}", "1.0.0")
    assert first.version == "1.0.0+0cc9a8446c95"
    assert again.version == "1.0.0+ffffffffffff"


def test_helmchart_and_plain_external_artifact_revisions_keep_the_version() -> None:
    assert chart_revision("HelmChart", "1.0.0", "1.0.0") == ChartRevision("1.0.0")
    assert chart_revision("ExternalArtifact", "1.0.0", "1.0.0") == ChartRevision("1.0.0")
    assert not tracks_digest("ExternalArtifact", "1.0.0")
    assert chart_revision("ExternalArtifact", f"latest@{DIGEST}", "2.0.0").version == "2.0.0+0cc9a8446c95"


@pytest.mark.parametrize(
    ("revision", "version", "message"),
    [
        (f"1.0.1@{DIGEST}", "1.0.0", "artifact revision 1.0.1 does not match chart version 1.0.0"),
        (f"1.0.0@{DIGEST}", "not-semver", "invalid chart version not-semver"),
        ("1.0.0@sha256:abc", "1.0.0", "invalid artifact revision 1.0.0@sha256:abc"),
        ("1.0.0@nodigest", "1.0.0", "invalid artifact revision"),
    ],
)
def test_mismatched_or_malformed_revisions_are_chart_mutate_errors(revision: str, version: str, message: str) -> None:
    with pytest.raises(ChartMutateError, match=message) as err:
        chart_revision("OCIRepository", revision, version)
    assert err.value.reason == "ChartMutateError"


# --- the chart repacked with that version ---------------------------------------------------------------------


def _tgz(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_set_version_keeps_every_other_scalar_as_written() -> None:
    text = b"apiVersion: v2\nname: podinfo\nversion: 1.0.0\nappVersion: 0777\nannotations:\n  enabled: yes\n"
    out = set_version(text, "1.0.0+0cc9a8446c95")
    assert "appVersion: 0777" in out
    assert "enabled: yes" in out
    assert yaml.safe_load(out)["version"] == "1.0.0+0cc9a8446c95"
    with pytest.raises(ChartUnreadable, match="not one mapping"):
        set_version(b"- a\n", "1.0.0")


async def test_repacked_chart_says_the_new_version_and_keeps_its_files(tmp_path: Path) -> None:
    chart = _tgz(
        tmp_path / "c.tgz",
        {
            "podinfo/Chart.yaml": "apiVersion: v2\nname: podinfo\nversion: 6.6.1\nappVersion: '6.6.1'\n",
            "podinfo/templates/cm.yaml": "kind: ConfigMap\n",
            "podinfo/charts/dep/Chart.yaml": "apiVersion: v2\nname: dep\nversion: 0.1.0\n",
        },
    )
    out = with_version(chart, "6.6.1+0cc9a8446c95", tmp_path / "released.tgz")
    assert await chart_metadata(out) == ("podinfo", "6.6.1+0cc9a8446c95", "6.6.1")
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
    assert {"podinfo/templates/cm.yaml", "podinfo/charts/dep/Chart.yaml"} <= names
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("repack-")]  # its work tree is gone


def test_repacking_refuses_what_is_no_chart(tmp_path: Path) -> None:
    flat = _tgz(tmp_path / "f.tgz", {"Chart.yaml": "name: x\nversion: 1.0.0\n"})
    with pytest.raises(ChartUnreadable, match=r"0 top-level Chart\.yaml"):
        with_version(flat, "1.0.0+0cc9a8446c95", tmp_path / "out.tgz")
    evil = _tgz(tmp_path / "e.tgz", {"../x/Chart.yaml": "name: x\nversion: 1.0.0\n"})
    with pytest.raises(ChartUnreadable, match="unreadable"):
        with_version(evil, "1.0.0+0cc9a8446c95", tmp_path / "out2.tgz")


# --- status ---------------------------------------------------------------------------------------------------


def test_last_attempted_revision_digest_only_for_oci_charts() -> None:
    status: dict[str, Any] = {}
    st.stamp_attempt(
        status, generation=2, chart_version="1.0.0+0cc9a8446c95", config_digest="d", revision_digest=DIGEST
    )
    assert status["lastAttemptedRevision"] == "1.0.0+0cc9a8446c95"
    assert status["lastAttemptedRevisionDigest"] == DIGEST
    st.stamp_attempt(status, generation=3, chart_version="1.0.0", config_digest="d")  # moved to a HelmChart
    assert "lastAttemptedRevisionDigest" not in status
