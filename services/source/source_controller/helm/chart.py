"""HelmChart, last step: pull a chart archive from a HelmRepository, or package a chart directory with the helm CLI."""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import yaml

from gitops_mesh import tenant_yaml
from gitops_mesh.artifacts.digests import file_digest
from gitops_mesh.artifacts.errors import ArtifactError, CorruptArchive, UnsafeArchive, UnsafePath
from gitops_mesh.artifacts.extract import safe_extract
from gitops_mesh.artifacts.untar import ArchiveEntry, ExtractLimits, read_members
from gitops_mesh.errors import TransientError
from gitops_mesh.helmcli import DEFAULT_HELM_TIMEOUT, run_helm
from source_controller.helm.errors import (
    ChartDigestMismatch,
    ChartPackageError,
    ChartPullError,
    CorruptChart,
    DependencyBuildError,
    InvalidChartReference,
    MetadataPatchError,
    RepositoryFetchFailed,
    ValuesFilesError,
)
from source_controller.helm.index import ChartVersion
from source_controller.helm.transport import (
    DEFAULT_TIMEOUT,
    ClientCert,
    Credentials,
    RepositoryAuth,
    chart_url,
    display_url,
    download,
    sends_credentials,
    ssl_context,
)
from source_controller.helm.values import Values, dump_values, merge_all, parse_values

#: Flux's --helm-chart-max-size and --helm-chart-file-max-size defaults.
DEFAULT_MAX_CHART_SIZE: Final = 10 << 20
DEFAULT_MAX_CHART_FILE_SIZE: Final = 5 << 20
#: What a chart archive may hold: the same limits as any archive we unpack, plus Flux's per-file cap.
#: Symlinks are refused, not skipped: Helm's loader does not drop them but reads each as an empty file,
#: and ``helm package`` never writes one, so a chart holding a link was not made by Helm.
CHART_LIMITS: Final = ExtractLimits(max_file_bytes=DEFAULT_MAX_CHART_FILE_SIZE)
#: How deep file:// dependencies may chain.
MAX_LOCAL_DEPENDENCY_DEPTH: Final = 16

