"""HelmChart's decisions, pure: whether its source can be built from, whether anything changed since the
stored build, the version a build gets and when the stored chart is that build (Flux's ChartVersion rule),
and what each step leaves on status. The I/O (index, download, helm, storage) is :mod:`.helmchart`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_mesh.bus.envelope import EventKind, Severity
from gitops_mesh.errors import DependencyNotReady, GitopsMeshError, TerminalError
from gitops_mesh.kube.objects import KubeObject, object_key
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import Announcement, Outcome
from gitops_mesh.runner import interval_of
from gitops_mesh.watches import is_ready_at_generation
from source_controller.artifact_status import bus_artifact
from source_controller.helm import (
    ChartBuild,
    ChartVersion,
    IndexFile,
    InvalidChartReference,
    resolve,
    revision_metadata,
    with_build_metadata,
)
from source_controller.helm.errors import ChartPackageError
from source_controller.helmchart_verify import unverifiable, verified_mark, wants_verification
from source_controller.helmrepository_plan import is_oci
from source_controller.status_edits import Done, Failure, Mark, StatusEdit

HELM_REPOSITORY = "HelmRepository"
GIT_REPOSITORY = "GitRepository"
BUCKET = "Bucket"
#: How many chart names a "no chart named" message lists.
SHOWN_CHARTS = 10

# Errors from building (not fetching) a chart: Flux's BuildFailed; the rest are FetchFailed.
_BUILD_REASONS = frozenset({"MetadataPatchError", "ValuesFilesError", "DependencyBuildError", "ChartPackageError"})


def _revision(obj: Mapping[str, Any] | None) -> str | None:
    if obj is None:
        return None
    artifact = (obj.get("status") or {}).get("artifact") or {}
    revision = artifact.get("revision")
    return revision if isinstance(revision, str) else None


def unchanged(obj: Mapping[str, Any], source_revision: str) -> bool:
    """Ready, and neither the spec nor the source changed since the stored build."""
    status = obj.get("status") or {}
    return (
        c.is_ready(obj)
        and status.get("observedGeneration") == c.generation_of(obj)
        and status.get("observedSourceArtifactRevision") == source_revision
        and bool(status.get("artifact"))
    )


def holds(status: Mapping[str, Any], chart: str, version: str) -> bool:
    """The stored artifact is this chart at this version (with its build metadata)."""
    return status.get("observedChartName") == chart and (status.get("artifact") or {}).get("revision") == version


def reusable(obj: Mapping[str, Any], chart: str, version: str, artifact_stored: bool) -> bool:
    """Flux's ``reconcileStrategy: ChartVersion`` rule: the stored artifact is this chart at this version,
    built for this generation, and its file is there; then it stays and nothing is pulled or stored."""
    status = obj.get("status") or {}
    return (
        holds(status, chart, version) and status.get("observedGeneration") == c.generation_of(obj) and artifact_stored
    )


def packaged_by(source_kind: str, spec: Mapping[str, Any]) -> bool:
    """True when the chart is packaged by us, False when it is the repository's archive as pulled."""
    return source_kind != HELM_REPOSITORY or bool(spec.get("valuesFiles"))


def summary(packaged: bool, chart: str, version: str) -> tuple[str, str]:
    """Flux's reason and message for a chart build."""
    if packaged:
        return "ChartPackageSucceeded", f"packaged '{chart}' chart with version '{version}'"
    return "ChartPullSucceeded", f"pulled '{chart}' chart with version '{version}'"


def not_found_message(error: InvalidChartReference, index: IndexFile, chart: str) -> str:
    """The resolver's message, plus the charts the index does have when the name itself is unknown."""
    if chart in index.entries or not index.entries:
        return str(error)
    names = sorted(index.entries)
    shown = ", ".join(names[:SHOWN_CHARTS]) + (
        f", … and {len(names) - SHOWN_CHARTS} more" if len(names) > SHOWN_CHARTS else ""
    )
    return f"{error}; charts in the index: {shown}"


def chart_in_index(index: IndexFile, spec: Mapping[str, Any]) -> ChartVersion:
    """The index entry spec.chart and spec.version (default ``*``) select."""
    chart: str = spec["chart"]
    try:
        return resolve(index, chart, spec.get("version") or "*")
    except InvalidChartReference as e:
        raise InvalidChartReference(not_found_message(e, index, chart)) from e


