"""HelmChart: build ``<chart>-<version>.tgz`` from its source's stored artifact, store it, announce a new version.

Sources, read from this controller's own storage (never over HTTP):

* HelmRepository: ``spec.version`` (default ``*``) is resolved against the repository's stored index; the
  chart is downloaded with the repository's credentials and checked against the index's digest; with
  ``valuesFiles`` it is repackaged with the merged values and version ``<version>+<generation>``.
* GitRepository: the artifact is unpacked (``safe_extract``) into a scratch directory and ``spec.chart``
  packaged with the real helm; ``reconcileStrategy: Revision`` adds ``+<12 hex of the commit>``.
* HelmRepository of type oci: ``spec.version`` is the tag, or a range resolved against the registry's tags
  (:mod:`.helm.oci`); the chart layer of ``oci://<url>/<chart>:<tag>`` is pulled with the repository's
  credentials and TLS material (:mod:`.helm.oci_pull`), then treated as a chart from an index is. With
  ``spec.verify`` the chart's manifest digest must carry a cosign signature by one of the Secret's public keys
  (:mod:`gitops_mesh.oci.cosign`), checked every reconcile before anything is stored (:mod:`.helmchart_verify`).
* Bucket: as a GitRepository: its artifact unpacked and ``spec.chart`` packaged; ``reconcileStrategy: Revision``
  adds ``+<12 hex of the bucket revision>``.

The source must be Ready for its current generation, with its artifact in storage, else the chart waits
(DependencyNotReady); an OCI HelmRepository has no artifact and is not waited for (Flux). As in Flux, a
chart whose version did not change keeps its stored artifact
(``reconcileStrategy: ChartVersion``), and nothing is fetched or packaged while the generation, the
source's revision and the artifact file are what the last successful build saw.

The decisions are :mod:`.helmchart_plan`'s (pure); this module does the I/O between them.

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

import aiohttp

from gitops_mesh.artifacts.errors import StorageError
from gitops_mesh.artifacts.extract import ExtractLimits, safe_extract
from gitops_mesh.artifacts.storage import Storage, StoredArtifact
from gitops_mesh.errors import DependencyNotReady, GitopsMeshError, NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.informer import Informer
from gitops_mesh.kube.objects import KubeObject, object_key
from gitops_mesh.kube.secrets import secret_data
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.oci import RegistryClient, Repository, cosign
from gitops_mesh.reconcile.result import Outcome
from gitops_mesh.settings import parse_duration
from gitops_mesh.watches import ref_key
from source_controller.artifact_status import artifact_status, in_storage
from source_controller.helm import (
    DependencyRepository,
    IndexFile,
    download_chart,
    package_chart_archive,
    package_chart_dir,
    parse_index_file,
)
from source_controller.helm.chart import parse_chart_yaml
from source_controller.helm.errors import ChartPullError
from source_controller.helm.oci import tag_of
from source_controller.helm.oci_pull import pull_chart, resolve_version
from source_controller.helmchart_plan import (
    HELM_REPOSITORY,
    Build,
    BuiltChart,
    Observed,
    build_failed,
    chart_in_index,
    chart_stored,
    chart_version,
    credential_sources,
    oci_source,
    plan,
    reusable,
    reused,
    version_metadata,
)
from source_controller.helmchart_verify import keys_error, signature_error, verification_failure, wants_verification
from source_controller.helmrepository import DEFAULT_TIMEOUT, oci_repository_client, oci_timeout, repository_auth
from source_controller.ocirepository_plan import refuse_keyless
from source_controller.status_edits import Done, Failure, storage_failed
from source_controller.unsupported import HELM_CHART, refuse_unsupported

API_VERSION = "source.toolkit.fluxcd.io/v1"
KIND = "HelmChart"
#: The informer index of HelmCharts by their source.
SOURCE_INDEX = "source"
#: How many HelmRepositories' parsed indexes are kept (one revision each).
INDEX_CACHE_SIZE = 8

log = get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def source_refs(obj: KubeObject) -> list[str]:
    """The HelmChart cache's index: a chart under its source's ``Kind/namespace/name``."""
    ref = (obj.get("spec") or {}).get("sourceRef") or {}
    namespace = (obj.get("metadata") or {}).get("namespace") or ""
    if not ref.get("kind") or not ref.get("name"):
        return []
    return [ref_key(ref["kind"], namespace, ref["name"])]


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


@dataclass
class HelmChartReconciler:
    """HelmChart's inner work; the runner does finalizers, suspend, conditions and the status patch.

    ``sources`` are the process's caches of the source kinds (GitRepository, HelmRepository, Bucket).
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
        refuse_unsupported(obj["spec"], HELM_CHART)
        refuse_keyless(obj["spec"])
        step = plan(obj, self._observe(obj))
        if isinstance(step, Failure):
            raise step.apply(obj, now=self.clock())
        if isinstance(step, Done):
            return step.apply(obj, now=self.clock())
        step.edit.apply(obj, now=self.clock())
        with tempfile.TemporaryDirectory(prefix="helmchart-") as tmp:
            built = await self._build(obj, step, Path(tmp))
            if built.path is None:
                return reused(obj, built).apply(obj, now=self.clock())
            artifact, link = await self._store(obj, built.path)
        done = chart_stored(obj, built, artifact_status(artifact, built.version), link)
        if done.outcome.announce:
            meta = obj["metadata"]
            log.info(
                "new chart", namespace=meta["namespace"], name=meta["name"], chart=built.name, version=built.version
            )
        return done.apply(obj, now=self.clock())

    async def finalize(self, obj: KubeObject) -> None:
        meta = obj["metadata"]
        await self.storage.remove_all(KIND, meta["namespace"], meta["name"])

    def _observe(self, obj: KubeObject) -> Observed:
        """The source from its kind's cache, and which of the artifacts involved are in storage."""
        ref = obj["spec"]["sourceRef"]
        cache = self.sources.get(ref.get("kind") or "")
        source = cache.get(obj["metadata"]["namespace"], ref["name"]) if cache is not None else None
        return Observed(
            source=source,
            source_stored=source is not None and in_storage(self.storage, source),
            artifact_stored=in_storage(self.storage, obj),
        )

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

    async def _build(self, obj: KubeObject, step: Build, tmp: Path) -> BuiltChart:
        """The chart from its source; a failure is BuildFailed or FetchFailed."""
        try:
            if oci_source(step.source_kind, step.source):
                return await self._from_oci_repository(obj, step, tmp)
            if step.source_kind == HELM_REPOSITORY:
                return await self._from_repository(obj, step, tmp)
            return await self._from_tarball(obj, step, tmp)
        except (GitopsMeshError, OSError) as e:
            failure = verification_failure(e) if isinstance(e, GitopsMeshError) else None
            (failure or build_failed(e)).fail(obj, cause=e, now=self.clock())

    async def _from_repository(self, obj: KubeObject, step: Build, tmp: Path) -> BuiltChart:
        """Resolve the version in the stored index; pull the chart unless the stored one is it; repackage it
        with the merged values when spec.valuesFiles asks."""
        spec = obj["spec"]
        chart = chart_in_index(await self._index(step.source), spec)
        version = chart_version(obj, HELM_REPOSITORY, step.source_revision, chart.version)
        values_files: list[str] = list(spec.get("valuesFiles") or [])
        if reusable(obj, chart.name, version, step.artifact_stored):
            return BuiltChart(chart.name, version, None, packaged=bool(values_files))

        repo_spec = step.source["spec"]
        auth = await repository_auth(self.kube, step.source["metadata"]["namespace"], repo_spec)
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
            return BuiltChart.of(pulled)
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
        return BuiltChart.of(repacked)

    async def _from_oci_repository(self, obj: KubeObject, step: Build, tmp: Path) -> BuiltChart:
        """Resolve the version from the registry's tags; pull the chart unless the stored one is it; repackage it
        with the merged values when spec.valuesFiles asks (as a chart from an index)."""
        spec, repo_spec = obj["spec"], step.source["spec"]
        location, client, _ = await oci_repository_client(
            self.kube, self.http, step.source["metadata"]["namespace"], repo_spec
        )
        name: str = spec["chart"]
        chart_repo = location.chart(name)
        timeout = oci_timeout(repo_spec)
        try:
            async with asyncio.timeout(timeout):
                resolved = await resolve_version(client, chart_repo, spec.get("version") or "*")
                version = chart_version(obj, HELM_REPOSITORY, "", resolved)
                # Flux verifies at every reconcile, before the stored chart is kept or a new one pulled.
                digest = await self._verify(obj, client, chart_repo, resolved) if wants_verification(spec) else None
                verified = digest is not None
                values_files: list[str] = list(spec.get("valuesFiles") or [])
                if reusable(obj, name, version, step.artifact_stored):
                    return BuiltChart(name, version, None, packaged=bool(values_files), verified=verified)
                pulled_dir = tmp / "pulled"
                pulled_dir.mkdir()
                pulled = await pull_chart(client, chart_repo, name, resolved, pulled_dir, digest=digest)
        except TimeoutError as e:
            raise ChartPullError(f"pulling chart {name} from {location.url} timed out after {timeout:g}s") from e
        if not values_files:
            return BuiltChart.of(pulled, verified=verified)
        out = tmp / "out"
        out.mkdir()
        repacked = await package_chart_archive(
            pulled.path,
            out,
            helm=self.helm,
            name=name,
            version=version,
            values_files=values_files,
            ignore_missing_values_files=bool(spec.get("ignoreMissingValuesFiles")),
            tmp_dir=tmp,
        )
        return BuiltChart.of(repacked, verified=verified)

    async def _verify(self, obj: KubeObject, client: RegistryClient, repo: Repository, version: str) -> str:
        """The manifest digest of chart ``version``, once a cosign signature of it verified with one of the
        spec.verify Secret's public keys (in the chart's namespace); else VerificationError/ChartVerificationError."""
        ns, secret = obj["metadata"]["namespace"], obj["spec"]["verify"]["secretRef"]["name"]
        try:
            keys = cosign.load_public_keys(await secret_data(self.kube, ns, secret))
        except NotFound as e:
            raise keys_error(f"secret '{ns}/{secret}' not found") from e
        except cosign.InvalidPublicKey as e:
            raise keys_error(f"secret '{ns}/{secret}': {e}") from e
        if not keys:
            raise keys_error(f"no public keys found in secret '{ns}/{secret}'")
        reference = f"oci://{repo}:{tag_of(version)}"
        try:
            descriptor = await client.resolve(repo, tag_of(version))
            await cosign.verify(client, repo, descriptor.digest, keys)
        except GitopsMeshError as e:
            raise signature_error(reference, e) from e
        return descriptor.digest

    async def _from_tarball(self, obj: KubeObject, step: Build, tmp: Path) -> BuiltChart:
        """Unpack the source's artifact and package spec.chart with helm; the stored chart stays when the
        package is the same chart at the same version."""
        spec = obj["spec"]
        src = tmp / "source"
        await asyncio.to_thread(
            safe_extract,
            self.storage.local_path(step.source["status"]["artifact"]["path"]),
            src,
            ExtractLimits(skip_symlinks=True),  # helm package would follow them out of the chart
        )
        repositories = await self._dependency_repositories(step.source["metadata"]["namespace"], src, spec["chart"])
        out = tmp / "out"
        out.mkdir()
        build = await package_chart_dir(
            src,
            spec["chart"],
            out,
            helm=self.helm,
            version_metadata=version_metadata(obj, step.source["kind"], step.source_revision),
            values_files=list(spec.get("valuesFiles") or []),
            ignore_missing_values_files=bool(spec.get("ignoreMissingValuesFiles")),
            dependency_repositories=repositories,
            tmp_dir=tmp,
        )
        if reusable(obj, build.name, build.version, step.artifact_stored):
            return BuiltChart(build.name, build.version, None, packaged=True, values_files=build.values_files)
        return BuiltChart.of(build)

    async def _dependency_repositories(self, ns: str, src: Path, chart_path: str) -> list[DependencyRepository]:
        """A repository for each http(s) dependency URL; a HelmRepository with that URL lends its credentials."""
        urls = await asyncio.to_thread(dependency_urls, src, chart_path)
        if not urls:
            return []
        return [
            DependencyRepository(url, await repository_auth(self.kube, ns, spec))
            if spec is not None
            else DependencyRepository(url)
            for url, spec in credential_sources(ns, urls, self.sources[HELM_REPOSITORY].list())
        ]

    # --- storing ---------------------------------------------------------------------------------------

    async def _store(self, obj: KubeObject, path: Path) -> tuple[StoredArtifact, str]:
        """Store the chart archive under its own name, point latest at it, drop old ones."""
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        try:
            artifact = await self.storage.copy_file(KIND, ns, name, path.name, path)
            link = await self.storage.set_latest(artifact.path)
            await self.storage.gc(KIND, ns, name, current=path.name)
        except (OSError, StorageError) as e:
            storage_failed("chart", e).fail(obj, cause=e, now=self.clock())
        return artifact, link
