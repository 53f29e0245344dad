"""HelmChart's decisions without a Helm repository: the source gate, no-op, the ChartVersion reuse rule,
versions with build metadata, and the BuildFailed / FetchFailed / ArtifactInStorage verdicts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gitops_mesh.bus.envelope import Artifact, EventKind
from gitops_mesh.errors import DependencyNotReady, GitopsMeshError, TerminalError
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from source_controller.helm import (
    ChartPackageError,
    ChartPullError,
    ChartVersion,
    DependencyBuildError,
    IndexFile,
    InvalidChartReference,
    MetadataPatchError,
    RepositoryFetchFailed,
    ValuesFilesError,
)
from source_controller.helmchart import source_refs
from source_controller.helmchart_plan import (
    Build,
    BuiltChart,
    Observed,
    build_failed,
    chart_in_index,
    chart_stored,
    chart_version,
    credential_sources,
    plan,
    reusable,
    reused,
)
from source_controller.status_edits import Done, Failure

NOW = datetime(2026, 1, 1, tzinfo=UTC)
INDEX_REV = "sha256:" + "1" * 64
COMMIT = "0123456789abcdef" + "0" * 24
GIT_REV = f"main@sha1:{COMMIT}"

DONE_DELETES = {
    c.ConditionType.FETCH_FAILED,
    c.ConditionType.BUILD_FAILED,
    c.ConditionType.ARTIFACT_OUTDATED,
    c.ConditionType.STORAGE_OPERATION_FAILED,
}


def chart(status: dict[str, Any] | None = None, *, kind: str = "HelmRepository", **spec: Any) -> KubeObject:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "HelmChart",
        "metadata": {"name": "podinfo", "namespace": "apps", "generation": 3},
        "spec": {"chart": "podinfo", "interval": "10m", "sourceRef": {"kind": kind, "name": "src"}, **spec},
        "status": status if status is not None else {},
    }


def source(
    kind: str = "HelmRepository",
    revision: str = INDEX_REV,
    *,
    ready: bool = True,
    generation: int = 1,
    observed: int = 1,
    **spec: Any,
) -> KubeObject:
    obj: KubeObject = {
        "kind": kind,
        "metadata": {"name": "src", "namespace": "apps", "generation": generation},
        "spec": {"url": "https://charts.example", **spec},
        "status": {"observedGeneration": observed, "artifact": {"path": "x/src/a", "revision": revision}},
    }
    if ready:
        c.mark_true(obj, c.ConditionType.READY, "Succeeded", "stored", now=NOW)
    else:
        c.mark_false(obj, c.ConditionType.READY, "Failed", "failed to fetch Helm repository index: 500", now=NOW)
    return obj


def built_status(
    version: str = "6.5.0", source_revision: str = INDEX_REV, generation: int = 3, **extra: Any
) -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "observedSourceArtifactRevision": source_revision,
        "observedChartName": "podinfo",
        "artifact": {
            "path": f"helmchart/apps/podinfo/podinfo-{version}.tgz",
            "url": f"http://storage/helmchart/apps/podinfo/podinfo-{version}.tgz",
            "revision": version,
            "digest": "sha256:cc",
            "size": 900,
        },
        **extra,
    }


def ready_chart(status: dict[str, Any], **spec: Any) -> KubeObject:
    obj = chart(status, **spec)
    c.mark_true(obj, c.ConditionType.READY, "ChartPullSucceeded", "pulled", now=NOW)
    return obj


def observed(src: KubeObject | None, *, source_stored: bool = True, artifact_stored: bool = True) -> Observed:
    return Observed(source=src, source_stored=source_stored, artifact_stored=artifact_stored)


def fetch_mark(failure: Failure) -> tuple[str, str]:
    mark = failure.edit.mark(c.ConditionType.FETCH_FAILED)
    assert mark is not None
    return mark.reason, mark.message


# --- the source ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (
            "OCIRepository",
            "unsupported source kind 'OCIRepository', must be one of: HelmRepository, GitRepository, Bucket",
        ),
    ],
)
def test_a_source_kind_we_do_not_serve_stalls(kind: str, message: str) -> None:
    step = plan(chart(kind=kind), observed(None))
    assert isinstance(step, Failure)
    assert isinstance(step.error, TerminalError)
    assert (step.error.reason, str(step.error)) == ("UnsupportedSourceKind", message)
    assert fetch_mark(step) == ("UnsupportedSourceKind", message)


def test_charts_from_an_oci_helm_repository_are_built_without_a_source_artifact() -> None:
    # An OCI HelmRepository has no artifact: the chart is pulled (its tags listed) every time, no revision kept.
    step = plan(chart(), observed(source(type="oci")))
    assert isinstance(step, Build)
    assert step.source_revision == ""
    assert "observedSourceArtifactRevision" not in step.edit.writes


def test_a_missing_source_is_waited_for() -> None:
    step = plan(chart(kind="GitRepository"), observed(None))
    assert isinstance(step, Failure)
    assert isinstance(step.error, DependencyNotReady)
    assert str(step.error) == "GitRepository 'apps/src' not found"
    assert fetch_mark(step) == ("SourceUnavailable", "GitRepository 'apps/src' not found")


@pytest.mark.parametrize(
    ("src", "why"),
    [
        (source(ready=False), "failed to fetch Helm repository index: 500"),
        (source(generation=2, observed=1), "stored"),  # Ready, but for the spec before
    ],
)
def test_a_source_not_ready_at_its_generation_is_waited_for(src: KubeObject, why: str) -> None:
    step = plan(chart(), observed(src))
    assert isinstance(step, Failure)
    assert isinstance(step.error, DependencyNotReady)
    assert fetch_mark(step) == ("NoSourceArtifact", f"HelmRepository 'apps/src' is not ready: {why}")


def test_a_source_never_reconciled_says_so() -> None:
    src = source()
    src["status"] = {}
    step = plan(chart(), observed(src))
    assert isinstance(step, Failure)
    assert fetch_mark(step) == ("NoSourceArtifact", "HelmRepository 'apps/src' is not ready: not reconciled yet")


def test_a_source_whose_artifact_is_not_in_storage_is_waited_for() -> None:
    step = plan(chart(kind="GitRepository"), observed(source("GitRepository", GIT_REV), source_stored=False))
    assert isinstance(step, Failure)
    assert isinstance(step.error, DependencyNotReady)
    assert fetch_mark(step) == ("NoSourceArtifact", "no artifact available for GitRepository source 'src' in storage")


def test_the_source_index_names_the_source() -> None:
    assert source_refs(chart(kind="GitRepository")) == ["GitRepository/apps/src"]
    assert source_refs({"metadata": {"namespace": "apps"}, "spec": {}}) == []


# --- no-op or build ------------------------------------------------------------------------------------


def test_nothing_changed_is_a_no_op_with_the_pull_verdict() -> None:
    obj = ready_chart(built_status())
    c.mark_true(obj, c.ConditionType.SOURCE_VERIFIED, "Succeeded", "old", now=NOW)
    step = plan(obj, observed(source()))
    assert isinstance(step, Done)
    assert set(step.edit.deletes) == {*DONE_DELETES, c.ConditionType.SOURCE_VERIFIED}
    assert step.outcome.reason == "ChartPullSucceeded"
    assert step.outcome.message == "pulled 'podinfo' chart with version '6.5.0'"
    assert step.outcome.requeue_after == 600.0
    assert step.outcome.announce == ()
    step.apply(obj, now=NOW)
    assert c.get_reason(obj, c.ConditionType.ARTIFACT_IN_STORAGE) == "ChartPullSucceeded"
    assert c.get_message(obj, c.ConditionType.ARTIFACT_IN_STORAGE) == "pulled 'podinfo' chart with version '6.5.0'"
    assert not c.has(obj, c.ConditionType.SOURCE_VERIFIED)


def test_a_chart_we_package_reports_packaging_on_a_no_op() -> None:
    obj = ready_chart(built_status("1.0.0+0123456789ab", GIT_REV), kind="GitRepository")
    step = plan(obj, observed(source("GitRepository", GIT_REV)))
    assert isinstance(step, Done)
    assert step.outcome.reason == "ChartPackageSucceeded"
    assert step.outcome.message == "packaged 'podinfo' chart with version '1.0.0+0123456789ab'"


@pytest.mark.parametrize(
    ("obj", "src", "artifact_stored"),
    [
        (ready_chart(built_status(generation=2)), source(), True),  # the spec changed
        (ready_chart(built_status()), source(revision="sha256:" + "2" * 64), True),  # the source changed
        (chart(built_status()), source(), True),  # not Ready
        (ready_chart(built_status()), source(), False),  # our artifact's file is gone
        (chart(), source(), False),  # first build
    ],
)
def test_a_change_builds_and_records_the_source_revision_first(
    obj: KubeObject, src: KubeObject, artifact_stored: bool
) -> None:
    step = plan(obj, observed(src, artifact_stored=artifact_stored))
    assert isinstance(step, Build)
    revision = src["status"]["artifact"]["revision"]
    assert (step.source_kind, step.source, step.source_revision) == ("HelmRepository", src, revision)
    assert step.artifact_stored is artifact_stored
    assert step.edit.writes == {"observedSourceArtifactRevision": revision}
    assert step.edit.deletes == (c.ConditionType.SOURCE_VERIFIED,)


# --- versions and the ChartVersion rule ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "revision", "spec", "version"),
    [
        ("HelmRepository", INDEX_REV, {}, "6.5.0"),
        ("HelmRepository", INDEX_REV, {"reconcileStrategy": "Revision"}, "6.5.0"),
        ("HelmRepository", INDEX_REV, {"valuesFiles": ["values-prod.yaml"]}, "6.5.0+3"),
        ("GitRepository", GIT_REV, {}, "6.5.0"),
        ("GitRepository", GIT_REV, {"reconcileStrategy": "Revision"}, "6.5.0+0123456789ab"),
        (
            "GitRepository",
            GIT_REV,
            {"reconcileStrategy": "Revision", "valuesFiles": ["v.yaml"]},
            "6.5.0+0123456789ab.3",
        ),
    ],
)
def test_chart_version_carries_flux_build_metadata(
    kind: str, revision: str, spec: dict[str, Any], version: str
) -> None:
    assert chart_version(chart(kind=kind, **spec), kind, revision, "6.5.0") == version


def test_chart_version_refuses_a_version_that_cannot_take_metadata() -> None:
    with pytest.raises(MetadataPatchError):
        chart_version(chart(valuesFiles=["v.yaml"]), "HelmRepository", INDEX_REV, "not-a-version")


def test_the_stored_chart_is_reused_only_when_it_is_this_build() -> None:
    obj = ready_chart(built_status("6.5.0"))
    assert reusable(obj, "podinfo", "6.5.0", artifact_stored=True)
    assert not reusable(obj, "podinfo", "6.5.0", artifact_stored=False)
    assert not reusable(obj, "podinfo", "6.5.1", artifact_stored=True)
    assert not reusable(obj, "other", "6.5.0", artifact_stored=True)
    obj["metadata"]["generation"] = 4  # a new spec (e.g. new valuesFiles) is always rebuilt
    assert not reusable(obj, "podinfo", "6.5.0", artifact_stored=True)


def test_reusing_reports_the_build_it_kept() -> None:
    done = reused(chart(), BuiltChart("podinfo", "6.5.0", None, packaged=False))
    assert done.outcome.reason == "ChartPullSucceeded"
    assert done.outcome.message == "pulled 'podinfo' chart with version '6.5.0'"
    assert done.outcome.announce == ()
    mark = done.edit.mark(c.ConditionType.ARTIFACT_IN_STORAGE)
    assert mark is not None
    assert (mark.reason, mark.message) == ("ChartPullSucceeded", "pulled 'podinfo' chart with version '6.5.0'")
    assert set(done.edit.deletes) == DONE_DELETES
    assert done.edit.writes == {}


def test_chart_in_index_lists_the_charts_there_when_the_name_is_unknown() -> None:
    index = IndexFile("v1", {"nginx": (ChartVersion("nginx", "1.0.0"),), "redis": (ChartVersion("redis", "2.0.0"),)})
    assert chart_in_index(index, {"chart": "redis", "version": "2.x"}) == ChartVersion("redis", "2.0.0")
    with pytest.raises(InvalidChartReference) as raised:
        chart_in_index(index, {"chart": "podinfo"})
    assert str(raised.value) == "no chart named 'podinfo' in the repository index; charts in the index: nginx, redis"
    with pytest.raises(InvalidChartReference) as raised:
        chart_in_index(index, {"chart": "redis", "version": "3.x"})
    assert str(raised.value) == "no chart version found for redis-3.x (available: 2.0.0)"


# --- after the build -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "failed", "other"),
    [
        (
            MetadataPatchError("failed to set SemVer metadata"),
            c.ConditionType.BUILD_FAILED,
            c.ConditionType.FETCH_FAILED,
        ),
        (ValuesFilesError("values-prod.yaml: not found"), c.ConditionType.BUILD_FAILED, c.ConditionType.FETCH_FAILED),
        (
            DependencyBuildError("helm dependency build failed"),
            c.ConditionType.BUILD_FAILED,
            c.ConditionType.FETCH_FAILED,
        ),
        (ChartPackageError("helm package failed"), c.ConditionType.BUILD_FAILED, c.ConditionType.FETCH_FAILED),
        (ChartPullError("download failed: 503"), c.ConditionType.FETCH_FAILED, c.ConditionType.BUILD_FAILED),
        (InvalidChartReference("no chart named 'x'"), c.ConditionType.FETCH_FAILED, c.ConditionType.BUILD_FAILED),
        (
            RepositoryFetchFailed("timeout", url="https://charts.example"),
            c.ConditionType.FETCH_FAILED,
            c.ConditionType.BUILD_FAILED,
        ),
    ],
)
def test_a_failed_build_is_build_failed_or_fetch_failed_never_both(
    error: GitopsMeshError, failed: c.ConditionType, other: c.ConditionType
) -> None:
    obj = chart()
    c.mark_true(obj, other, "Earlier", "the last failure", now=NOW)
    failure = build_failed(error)
    assert failure.error is error
    failure.apply(obj, now=NOW)
    assert c.is_true(obj, failed)
    assert (c.get_reason(obj, failed), c.get_message(obj, failed)) == (error.reason, str(error))
    assert not c.has(obj, other)


def test_an_os_error_while_building_is_a_packaging_failure() -> None:
    failure = build_failed(FileNotFoundError(2, "No such file or directory", "helm"))
    assert isinstance(failure.error, ChartPackageError)
    message = "building the chart failed: [Errno 2] No such file or directory: 'helm'"
    assert str(failure.error) == message
    mark = failure.edit.mark(c.ConditionType.BUILD_FAILED)
    assert mark is not None
    assert (mark.reason, mark.message) == ("ChartPackageError", message)
    assert failure.edit.deletes == (c.ConditionType.FETCH_FAILED,)


def test_a_new_chart_is_recorded_and_announced() -> None:
    obj = ready_chart(built_status("6.4.0", observedValuesFiles=["old.yaml"]))
    c.mark_true(obj, c.ConditionType.BUILD_FAILED, "ChartPackageError", "earlier", now=NOW)
    c.mark_true(obj, c.ConditionType.STORAGE_OPERATION_FAILED, "ArchiveOperationFailed", "earlier", now=NOW)
    artifact = {"path": "p", "url": "http://storage/p", "revision": "6.5.0+3", "digest": "sha256:dd", "size": 1000}
    built = BuiltChart(
        "podinfo", "6.5.0+3", Path("/tmp/podinfo-6.5.0+3.tgz"), packaged=True, values_files=("prod.yaml",)
    )
    done = chart_stored(obj, built, artifact, "http://storage/helmchart/apps/podinfo/latest.tar.gz")

    assert done.outcome.reason == "ChartPackageSucceeded"
    assert done.outcome.message == "packaged 'podinfo' chart with version '6.5.0+3'"
    [event] = done.outcome.announce
    assert (event.kind, event.reason, event.message, event.revision) == (
        EventKind.ARTIFACT_READY,
        "ChartPackageSucceeded",
        "packaged 'podinfo' chart with version '6.5.0+3'",
        "6.5.0+3",
    )
    assert event.artifact == Artifact(url="http://storage/p", digest="sha256:dd", revision="6.5.0+3", size=1000)

    done.apply(obj, now=NOW)
    status = obj["status"]
    assert status["artifact"] == artifact
    assert status["url"] == "http://storage/helmchart/apps/podinfo/latest.tar.gz"
    assert status["observedChartName"] == "podinfo"
    assert status["observedValuesFiles"] == ["prod.yaml"]
    assert c.get_reason(obj, c.ConditionType.ARTIFACT_IN_STORAGE) == "ChartPackageSucceeded"
    assert not c.has(obj, c.ConditionType.BUILD_FAILED)
    assert not c.has(obj, c.ConditionType.STORAGE_OPERATION_FAILED)


def test_the_same_version_stored_again_is_not_announced_and_drops_stale_values_files() -> None:
    obj = ready_chart(built_status("6.5.0", observedValuesFiles=["old.yaml"]))
    artifact = {"path": "p", "url": "u", "revision": "6.5.0", "digest": "sha256:ee", "size": 1}
    done = chart_stored(obj, BuiltChart("podinfo", "6.5.0", Path("/tmp/c.tgz"), packaged=False), artifact, "l")
    assert done.outcome.announce == ()
    assert done.outcome.reason == "ChartPullSucceeded"
    done.apply(obj, now=NOW)
    assert "observedValuesFiles" not in obj["status"]


def test_credentials_for_dependencies_come_from_a_helm_repository_in_the_namespace() -> None:
    def repo(ns: str, name: str, url: str, **spec: Any) -> KubeObject:
        return {"metadata": {"namespace": ns, "name": name}, "spec": {"url": url, **spec}}

    b = repo("apps", "b", "https://charts.example/stable/", secretRef={"name": "b"})
    a = repo("apps", "a", "https://charts.example/stable", secretRef={"name": "a"})
    repositories = [
        b,
        a,
        repo("other", "c", "https://private.example"),
        repo("apps", "oci", "https://oci.example", type="oci"),
    ]
    urls = {"https://private.example", "https://charts.example/stable", "https://oci.example"}
    assert credential_sources("apps", urls, repositories) == [
        ("https://charts.example/stable", a["spec"]),  # the first by name
        ("https://oci.example", None),  # OCI repositories lend nothing
        ("https://private.example", None),  # another namespace's neither
    ]