def version_metadata(obj: KubeObject, source_kind: str, source_revision: str) -> str:
    """The build metadata Flux appends to the chart's version (reconcileStrategy, valuesFiles)."""
    spec = obj["spec"]
    return revision_metadata(
        reconcile_strategy=spec.get("reconcileStrategy") or "ChartVersion",
        source_kind=source_kind,
        source_revision=source_revision,
        generation=c.generation_of(obj),
        has_values_files=bool(spec.get("valuesFiles")),
    )


def chart_version(obj: KubeObject, source_kind: str, source_revision: str, version: str) -> str:
    """The version a build of the chart at ``version`` gets: with its build metadata."""
    return with_build_metadata(version, version_metadata(obj, source_kind, source_revision))


# --- the source ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observed:
    """What the I/O found before deciding: the source (from the cache) and which artifacts are in storage."""

    #: the object spec.sourceRef names, None when the cache has none (or its kind is not served)
    source: KubeObject | None
    #: the source's artifact file is in storage
    source_stored: bool
    #: our own status.artifact's file is in storage
    artifact_stored: bool


def _fetch_failed(reason: str, message: str, error: GitopsMeshError) -> Failure:
    return Failure(StatusEdit(marks=(Mark(c.ConditionType.FETCH_FAILED, reason, message),)), error)


def oci_source(kind: str | None, source: Mapping[str, Any]) -> bool:
    """The source is a HelmRepository of type oci (charts pulled from a registry, no artifact of its own)."""
    return kind == HELM_REPOSITORY and is_oci(source.get("spec") or {})


def source_failure(obj: KubeObject, observed: Observed) -> Failure | None:
    """Why the chart cannot be built from its source now: a kind we do not serve (stalls), or a source that is
    missing, not Ready at its generation, or without its artifact in storage (waits; its news wakes us)."""
    ns, ref = obj["metadata"]["namespace"], obj["spec"]["sourceRef"]
    kind, name = ref.get("kind"), ref["name"]
    if kind not in (HELM_REPOSITORY, GIT_REPOSITORY, BUCKET):
        message = f"unsupported source kind '{kind}', must be one of: HelmRepository, GitRepository, Bucket"
        return _fetch_failed("UnsupportedSourceKind", message, TerminalError(message, reason="UnsupportedSourceKind"))
    source = observed.source
    if source is None:
        message = f"{kind} '{ns}/{name}' not found"
        return _fetch_failed("SourceUnavailable", message, DependencyNotReady(message))
    if oci_source(kind, source):
        # An OCI HelmRepository has no artifact to wait for (Flux): the pull itself says what is wrong.
        return None
    if not is_ready_at_generation(source) or not (source.get("status") or {}).get("artifact"):
        why = c.get_message(source, c.ConditionType.READY) or "not reconciled yet"
        message = f"{kind} '{ns}/{name}' is not ready: {why}"
        return _fetch_failed("NoSourceArtifact", message, DependencyNotReady(message))
    if not observed.source_stored:
        message = f"no artifact available for {kind} source '{name}' in storage"
        return _fetch_failed("NoSourceArtifact", message, DependencyNotReady(message))
    return None


# --- the plan ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Build:
    """Build the chart from ``source``'s artifact, after ``edit``."""

    source_kind: str
    source: KubeObject
    source_revision: str
    #: our own status.artifact's file is in storage (for the ChartVersion rule)
    artifact_stored: bool
    edit: StatusEdit


_DONE_DELETES = (
    c.ConditionType.FETCH_FAILED,
    c.ConditionType.BUILD_FAILED,
    c.ConditionType.ARTIFACT_OUTDATED,
    c.ConditionType.STORAGE_OPERATION_FAILED,
)


def done(
    obj: KubeObject,
    reason: str,
    message: str,
    *,
    edit: StatusEdit | None = None,
    announce: Iterable[Announcement] = (),
) -> Done:
    """The chart's artifact is in storage: ArtifactInStorage with the build's reason, no failure left."""
    edit = edit or StatusEdit()
    final = StatusEdit(
        marks=(*edit.marks, Mark(c.ConditionType.ARTIFACT_IN_STORAGE, reason, message)),
        deletes=(*edit.deletes, *_DONE_DELETES),
        writes=edit.writes,
        drops=edit.drops,
    )
    outcome = Outcome.succeeded(requeue_after=interval_of(obj), message=message, reason=reason, announce=announce)
    return Done(final, outcome)