_LOOSE_VERSION = re.compile(
    r"^v?(?P<major>[0-9]+)(?:\.(?P<minor>[0-9]+))?(?:\.(?P<patch>[0-9]+))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_METADATA = re.compile(r"^[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*$")
_SHA256_HEX = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")
_CHART_TYPES = frozenset({"", "application", "library"})
_CHART_FILE = "Chart.yaml"
_VALUES_FILE = "values.yaml"
_REQUIREMENTS_FILE = "requirements.yaml"

try:
    _TextLoader: type[Any] = yaml.CBaseLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _TextLoader = yaml.BaseLoader


@dataclass(frozen=True, slots=True)
class Dependency:
    """One declared dependency of a chart."""

    name: str
    version: str = ""
    repository: str = ""
    alias: str = ""


@dataclass(frozen=True, slots=True)
class ChartMetadata:
    """What Chart.yaml (and requirements.yaml for v1 charts) says about a chart."""

    name: str
    version: str
    api_version: str = "v1"
    app_version: str = ""
    type: str = ""
    dependencies: tuple[Dependency, ...] = ()


@dataclass(frozen=True, slots=True)
class ChartBuild:
    """A chart archive ready to be stored: ``Storage.copy_file(..., build.artifact_filename, build.path)``."""

    name: str
    version: str
    path: Path
    digest: str
    size: int
    #: False when the archive is byte for byte the repository's
    packaged: bool
    #: valuesFiles that were found and merged, in order
    values_files: tuple[str, ...] = ()
    #: dependencies helm had to fetch or package
    resolved_dependencies: int = 0
    metadata: ChartMetadata | None = field(default=None, compare=False)

    @property
    def revision(self) -> str:
        return self.version

    @property
    def artifact_filename(self) -> str:
        return artifact_filename(self.name, self.version)


@dataclass(frozen=True)
class DependencyRepository:
    """A HelmRepository that chart dependencies may name by URL, with the credentials to reach it."""

    url: str
    auth: RepositoryAuth = field(default_factory=RepositoryAuth)


def artifact_filename(name: str, version: str) -> str:
    """Flux's chart artifact file name."""
    return f"{name}-{version}.tgz"


# --- versions -------------------------------------------------------------------------------------------


def revision_metadata(
    *, reconcile_strategy: str, source_kind: str, source_revision: str, generation: int, has_values_files: bool
) -> str:
    """The build metadata Flux puts on a chart's version (empty when none): see the module docstring."""
    meta = ""
    if reconcile_strategy == "Revision" and source_kind in ("GitRepository", "Bucket"):
        rev = source_revision
        if source_kind == "GitRepository":
            rev = _git_hash(rev)
        elif rev.startswith("sha256:"):
            rev = rev.removeprefix("sha256:")
        meta = rev[:12]
    if has_values_files:
        meta = f"{meta}.{generation}" if meta else str(generation)
    return meta


def _git_hash(revision: str) -> str:
    """The commit hash of ``main@sha1:<hex>``, ``sha1:<hex>`` or the legacy ``main/<hex>``."""
    rev = revision.rpartition("@")[2]
    if ":" in rev:
        return rev.partition(":")[2]
    return rev.rpartition("/")[2]


def with_build_metadata(version: str, metadata: str) -> str:
    """``version`` with its build metadata replaced by ``metadata``, rendered as Masterminds does."""
    if not metadata:
        return version
    m = _LOOSE_VERSION.match(version)
    if m is None:
        raise MetadataPatchError(f"failed to parse version {version!r} from chart metadata as SemVer")
    if _METADATA.match(metadata) is None:
        raise MetadataPatchError(f"failed to set SemVer metadata {metadata!r} on chart version {version}")
    core = f"{int(m['major'])}.{int(m['minor'] or 0)}.{int(m['patch'] or 0)}"
    pre = f"-{m['pre']}" if m["pre"] else ""
    return f"{core}{pre}+{metadata}"


# --- chart metadata and archives ------------------------------------------------------------------------


def parse_chart_yaml(data: bytes, *, requirements: bytes | None = None, source: str = _CHART_FILE) -> ChartMetadata:
    """Chart.yaml's fields, checked as Helm's ``Metadata.Validate`` does; scalars are read as written."""
    doc = _load_text_yaml(data, source)
    if not isinstance(doc, dict):
        raise _corrupt(f"{source} must be a map")
    name = _field(doc, "name", source)
    version = _field(doc, "version", source)
    api_version = _field(doc, "apiVersion", source) or "v1"
    chart_type = _field(doc, "type", source)
    if not name:
        raise _corrupt(f"{source}: name is required")
    if name != posixpath.basename(name) or "\\" in name or name in (".", ".."):
        raise _corrupt(f"{source}: chart name {name!r} is invalid")
    if not version:
        raise _corrupt(f"{source}: version is required")
    if _LOOSE_VERSION.match(version) is None:
        raise _corrupt(f"{source}: version {version!r} is not a semantic version")
    if api_version not in ("v1", "v2"):
        raise _corrupt(f"{source}: apiVersion {api_version!r} is not v1 or v2")
    if chart_type not in _CHART_TYPES:
        raise _corrupt(f"{source}: type {chart_type!r} is not application or library")
    deps_doc: Any = doc.get("dependencies")
    if api_version == "v1" and requirements is not None:
        req = _load_text_yaml(requirements, _REQUIREMENTS_FILE)
        deps_doc = req.get("dependencies") if isinstance(req, dict) else None
    return ChartMetadata(
        name=name,
        version=version,
        api_version=api_version,
        app_version=_field(doc, "appVersion", source),
        type=chart_type,
        dependencies=_dependencies(deps_doc, source),
    )


def _corrupt(message: str) -> CorruptChart:
    return CorruptChart(message)


def _load_text_yaml(data: bytes, source: str) -> Any:
    try:
        # BaseLoader keeps every scalar a string, as Go decodes them into Chart.yaml's string fields.
        return tenant_yaml.load(data, what=source, loader=_TextLoader)
    except tenant_yaml.UnsafeYaml as e:
        raise _corrupt(f"{source} is refused: {e.problem}") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise _corrupt(f"{source} is not valid YAML{where}: {e.problem}") from e
    except yaml.YAMLError as e:
        raise _corrupt(f"{source} is not valid YAML: {e}") from e


def _field(doc: dict[str, Any], key: str, source: str) -> str:
    value = doc.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _corrupt(f"{source}: {key} must be a string")
    return value


def _dependencies(doc: Any, source: str) -> tuple[Dependency, ...]:
    if doc is None or doc == "":
        return ()
    if not isinstance(doc, list):
        raise _corrupt(f"{source}: dependencies must be a list")
    deps = []
    for item in doc:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise _corrupt(f"{source}: every dependency needs a name")
        deps.append(
            Dependency(
                name=item["name"],
                version=_text(item.get("version")),
                repository=_text(item.get("repository")),
                alias=_text(item.get("alias")),
            )
        )
    return tuple(deps)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


class _ChartLayout:
    """Helm's rules for a chart archive on top of the reader's: one top directory, every file inside it."""

    def __init__(self) -> None:
        self.top: str | None = None

    def check(self, entry: ArchiveEntry) -> None:
        top = entry.parts[0]
        if self.top is None:
            self.top = top
        elif top != self.top:
            raise _corrupt(f"chart archive has more than one top directory ({self.top!r}, {top!r})")
        if not entry.is_dir and len(entry.parts) == 1:
            raise _corrupt(f"chart archive file {entry.name!r} is not inside the chart directory")

    def chart_top(self) -> str:
        if self.top is None:
            raise _corrupt("chart archive is empty")
        return self.top


def _archive_error(e: ArtifactError) -> TransientError:
    """The reader's refusal as the chart error Flux reports (ChartPullError), or a disk error (ChartPackageError)."""
    if isinstance(e, CorruptArchive):
        return _corrupt(f"not a gzip-compressed tar archive ({e})")
    if isinstance(e, UnsafePath):
        return _corrupt(f"chart archive entry {e.entry!r} would escape the chart directory ({e})")
    if isinstance(e, UnsafeArchive):
        return _corrupt(f"unsafe chart archive: {e}")
    return ChartPackageError(f"cannot unpack chart archive: {e}")


def _chart_metadata(top: str, chart_yaml: bytes | None, requirements: bytes | None) -> ChartMetadata:
    if chart_yaml is None:
        raise _corrupt(f"chart archive has no {top}/{_CHART_FILE}")
    return parse_chart_yaml(chart_yaml, requirements=requirements, source=f"{top}/{_CHART_FILE}")


def read_chart_archive(path: Path, *, limits: ExtractLimits = CHART_LIMITS) -> ChartMetadata:
    """Validate a chart archive and return its metadata (blocking: call it from a thread).

    Every entry is checked by the one archive reader; only ``<chart>/Chart.yaml`` and
    ``<chart>/requirements.yaml`` are kept, in memory (each at most ``limits.max_file_bytes``).
    """
    layout = _ChartLayout()

    def wanted(entry: ArchiveEntry) -> bool:
        return len(entry.parts) == 2 and entry.parts[1] in (_CHART_FILE, _REQUIREMENTS_FILE)

    try:
        found = read_members(path, wanted, limits, check=layout.check)
    except ArtifactError as e:
        raise _archive_error(e) from e
    top = layout.chart_top()
    return _chart_metadata(top, found.get(f"{top}/{_CHART_FILE}"), found.get(f"{top}/{_REQUIREMENTS_FILE}"))


def extract_chart_archive(
    path: Path, dest: Path, *, limits: ExtractLimits = CHART_LIMITS
) -> tuple[ChartMetadata, Path]:
    """Unpack a chart archive into the empty directory ``dest``; returns its metadata and the chart directory."""
    layout = _ChartLayout()
    try:
        safe_extract(path, dest, limits, check=layout.check)
    except ArtifactError as e:
        raise _archive_error(e) from e
    top = layout.chart_top()
    chart_dir = dest / top

    def member(name: str) -> bytes | None:
        # Regular files the reader wrote (no links exist), each within limits.max_file_bytes.
        file = chart_dir / name
        return file.read_bytes() if file.is_file() else None

    return _chart_metadata(top, member(_CHART_FILE), member(_REQUIREMENTS_FILE)), chart_dir


# --- pulling from a repository --------------------------------------------------------------------------


async def download_chart(
    session: aiohttp.ClientSession,
    repo_url: str,
    chart: ChartVersion,
    dest_dir: Path,
    *,
    auth: Credentials | None = None,
    ca: bytes | None = None,
    client_cert: ClientCert | None = None,
    pass_credentials: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    max_size: int = DEFAULT_MAX_CHART_SIZE,
    limits: ExtractLimits = CHART_LIMITS,
) -> ChartBuild:
    """Download ``chart``'s archive into ``dest_dir`` as ``<chart>-<version>.tgz``, verified and validated."""
    label = f"{chart.name}-{chart.version}"
    if not chart.urls:
        raise ChartPullError(f"chart {label} has no downloadable URLs in the index")
    try:
        url = chart_url(repo_url, chart.urls[0])
    except RepositoryFetchFailed as e:
        raise ChartPullError(str(e)) from e
    shown = display_url(url)
    creds = auth if sends_credentials(repo_url, url, pass_credentials=pass_credentials) else None
    final = dest_dir / artifact_filename(chart.name, chart.version)
    fd, name = tempfile.mkstemp(prefix=f".{label}-", suffix=".tgz", dir=dest_dir)
    os.close(fd)
    tmp = Path(name)
    try:
        try:
            got = await download(
                session,
                url,
                tmp,
                auth=creds,
                ssl=ssl_context(ca, client_cert),
                timeout=timeout,
                max_size=max_size,
                what=f"chart {label}",
                too_large=lambda seen: ChartPullError(
                    f"chart {label} from {shown} is larger than the limit of {max_size} bytes (at least {seen} bytes)"
                ),
            )
        except RepositoryFetchFailed as e:
            raise ChartPullError(str(e), retry_after=e.retry_after) from e
        _verify_digest(chart, label, shown, got.sha256)
        try:
            meta = await asyncio.to_thread(read_chart_archive, tmp, limits=limits)
        except CorruptChart as e:
            raise CorruptChart(f"chart {label} from {shown}: {e}") from e
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return ChartBuild(
        name=chart.name,
        version=chart.version,
        path=final,
        digest=f"sha256:{got.sha256}",
        size=got.size,
        packaged=False,
        metadata=meta,
    )


async def package_chart_archive(
    archive: Path,
    dest_dir: Path,
    *,
    helm: Path | str,
    name: str,
    version: str,
    values_files: Sequence[str] = (),
    ignore_missing_values_files: bool = False,
    timeout: float = DEFAULT_HELM_TIMEOUT,
    tmp_dir: Path | None = None,
    limits: ExtractLimits = CHART_LIMITS,
) -> ChartBuild:
    """Repackage a pulled chart as ``<name>-<version>.tgz`` with its values replaced by ``values_files`` merged.

    The paths are files inside the chart; ``values.yaml`` is the chart's own values.
    """
    work = Path(tempfile.mkdtemp(prefix="helm-repack-", dir=tmp_dir))
    try:
        meta, chart_dir = await asyncio.to_thread(extract_chart_archive, archive, work / "chart", limits=limits)
        used: tuple[str, ...] = ()
        if values_files:
            merged, used = await asyncio.to_thread(
                _merge_values_files, chart_dir, values_files, ignore_missing_values_files, True
            )
            (chart_dir / _VALUES_FILE).write_text(dump_values(merged))
        return await _package(
            helm, chart_dir, dest_dir, name=name, version=version, meta=meta, work=work, timeout=timeout, used=used
        )
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)


# --- packaging a source directory -----------------------------------------------------------------------


async def package_chart_dir(
    source_root: Path,
    chart_path: str,
    dest_dir: Path,
    *,
    helm: Path | str,
    version_metadata: str = "",
    values_files: Sequence[str] = (),
    ignore_missing_values_files: bool = False,
    dependency_repositories: Sequence[DependencyRepository] = (),
    timeout: float = DEFAULT_HELM_TIMEOUT,
    tmp_dir: Path | None = None,
) -> ChartBuild:
    """Package ``source_root/chart_path`` (a GitRepository / Bucket artifact's tree) into ``dest_dir``.

    ``values_files`` are relative to ``source_root``; ``version_metadata`` comes from
    :func:`revision_metadata`. Dependencies missing from ``charts/`` are built with the real helm.
    """
    root, chart_dir, is_archive = await asyncio.to_thread(_locate, source_root, chart_path)
    if is_archive:
        return await _package_archive_from_source(
            root,
            chart_dir,
            dest_dir,
            helm=helm,
            version_metadata=version_metadata,
            values_files=values_files,
            ignore_missing=ignore_missing_values_files,
            timeout=timeout,
            tmp_dir=tmp_dir,
        )
    meta = await asyncio.to_thread(_read_chart_dir, chart_dir, chart_path)
    version = with_build_metadata(meta.version, version_metadata)
    work = Path(tempfile.mkdtemp(prefix="helm-build-", dir=tmp_dir))
    try:
        staged = await asyncio.to_thread(_stage, root, chart_dir, work / "src")
        used: tuple[str, ...] = ()
        if values_files:
            merged, used = await asyncio.to_thread(
                _merge_values_files, root, values_files, ignore_missing_values_files, False
            )
            (staged / _VALUES_FILE).write_text(dump_values(merged))
        resolved = 0
        missing = await asyncio.to_thread(_missing_dependencies, staged, meta)
        if missing:
            resolved = await _build_dependencies(
                helm, staged, home=_home(work), repositories=dependency_repositories, timeout=timeout, missing=missing
            )
        return await _package(
            helm,
            staged,
            dest_dir,
            name=meta.name,
            version=version,
            meta=meta,
            work=work,
            timeout=timeout,
            used=used,
            resolved=resolved,
        )
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)


