"""HelmChart: build ``<chart>-<version>.tgz`` from its source's stored artifact, store it, announce a new version.

Sources, read from this controller's own storage (never over HTTP):

* HelmRepository: ``spec.version`` (default ``*``) is resolved against the repository's stored index; the
  chart is downloaded with the repository's credentials and checked against the index's digest; with
  ``valuesFiles`` it is repackaged with the merged values and version ``<version>+<generation>``.
* GitRepository: the artifact is unpacked (``safe_extract``) into a scratch directory and ``spec.chart``
  packaged with the real helm; ``reconcileStrategy: Revision`` adds ``+<12 hex of the commit>``.
* Bucket: not supported yet (Stalled, said so); charts from OCI HelmRepositories neither.

The source must be Ready for its current generation, with its artifact in storage, else the chart waits
(DependencyNotReady). As in Flux, a chart whose version did not change keeps its stored artifact
(``reconcileStrategy: ChartVersion``), and nothing is fetched or packaged while the generation, the
source's revision and the artifact file are what the last successful build saw.

Dependent charts - how a new source artifact reaches its charts at once: the HelmChart runner follows its
sources through the ``source`` index (:func:`source_refs`) with the runtime's watches (``new_revision``,
Flux's SourceRevisionChangePredicate), so a source status carrying a new artifact, or turning Ready, wakes
its charts. Sources are read from the process's caches, never with GETs.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from gitops_mesh.artifacts.errors import StorageError
from gitops_mesh.artifacts.extract import ExtractLimits, safe_extract
from gitops_mesh.artifacts.storage import Storage, StoredArtifact
from gitops_mesh.bus.envelope import EventKind, Severity
from gitops_mesh.errors import DependencyNotReady, GitopsMeshError, TerminalError, TransientError
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.informer import Informer
from gitops_mesh.kube.objects import KubeObject, object_key
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import Announcement, Outcome
from gitops_mesh.runner import interval_of
from gitops_mesh.settings import parse_duration
from gitops_mesh.watches import is_ready_at_generation, ref_key
from source_controller.artifact_status import artifact_status, bus_artifact
from source_controller.helm import (
    ChartBuild,
    DependencyRepository,
    IndexFile,
    InvalidChartReference,
    download_chart,
    package_chart_archive,
    package_chart_dir,
    parse_index_file,
    resolve,
    revision_metadata,
    with_build_metadata,
)
from source_controller.helm.chart import parse_chart_yaml
from source_controller.helm.errors import ChartPackageError
from source_controller.helmrepository import DEFAULT_TIMEOUT, is_oci, repository_auth

API_VERSION = "source.toolkit.fluxcd.io/v1"
KIND = "HelmChart"
HELM_REPOSITORY = "HelmRepository"
GIT_REPOSITORY = "GitRepository"
BUCKET = "Bucket"
#: The informer index of HelmCharts by their source.
SOURCE_INDEX = "source"
#: How many HelmRepositories' parsed indexes are kept (one revision each).
INDEX_CACHE_SIZE = 8
#: How many chart names a "no chart named" message lists.
SHOWN_CHARTS = 10

# Errors from building (not fetching) a chart: Flux's BuildFailed; the rest are FetchFailed.
_BUILD_REASONS = frozenset({"MetadataPatchError", "ValuesFilesError", "DependencyBuildError", "ChartPackageError"})

log = get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


# --- pure ----------------------------------------------------------------------------------------------


def source_refs(obj: KubeObject) -> list[str]:
    """The HelmChart cache's index: a chart under its source's ``Kind/namespace/name``."""
    ref = (obj.get("spec") or {}).get("sourceRef") or {}
    namespace = (obj.get("metadata") or {}).get("namespace") or ""
    if not ref.get("kind") or not ref.get("name"):
        return []
    return [ref_key(ref["kind"], namespace, ref["name"])]


def _revision(obj: Mapping[str, Any] | None) -> str | None:
    if obj is None:
        return None
    artifact = (obj.get("status") or {}).get("artifact") or {}
    revision = artifact.get("revision")
    return revision if isinstance(revision, str) else None


def unchanged(obj: Mapping[str, Any], source_revision: str) -> bool:
    """Pure no-op check: Ready, and neither the spec nor the source changed since the stored build."""
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


def dependency_urls(source_root: Path, chart_path: str) -> set[str]:
    """The http(s) repositories the chart at ``chart_path`` names for its dependencies (blocking).

    Best effort: anything unreadable gives none, and packaging reports the real problem.
    """
    root = source_root.resolve()
    chart_dir = (root / chart_path).resolve()
    chart_yaml = chart_dir / "Chart.yaml"
    if not chart_dir.is_relative_to(root) or not chart_yaml.is_file():
        return set()
    requirements = chart_dir / "requirements.yaml"
    try:
        meta = parse_chart_yaml(
            chart_yaml.read_bytes(), requirements=requirements.read_bytes() if requirements.is_file() else None
        )
    except (GitopsMeshError, OSError):
        return set()
    return {
        dep.repository.rstrip("/") for dep in meta.dependencies if dep.repository.startswith(("http://", "https://"))
    }


# --- the reconciler ------------------------------------------------------------------------------------


@dataclass
class HelmChartReconciler:
    """HelmChart's inner work; the runner does finalizers, suspend, conditions and the status patch.

    ``sources`` are the process's caches of the source kinds (GitRepository, HelmRepository).
    """

    kube: KubeClient
    storage: Storage
    http: aiohttp.ClientSession
    sources: Mapping[str, Informer]
    helm: str = "helm"
    clock: Callable[[], datetime] = _now
    _indexes: OrderedDict[tuple[str, str], tuple[str, IndexFile]] = field(default_factory=OrderedDict, repr=False)

    api_version: str = API_VERSION
    kind: str = KIND

    async def reconcile(self, obj: KubeObject) -> Outcome:
        meta, spec = obj["metadata"], obj["spec"]
        ns = meta["namespace"]
        status: dict[str, Any] = obj.setdefault("status", {})
        now = self.clock()
        ref = spec["sourceRef"]
        kind, source_name = ref.get("kind"), ref["name"]
        if kind not in (HELM_REPOSITORY, GIT_REPOSITORY):
            message = (
                "Bucket sources are not supported yet"
                if kind == BUCKET
                else f"unsupported source kind '{kind}', must be one of: HelmRepository, GitRepository, Bucket"
            )
            c.mark_true(obj, c.ConditionType.FETCH_FAILED, "UnsupportedSourceKind", message, now=now)
            raise TerminalError(message, reason="UnsupportedSourceKind")
        source = self._source(obj, kind, ns, source_name, now)
        source_artifact = source["status"]["artifact"]
        source_revision: str = source_artifact["revision"]
        c.delete(obj, c.ConditionType.SOURCE_VERIFIED)  # verify is for OCI sources, which we do not pull

        stored_path = (status.get("artifact") or {}).get("path")
        if unchanged(obj, source_revision) and stored_path and self.storage.exists(stored_path):
            reason, message = summary(
                packaged_by(kind, spec), status.get("observedChartName", ""), _revision(obj) or ""
            )
            return self._done(obj, reason, message, now)

        status["observedSourceArtifactRevision"] = source_revision
        with tempfile.TemporaryDirectory(prefix="helmchart-") as tmp:
            try:
                if kind == HELM_REPOSITORY:
                    build = await self._from_repository(obj, source, Path(tmp))
                else:
                    build = await self._from_tarball(obj, source, Path(tmp))
            except (GitopsMeshError, OSError) as e:
                # OSError: no helm binary, or the scratch disk failed under unpacking or packaging.
                error = e if isinstance(e, GitopsMeshError) else ChartPackageError(f"building the chart failed: {e}")
                failed = (
                    c.ConditionType.BUILD_FAILED if error.reason in _BUILD_REASONS else c.ConditionType.FETCH_FAILED
                )
                c.delete(obj, c.ConditionType.BUILD_FAILED)
                c.delete(obj, c.ConditionType.FETCH_FAILED)
                c.mark_true(obj, failed, error.reason, str(error), now=now)
                if error is e:
                    raise
                raise error from e
            reason, message = summary(build.packaged, build.name, build.version)
            if build.path is None:
                # Same chart, same version, same spec: the stored artifact stays (Flux's ChartVersion rule).
                return self._done(obj, reason, message, now)
            stored, link = await self._store(obj, build, now)

        previous = _revision(obj)
        status["artifact"] = artifact_status(stored, build.version)
        status["url"] = link
        status["observedChartName"] = build.name
        if build.values_files:
            status["observedValuesFiles"] = list(build.values_files)
        else:
            status.pop("observedValuesFiles", None)
        announce = []
        if previous != build.version:
            announce.append(
                Announcement(
                    EventKind.ARTIFACT_READY,
                    reason,
                    message,
                    revision=build.version,
                    severity=Severity.INFO,
                    artifact=bus_artifact(status["artifact"]),
                )
            )
            log.info("new chart", namespace=ns, name=meta["name"], chart=build.name, version=build.version)
        return self._done(obj, reason, message, now, announce)

    async def finalize(self, obj: KubeObject) -> None:
        meta = obj["metadata"]
        await self.storage.remove_all(KIND, meta["namespace"], meta["name"])

    def _done(
        self, obj: KubeObject, reason: str, message: str, now: datetime, announce: list[Announcement] | None = None
    ) -> Outcome:
        for stale in (c.ConditionType.FETCH_FAILED, c.ConditionType.BUILD_FAILED, c.ConditionType.ARTIFACT_OUTDATED):
            c.delete(obj, stale)
        c.mark_true(obj, c.ConditionType.ARTIFACT_IN_STORAGE, reason, message, now=now)
        c.delete(obj, c.ConditionType.STORAGE_OPERATION_FAILED)
        return Outcome.succeeded(
            requeue_after=interval_of(obj), message=message, reason=reason, announce=announce or ()
        )

    # --- the source ------------------------------------------------------------------------------------

    def _source(self, obj: KubeObject, kind: str, ns: str, name: str, now: datetime) -> KubeObject:
        """The source object, Ready with its artifact in our storage; else the chart waits for it."""
        source = self.sources[kind].get(ns, name)
        if source is None:
            message = f"{kind} '{ns}/{name}' not found"
            c.mark_true(obj, c.ConditionType.FETCH_FAILED, "SourceUnavailable", message, now=now)
            raise DependencyNotReady(message)
        if kind == HELM_REPOSITORY and is_oci(source.get("spec") or {}):
            message = f"charts from OCI HelmRepository '{ns}/{name}' are not supported yet"
            c.mark_true(obj, c.ConditionType.FETCH_FAILED, "UnsupportedSourceKind", message, now=now)
            raise TerminalError(message, reason="UnsupportedSourceKind")
        artifact = (source.get("status") or {}).get("artifact")
        if not is_ready_at_generation(source) or not artifact:
            why = c.get_message(source, c.ConditionType.READY) or "not reconciled yet"
            message = f"{kind} '{ns}/{name}' is not ready: {why}"
            c.mark_true(obj, c.ConditionType.FETCH_FAILED, "NoSourceArtifact", message, now=now)
            raise DependencyNotReady(message)
        if not self.storage.exists(artifact["path"]):
            message = f"no artifact available for {kind} source '{name}' in storage"
            c.mark_true(obj, c.ConditionType.FETCH_FAILED, "NoSourceArtifact", message, now=now)
            raise DependencyNotReady(message)
        return source

    async def _index(self, repo: KubeObject) -> IndexFile:
        """The repository's stored index, parsed once per revision (a 50 MB index takes seconds)."""
        key = object_key(repo)
        path: str = repo["status"]["artifact"]["path"]
        cached = self._indexes.get(key)
        if cached is not None and cached[0] == path:
            self._indexes.move_to_end(key)
            return cached[1]
        try:
            index = await asyncio.to_thread(parse_index_file, self.storage.local_path(path))
        except OSError as e:
            raise DependencyNotReady(f"the index of HelmRepository '{key[0]}/{key[1]}' is not readable: {e}") from e
        self._indexes[key] = (path, index)
        self._indexes.move_to_end(key)
        while len(self._indexes) > INDEX_CACHE_SIZE:
            self._indexes.popitem(last=False)
        return index

    # --- builds ----------------------------------------------------------------------------------------

    async def _from_repository(self, obj: KubeObject, repo: KubeObject, tmp: Path) -> _Build:
        spec, status = obj["spec"], obj["status"]
        chart_name: str = spec["chart"]
        index = await self._index(repo)
        try:
            chart = resolve(index, chart_name, spec.get("version") or "*")
        except InvalidChartReference as e:
            raise InvalidChartReference(not_found_message(e, index, chart_name)) from e
        values_files: list[str] = list(spec.get("valuesFiles") or [])
        metadata = revision_metadata(
            reconcile_strategy=spec.get("reconcileStrategy") or "ChartVersion",
            source_kind=HELM_REPOSITORY,
            source_revision=repo["status"]["artifact"]["revision"],
            generation=c.generation_of(obj),
            has_values_files=bool(values_files),
        )
        version = with_build_metadata(chart.version, metadata)
        if (
            holds(status, chart.name, version)
            and status.get("observedGeneration") == c.generation_of(obj)
            and self.storage.exists(status["artifact"]["path"])
        ):
            return _Build(chart.name, version, None, packaged=bool(values_files))

        repo_spec = repo["spec"]
        auth = await repository_auth(self.kube, repo["metadata"]["namespace"], repo_spec)
        pulled_dir = tmp / "pulled"
        pulled_dir.mkdir()
        pulled = await download_chart(
            self.http,
            repo_spec["url"],
            chart,
            pulled_dir,
            auth=auth.credentials,
            ca=auth.ca,
            client_cert=auth.client_cert,
            pass_credentials=auth.pass_credentials,
            timeout=parse_duration(repo_spec.get("timeout") or DEFAULT_TIMEOUT),
        )
        if not values_files:
            return _Build.of(pulled)
        out = tmp / "out"
        out.mkdir()
        repacked = await package_chart_archive(
            pulled.path,
            out,
            helm=self.helm,
            name=chart.name,
            version=version,
            values_files=values_files,
            ignore_missing_values_files=bool(spec.get("ignoreMissingValuesFiles")),
            tmp_dir=tmp,
        )
        return _Build.of(repacked)

    async def _from_tarball(self, obj: KubeObject, source: KubeObject, tmp: Path) -> _Build:
        spec, status = obj["spec"], obj["status"]
        artifact = source["status"]["artifact"]
        src = tmp / "source"
        limits = ExtractLimits()
        await asyncio.to_thread(
            safe_extract,
            self.storage.local_path(artifact["path"]),
            src,
            max_total_bytes=limits.max_total_bytes,
            max_entries=limits.max_entries,
            skip_symlinks=True,
        )
        values_files: list[str] = list(spec.get("valuesFiles") or [])
        metadata = revision_metadata(
            reconcile_strategy=spec.get("reconcileStrategy") or "ChartVersion",
            source_kind=source["kind"],
            source_revision=artifact["revision"],
            generation=c.generation_of(obj),
            has_values_files=bool(values_files),
        )
        repositories = await self._dependency_repositories(source["metadata"]["namespace"], src, spec["chart"])
        out = tmp / "out"
        out.mkdir()
        build = await package_chart_dir(
            src,
            spec["chart"],
            out,
            helm=self.helm,
            version_metadata=metadata,
            values_files=values_files,
            ignore_missing_values_files=bool(spec.get("ignoreMissingValuesFiles")),
            dependency_repositories=repositories,
            tmp_dir=tmp,
        )
        if (
            holds(status, build.name, build.version)
            and status.get("observedGeneration") == c.generation_of(obj)
            and self.storage.exists(status["artifact"]["path"])
        ):
            return _Build(build.name, build.version, None, packaged=True, values_files=build.values_files)
        return _Build.of(build)

    async def _dependency_repositories(self, ns: str, src: Path, chart_path: str) -> list[DependencyRepository]:
        """A repository for each http(s) dependency URL; a HelmRepository with that URL lends its credentials."""
        urls = await asyncio.to_thread(dependency_urls, src, chart_path)
        if not urls:
            return []
        known: dict[str, DependencyRepository] = {}
        repositories = self.sources[HELM_REPOSITORY].list()
        for repo in sorted((r for r in repositories if object_key(r)[0] == ns), key=object_key):
            repo_spec = repo.get("spec") or {}
            url = str(repo_spec.get("url") or "").rstrip("/")
            if url in urls and url not in known and not is_oci(repo_spec):
                known[url] = DependencyRepository(url, await repository_auth(self.kube, ns, repo_spec))
        return [known.get(url) or DependencyRepository(url) for url in sorted(urls)]

    # --- storing ---------------------------------------------------------------------------------------

    async def _store(self, obj: KubeObject, build: _Build, now: datetime) -> tuple[StoredArtifact, str]:
        meta = obj["metadata"]
        ns, name = meta["namespace"], meta["name"]
        assert build.path is not None
        filename = build.path.name
        try:
            stored = await self.storage.copy_file(KIND, ns, name, filename, build.path)
            link = await self.storage.set_latest(stored.path)
            await self.storage.gc(KIND, ns, name, current=filename)
        except (OSError, StorageError) as e:
            c.mark_true(obj, c.ConditionType.STORAGE_OPERATION_FAILED, "ArchiveOperationFailed", str(e), now=now)
            raise TransientError(f"storing the chart failed: {e}", reason="ArchiveOperationFailed") from e
        return stored, link


@dataclass(frozen=True, slots=True)
class _Build:
    """A chart build, or (``path`` None) the verdict that the stored artifact already is this build."""

    name: str
    version: str
    path: Path | None
    packaged: bool
    values_files: tuple[str, ...] = ()

    @classmethod
    def of(cls, build: ChartBuild) -> _Build:
        return cls(build.name, build.version, build.path, build.packaged, build.values_files)