def plan(obj: KubeObject, observed: Observed) -> Failure | Done | Build:
    """Fail or wait on the source; nothing to do when neither spec nor source changed; else build."""
    failure = source_failure(obj, observed)
    if failure is not None:
        return failure
    spec, status = obj["spec"], obj.get("status") or {}
    kind: str = spec["sourceRef"]["kind"]
    source = observed.source
    assert source is not None  # source_failure checked it
    refused = unverifiable(spec, kind, oci_source(kind, source))
    if refused is not None:
        return refused
    # With spec.verify, SourceVerified stays until this build verifies again (True) or fails to (False).
    not_verified = () if wants_verification(spec) else (c.ConditionType.SOURCE_VERIFIED,)
    if oci_source(kind, source):
        # No source revision tells that nothing changed: the registry's tags are listed every interval, and
        # the ChartVersion rule keeps the stored chart when they give the same version.
        return Build(kind, source, "", observed.artifact_stored, StatusEdit(deletes=not_verified))
    source_revision: str = source["status"]["artifact"]["revision"]
    if unchanged(obj, source_revision) and observed.artifact_stored:
        reason, message = summary(packaged_by(kind, spec), status.get("observedChartName", ""), _revision(obj) or "")
        return done(obj, reason, message, edit=StatusEdit(deletes=not_verified))
    edit = StatusEdit(deletes=not_verified, writes={"observedSourceArtifactRevision": source_revision})
    return Build(kind, source, source_revision, observed.artifact_stored, edit)


# --- after the build -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuiltChart:
    """A chart build, or (``path`` None) the verdict that the stored artifact already is this build."""

    name: str
    version: str
    path: Path | None
    packaged: bool
    values_files: tuple[str, ...] = ()
    #: a trusted key verified the chart's signature in this reconcile (spec.verify)
    verified: bool = False

    @classmethod
    def of(cls, build: ChartBuild, *, verified: bool = False) -> BuiltChart:
        return cls(build.name, build.version, build.path, build.packaged, build.values_files, verified)


def _verified(built: BuiltChart) -> tuple[Mark, ...]:
    return (verified_mark(built.version),) if built.verified else ()


def build_failed(error: GitopsMeshError | OSError) -> Failure:
    """Building failed: BuildFailed for errors of the build itself, else FetchFailed (never both).

    An OSError (no helm binary, the scratch disk failing under unpacking or packaging) is a packaging error.
    """
    reported = error if isinstance(error, GitopsMeshError) else ChartPackageError(f"building the chart failed: {error}")
    failed, other = c.ConditionType.BUILD_FAILED, c.ConditionType.FETCH_FAILED
    if reported.reason not in _BUILD_REASONS:
        failed, other = other, failed
    return Failure(StatusEdit(marks=(Mark(failed, reported.reason, str(reported)),), deletes=(other,)), reported)


def reused(obj: KubeObject, built: BuiltChart) -> Done:
    """Same chart, same version, same spec: the stored artifact stays (Flux's ChartVersion rule)."""
    return done(obj, *summary(built.packaged, built.name, built.version), edit=StatusEdit(marks=_verified(built)))


def chart_stored(obj: KubeObject, built: BuiltChart, artifact: dict[str, Any], url: str) -> Done:
    """The new chart is stored (``url`` is its latest link): record it, announce it if its version is new."""
    reason, message = summary(built.packaged, built.name, built.version)
    announce = []
    if _revision(obj) != built.version:
        announce.append(
            Announcement(
                EventKind.ARTIFACT_READY,
                reason,
                message,
                revision=built.version,
                severity=Severity.INFO,
                artifact=bus_artifact(artifact),
            )
        )
    writes: dict[str, Any] = {"artifact": artifact, "url": url, "observedChartName": built.name}
    if built.values_files:
        writes["observedValuesFiles"] = list(built.values_files)
    edit = StatusEdit(
        marks=_verified(built), writes=writes, drops=() if built.values_files else ("observedValuesFiles",)
    )
    return done(obj, reason, message, edit=edit, announce=announce)


# --- dependencies --------------------------------------------------------------------------------------


def credential_sources(
    namespace: str, urls: Iterable[str], repositories: Iterable[KubeObject]
) -> list[tuple[str, Mapping[str, Any] | None]]:
    """For each dependency URL (sorted), the spec of the HelmRepository lending it credentials, if any: one in
    the chart's namespace with that URL (not OCI), the first by name."""
    wanted = set(urls)
    lenders: dict[str, Mapping[str, Any]] = {}
    for repo in sorted((r for r in repositories if object_key(r)[0] == namespace), key=object_key):
        spec = repo.get("spec") or {}
        url = str(spec.get("url") or "").rstrip("/")
        if url in wanted and url not in lenders and not is_oci(spec):
            lenders[url] = spec
    return [(url, lenders.get(url)) for url in sorted(wanted)]