async def _package_archive_from_source(
    root: Path,
    archive: Path,
    dest_dir: Path,
    *,
    helm: Path | str,
    version_metadata: str,
    values_files: Sequence[str],
    ignore_missing: bool,
    timeout: float,
    tmp_dir: Path | None,
) -> ChartBuild:
    """spec.chart naming a packaged ``.tgz`` in the source: copied as is unless values or metadata change it."""
    meta = await asyncio.to_thread(read_chart_archive, archive)
    version = with_build_metadata(meta.version, version_metadata)
    if not values_files and version == meta.version:
        final = dest_dir / artifact_filename(meta.name, version)
        await asyncio.to_thread(shutil.copyfile, archive, final)
        digest = await asyncio.to_thread(file_digest, final)
        return ChartBuild(meta.name, version, final, digest, final.stat().st_size, packaged=False, metadata=meta)
    work = Path(tempfile.mkdtemp(prefix="helm-repack-", dir=tmp_dir))
    try:
        _, chart_dir = await asyncio.to_thread(extract_chart_archive, archive, work / "chart")
        used: tuple[str, ...] = ()
        if values_files:
            merged, used = await asyncio.to_thread(_merge_values_files, root, values_files, ignore_missing, False)
            (chart_dir / _VALUES_FILE).write_text(dump_values(merged))
        return await _package(
            helm, chart_dir, dest_dir, name=meta.name, version=version, meta=meta, work=work, timeout=timeout, used=used
        )
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)


def _verify_digest(chart: ChartVersion, label: str, shown: str, got: str) -> None:
    """Compare with the index's digest when it has a usable one (hex sha256, optionally ``sha256:``-prefixed)."""
    expected = _SHA256_HEX.match(chart.digest.strip())
    if expected is not None and expected[1].lower() != got:
        raise ChartDigestMismatch(chart=label, url=shown, expected=expected[1].lower(), got=got)


def _locate(source_root: Path, chart_path: str) -> tuple[Path, Path, bool]:
    """The resolved source root, the chart's path in it, and whether that is a packaged archive."""
    root = source_root.resolve()
    chart_dir = _inside(root, chart_path, what="chart path")
    if chart_dir.is_file():
        return root, chart_dir, True
    if not (chart_dir / _CHART_FILE).is_file():
        raise InvalidChartReference(f"no {_CHART_FILE} in {chart_path!r} of the source")
    return root, chart_dir, False


def _inside(root: Path, rel: str, *, what: str) -> Path:
    """``root/rel`` resolved, refused when it leaves ``root`` (by ``..`` or a symlink)."""
    if not rel or os.path.isabs(rel):
        raise InvalidChartReference(f"{what} {rel!r} must be a relative path in the source")
    target = (root / rel).resolve()
    if not target.is_relative_to(root):
        raise InvalidChartReference(f"{what} {rel!r} points outside the source")
    if not target.exists():
        raise InvalidChartReference(f"{what} {rel!r} does not exist in the source")
    return target


def _read_chart_dir(chart_dir: Path, shown: str) -> ChartMetadata:
    chart_yaml = (chart_dir / _CHART_FILE).read_bytes()
    req_file = chart_dir / _REQUIREMENTS_FILE
    requirements = req_file.read_bytes() if req_file.is_file() else None
    try:
        return parse_chart_yaml(chart_yaml, requirements=requirements, source=f"{shown}/{_CHART_FILE}")
    except CorruptChart as e:
        # A bad Chart.yaml in the source is the spec's problem, not a download's.
        raise InvalidChartReference(str(e)) from e


def _copy_tree(src: Path, dst: Path) -> None:
    def ignore(directory: str, names: list[str]) -> set[str]:
        return {n for n in names if os.path.islink(os.path.join(directory, n))}

    shutil.copytree(src, dst, ignore=ignore, dirs_exist_ok=True)


def _stage(root: Path, chart_dir: Path, scratch: Path) -> Path:
    """Copy the chart and its file:// dependencies to ``scratch`` at the same relative places."""
    seen: set[Path] = set()
    queue: list[tuple[Path, int]] = [(chart_dir, 0)]
    while queue:
        directory, depth = queue.pop()
        if directory in seen:
            continue
        seen.add(directory)
        _copy_tree(directory, scratch / directory.relative_to(root))
        if depth >= MAX_LOCAL_DEPENDENCY_DEPTH or not (directory / _CHART_FILE).is_file():
            continue
        meta = _read_chart_dir(directory, str(directory.relative_to(root)))
        for dep in meta.dependencies:
            if not dep.repository.startswith("file://"):
                continue
            ref = dep.repository.removeprefix("file://")
            target = (directory / ref).resolve()
            if not target.is_relative_to(root):
                raise InvalidChartReference(
                    f"dependency {dep.name} of {meta.name}: {dep.repository} points outside the source"
                )
            if target.is_dir():
                queue.append((target, depth + 1))
    return scratch / chart_dir.relative_to(root)


def _missing_dependencies(chart_dir: Path, meta: ChartMetadata) -> list[Dependency]:
    """Declared dependencies with no chart of that name in ``charts/`` (a directory or an archive)."""
    present: set[str] = set()
    charts = chart_dir / "charts"
    if charts.is_dir():
        for entry in charts.iterdir():
            with contextlib.suppress(CorruptChart, InvalidChartReference, OSError):
                if entry.is_dir() and (entry / _CHART_FILE).is_file():
                    present.add(_read_chart_dir(entry, entry.name).name)
                elif entry.is_file() and entry.name.endswith(".tgz"):
                    present.add(read_chart_archive(entry).name)
    return [dep for dep in meta.dependencies if dep.name not in present]


def _merge_values_files(
    base: Path, paths: Sequence[str], ignore_missing: bool, in_chart: bool
) -> tuple[Values, tuple[str, ...]]:
    documents: list[Values] = []
    used: list[str] = []
    for rel in paths:
        clean = posixpath.normpath(rel.replace("\\", "/"))
        if clean.startswith("../") or clean == ".." or os.path.isabs(clean):
            raise ValuesFilesError(f"values file '{rel}' points outside the {'chart' if in_chart else 'source'}")
        target = (base / clean).resolve()
        if not target.is_relative_to(base.resolve()):
            raise ValuesFilesError(f"values file '{rel}' points outside the {'chart' if in_chart else 'source'}")
        if not target.is_file():
            if ignore_missing and not target.exists():
                continue
            raise ValuesFilesError(f"no values file found at path '{clean}' (reference '{rel}')")
        try:
            data = target.read_bytes()
        except OSError as e:
            raise ValuesFilesError(f"could not read values from file '{rel}': {e.strerror or e}") from e
        documents.append(parse_values(data, source=rel))
        used.append(rel)
    return merge_all(documents), tuple(used)


def _write_repositories(home: Path, repositories: Sequence[DependencyRepository]) -> None:
    """helm's repositories.yaml for the dependency repositories; credentials live in files, never in argv."""
    entries = []
    tls = home / "tls"
    for i, repo in enumerate(repositories):
        entry: dict[str, Any] = {
            "name": f"repo-{i}",
            "url": repo.url,
            "pass_credentials_all": repo.auth.pass_credentials,
        }
        if repo.auth.credentials is not None:
            entry["username"] = repo.auth.credentials.username
            entry["password"] = repo.auth.credentials.password
        for key, data in (
            ("caFile", repo.auth.ca),
            ("certFile", repo.auth.client_cert.cert if repo.auth.client_cert else None),
            ("keyFile", repo.auth.client_cert.key if repo.auth.client_cert else None),
        ):
            if data:
                tls.mkdir(mode=0o700, exist_ok=True)
                path = tls / f"repo-{i}-{key}"
                path.write_bytes(data)
                path.chmod(0o600)
                entry[key] = str(path)
        entries.append(entry)
    config = home / "config" / "repositories.yaml"
    config.write_text(yaml.safe_dump({"apiVersion": "", "generated": "0001-01-01T00:00:00Z", "repositories": entries}))
    config.chmod(0o600)


async def _build_dependencies(
    helm: Path | str,
    chart_dir: Path,
    *,
    home: Path,
    repositories: Sequence[DependencyRepository],
    timeout: float,
    missing: Sequence[Dependency],
) -> int:
    await asyncio.to_thread(_write_repositories, home, repositories)
    result = await run_helm(
        helm,
        ["dependency", "build", str(chart_dir)],
        home=home,
        timeout=timeout,
        on_stopped=lambda message: DependencyBuildError(message),
    )
    if result.returncode != 0:
        names = ", ".join(d.name for d in missing)
        raise DependencyBuildError(f"helm dependency build failed for {names}: {result.detail()}")
    return len(missing)


async def _package(
    helm: Path | str,
    chart_dir: Path,
    dest_dir: Path,
    *,
    name: str,
    version: str,
    meta: ChartMetadata,
    work: Path,
    timeout: float,
    used: tuple[str, ...],
    resolved: int = 0,
) -> ChartBuild:
    out = work / "out"
    out.mkdir(exist_ok=True)
    home = _home(work)
    args = ["package", str(chart_dir), "--destination", str(out)]
    if version != meta.version:
        args += ["--version", version]

    def failed(message: str) -> TransientError:
        return ChartPackageError(message)

    result = await run_helm(helm, args, home=home, timeout=timeout, on_stopped=failed)
    if result.returncode != 0:
        raise ChartPackageError(f"helm package {meta.name} failed: {result.detail()}")
    produced = sorted(out.glob("*.tgz"))
    if len(produced) != 1:  # pragma: no cover - helm writes exactly one archive on success
        raise ChartPackageError(f"helm package {meta.name} wrote {len(produced)} archives")
    final = dest_dir / artifact_filename(name, version)
    await asyncio.to_thread(shutil.move, produced[0], final)
    digest = await asyncio.to_thread(file_digest, final)
    return ChartBuild(
        name,
        version,
        final,
        digest,
        final.stat().st_size,
        packaged=True,
        values_files=used,
        resolved_dependencies=resolved,
        metadata=meta,
    )


def _home(work: Path) -> Path:
    """helm's private home inside a build's scratch directory, made on first use."""
    home = work / "helm-home"
    if not home.is_dir():
        for sub in ("cache/repository", "config", "data", "plugins"):
            (home / sub).mkdir(parents=True, exist_ok=True)
    return home
