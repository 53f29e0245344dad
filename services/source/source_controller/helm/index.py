"""HelmRepository, step one: stream ``index.yaml`` to a file under a size cap, then parse it once into ChartVersions."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Final

import aiohttp
import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)

from gitops_mesh import tenant_yaml
from gitops_mesh.semver import Version
from source_controller.helm.errors import InvalidIndex
from source_controller.helm.transport import (
    DEFAULT_TIMEOUT,
    ClientCert,
    Credentials,
    display_url,
    download,
    index_url,
    ssl_context,
)

#: Flux's --helm-index-max-size default.
DEFAULT_MAX_INDEX_SIZE: Final = 50 << 20
#: Deeper nesting than this in an index is hostile, not a chart repository.
MAX_DEPTH: Final = 64
#: How many dropped entries an IndexFile describes (the count is always exact).
MAX_SKIPPED_REPORTED: Final = 20
#: A real index takes about 20 bytes a node (a bitnami entry: ~60 nodes in ~1.2 KB, so its ~10 MB index is
#: some 500,000 nodes); even dense YAML takes 4.
BYTES_PER_NODE_ALLOWED: Final = 8


def index_limits(max_size: int = DEFAULT_MAX_INDEX_SIZE) -> tenant_yaml.YamlLimits:
    """Alias caps for an index of at most ``max_size`` bytes (--helm-index-max-size).

    Aliases may bring the nodes read to one per 8 bytes of the cap (6.5M at 50 MiB, 2.5 times a real
    index of that size) and multiply what is written at most 100 times (yaml.v2, Helm's decoder, has
    yaml.v3's rule). Without the cap, ``a: *L`` lines naming one aliased list of versions would make a
    ChartVersion per name per version: gigabytes from a small file.
    """
    return tenant_yaml.YamlLimits(
        max_bytes=max_size,
        max_nodes=max(max_size // BYTES_PER_NODE_ALLOWED, tenant_yaml.DEFAULT_LIMITS.max_nodes),
        max_depth=MAX_DEPTH,
    )


try:
    _Loader: type[Any] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

# Masterminds' loose version (NewVersion): what Helm accepts as a chart's version.
_LOOSE_VERSION = re.compile(
    r"^v?(?P<major>[0-9]+)(?:\.(?P<minor>[0-9]+))?(?:\.(?P<patch>[0-9]+))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_CHART_TYPES = frozenset({"", "application", "library"})
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
# YAML 1.1 booleans, as go-yaml v2 (under sigs.k8s.io/yaml) reads them.
_TRUE = frozenset({"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"})
_FALSE = frozenset({"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"})
_NO_KEY: Final = object()


@dataclass(frozen=True, slots=True)
class ChartVersion:
    """One entry of an index: what resolving, downloading and reporting a chart need."""

    name: str
    version: str
    urls: tuple[str, ...] = ()
    #: hex sha256 of the archive, as ``helm repo index`` writes it; empty when the index has none
    digest: str = ""
    #: RFC 3339 as written in the index
    created: str = ""
    app_version: str = ""
    api_version: str = "v1"
    description: str = ""
    type: str = ""
    kube_version: str = ""
    deprecated: bool = False


@dataclass(frozen=True, slots=True)
class IndexFile:
    """A parsed repository index; ``entries`` maps chart name to its versions, newest first."""

    api_version: str
    entries: Mapping[str, tuple[ChartVersion, ...]]
    generated: str = ""
    #: ``sha256:<hex>`` of the index bytes: the HelmRepository artifact's revision and digest
    digest: str = ""
    size: int = 0
    #: entries dropped by Helm's validation
    skipped_count: int = 0
    #: the first few of them, as ``"<chart> <version>: <why>"``
    skipped: tuple[str, ...] = ()
    #: the fetched bytes, for :func:`fetch_index` results; the caller stores and then removes the file
    path: Path | None = field(default=None, compare=False)

    @property
    def revision(self) -> str:
        return self.digest

    @property
    def artifact_filename(self) -> str:
        """Flux's file name for the stored index: ``index-<hex>.yaml``."""
        return f"index-{self.digest.partition(':')[2]}.yaml"

    def __len__(self) -> int:
        return sum(len(v) for v in self.entries.values())


async def fetch_index(
    session: aiohttp.ClientSession,
    url: str,
    *,
    auth: Credentials | None = None,
    ca: bytes | None = None,
    client_cert: ClientCert | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_size: int = DEFAULT_MAX_INDEX_SIZE,
    tmp_dir: Path | None = None,
) -> IndexFile:
    """GET ``<url>/index.yaml`` into a temp file (in ``tmp_dir``), hash it on the way, and parse it once.

    The result's ``path`` is that file: store it (``Storage.copy_file(..., index.artifact_filename, path)``)
    and remove it. Credentials go to the repository URL only; a redirect to another origin drops them.
    """
    target = index_url(url)
    shown = display_url(target)
    fd, name = tempfile.mkstemp(prefix=".index-", suffix=".yaml", dir=tmp_dir)
    os.close(fd)
    path = Path(name)
    try:
        got = await download(
            session,
            target,
            path,
            auth=auth,
            ssl=ssl_context(ca, client_cert),
            timeout=timeout,
            max_size=max_size,
            what="index",
            too_large=lambda seen: InvalidIndex(
                f"index {shown} is larger than the limit of {max_size} bytes (at least {seen} bytes)"
            ),
        )
        index = await asyncio.to_thread(_parse_path, path, f"index {shown}", index_limits(max_size))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    return replace(index, digest=f"sha256:{got.sha256}", size=got.size, path=path)


def parse_index_file(path: Path) -> IndexFile:
    """Parse a stored index (blocking: call it in a thread); ``digest`` and ``size`` are the file's."""
    hasher = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            hasher.update(block)
            size += len(block)
    index = _parse_path(path, str(path), index_limits())
    return replace(index, digest=f"sha256:{hasher.hexdigest()}", size=size)


def parse_index_bytes(data: bytes, *, source: str = "index.yaml") -> IndexFile:
    """Parse an index held in memory (tests, small indexes)."""
    index = _IndexParser(data, source, index_limits()).parse()
    return replace(index, digest=f"sha256:{hashlib.sha256(data).hexdigest()}", size=len(data))


def _parse_path(path: Path, source: str, limits: tenant_yaml.YamlLimits) -> IndexFile:
    with path.open("rb") as f:
        return _IndexParser(f, source, limits).parse()


def sort_key(version: str) -> Version:
    """A chart version's place in Helm's order (Masterminds' loose parse: ``1.2`` is ``1.2.0``)."""
    m = _LOOSE_VERSION.match(version)
    if m is None:
        raise ValueError(f"{version!r} is not a semantic version")
    pre = tuple(m["pre"].split(".")) if m["pre"] else ()
    return Version(int(m["major"]), int(m["minor"] or 0), int(m["patch"] or 0), pre, original=version)


def _where(event: Event) -> str:
    mark = event.start_mark
    return f"line {mark.line + 1}" if mark is not None else "somewhere"


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    return type(value).__name__  # pragma: no cover - the builder makes nothing else


class _IndexParser:
    """Walks libyaml's events for one index document; only ``entries`` items are built, one at a time."""

    def __init__(self, stream: bytes | IO[bytes], source: str, limits: tenant_yaml.YamlLimits) -> None:
        self._source = source
        self._loader = _Loader(stream)
        self._anchors: dict[str, Any] = {}
        # Aliases are shared values here too; what they would expand to is counted as they are met.
        self._aliases = tenant_yaml.AliasBudget(what=source, limits=limits)
        self._written = 0
        #: containers being built: an alias to one is an anchor that contains itself
        self._open: set[int] = set()
        self._skipped: list[str] = []
        self._skipped_count = 0

    def parse(self) -> IndexFile:
        try:
            return self._document()
        except tenant_yaml.UnsafeYaml as e:
            raise InvalidIndex(str(e)) from None
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
            what = " ".join(p for p in (e.context, e.problem) if p)
            raise InvalidIndex(f"{self._source} is not valid YAML: {where}{what}") from e
        except yaml.YAMLError as e:
            raise InvalidIndex(f"{self._source} is not valid YAML: {e}") from e
        finally:
            self._loader.dispose()

    def _error(self, event: Event, message: str) -> InvalidIndex:
        return InvalidIndex(f"{self._source}: {_where(event)}: {message}")

    def _document(self) -> IndexFile:
        get = self._loader.get_event
        if type(get()) is not StreamStartEvent:  # pragma: no cover - libyaml always starts with it
            raise InvalidIndex(f"{self._source}: not a YAML stream")
        first = get()
        if type(first) is StreamEndEvent:
            raise InvalidIndex(f"{self._source}: empty index.yaml file")
        if type(first) is not DocumentStartEvent:  # pragma: no cover
            raise self._error(first, "expected a YAML document")
        top = get()
        api_version = ""
        generated = ""
        entries: dict[str, tuple[ChartVersion, ...]] = {}
        if type(top) is ScalarEvent and top.implicit[0] and top.value in _NULLS:
            raise InvalidIndex(f"{self._source}: empty index.yaml file")
        if type(top) is not MappingStartEvent:
            raise self._error(top, f"an index must be a map (apiVersion, entries, ...), found {_kind(self._node(top))}")
        while True:
            key_event = get()
            if type(key_event) is MappingEndEvent:
                break
            key = self._node(key_event)
            value_event = get()
            if key == "entries":
                entries = self._entries(value_event)
            elif key == "apiVersion":
                api_version = self._string(self._node(value_event), value_event, "apiVersion")
            elif key == "generated":
                generated = self._string(self._node(value_event), value_event, "generated")
            else:
                self._node(value_event)
        end = get()
        if type(end) is not DocumentEndEvent:  # pragma: no cover - libyaml closes what it opened
            raise self._error(end, "expected the end of the document")
        extra = get()
        if type(extra) is not StreamEndEvent:
            raise self._error(extra, "index.yaml must hold a single YAML document, found another")
        if not api_version:
            raise InvalidIndex(f"{self._source}: no API version specified (apiVersion is missing)")
        return IndexFile(
            api_version=api_version,
            entries=entries,
            generated=generated,
            skipped_count=self._skipped_count,
            skipped=tuple(self._skipped),
        )

    def _entries(self, start: Event) -> dict[str, tuple[ChartVersion, ...]]:
        get = self._loader.get_event
        entries: dict[str, tuple[ChartVersion, ...]] = {}
        if type(start) is not MappingStartEvent:
            value = self._node(start)
            if value is None:
                return entries
            if not isinstance(value, dict):
                raise self._error(start, f"entries must be a map of chart name to versions, found {_kind(value)}")
            for name, listed in value.items():
                entries[name] = self._versions(name, listed, start)
            return entries
        self._anchor(start, None)
        while True:
            key_event = get()
            if type(key_event) is MappingEndEvent:
                return entries
            name = self._node(key_event)
            if not isinstance(name, str):
                raise self._error(key_event, f"a chart name must be a string, found {_kind(name)}")
            list_event = get()
            if type(list_event) is not SequenceStartEvent:
                entries[name] = self._versions(name, self._node(list_event), list_event)
                continue
            self._anchor(list_event, None)
            memo: dict[str, str] = {name: name}
            versions: list[ChartVersion] = []
            position = 0
            while True:
                item_event = get()
                if type(item_event) is SequenceEndEvent:
                    break
                cv = self._chart_version(name, position, self._node(item_event), item_event, memo)
                position += 1
                if cv is not None:
                    versions.append(cv)
            entries[name] = _sorted(versions)

    def _versions(self, name: str, value: object, event: Event) -> tuple[ChartVersion, ...]:
        """The slow path for an aliased or null version list."""
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self._error(event, f"entries.{name} must be a list of chart versions, found {_kind(value)}")
        memo: dict[str, str] = {name: name}
        found = (self._chart_version(name, i, item, event, memo) for i, item in enumerate(value))
        return _sorted([cv for cv in found if cv is not None])

    def _chart_version(
        self, chart: str, position: int, raw: object, event: Event, memo: dict[str, str]
    ) -> ChartVersion | None:
        where = f"entries.{chart}[{position}]"
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise self._error(event, f"{where} must be a map, found {_kind(raw)}")

        def text(key: str) -> str:
            value = raw.get(key)
            if value is None:
                return ""
            if not isinstance(value, str):
                raise self._error(event, f"{where}.{key} must be a string, found {_kind(value)}")
            # versions of one chart repeat most of their strings; share one copy
            return memo.setdefault(value, value)

        def strings(key: str) -> tuple[str, ...]:
            value = raw.get(key)
            if value is None:
                return ()
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self._error(event, f"{where}.{key} must be a list of strings, found {_kind(value)}")
            return tuple(value)

        def flag(key: str) -> bool:
            value = raw.get(key)
            if value is None or value in _FALSE:
                return False
            if value in _TRUE:
                return True
            raise self._error(event, f"{where}.{key} must be a boolean, found {value!r}")

        for key in ("maintainers", "dependencies"):
            value = raw.get(key)
            if value is not None and not isinstance(value, list):
                raise self._error(event, f"{where}.{key} must be a list, found {_kind(value)}")
        annotations = raw.get("annotations")
        if annotations is not None and not isinstance(annotations, dict):
            raise self._error(event, f"{where}.annotations must be a map, found {_kind(annotations)}")

        cv = ChartVersion(
            name=text("name"),
            version=text("version"),
            urls=strings("urls"),
            digest=text("digest"),
            created=text("created"),
            app_version=text("appVersion"),
            api_version=text("apiVersion") or "v1",
            description=text("description"),
            type=text("type"),
            kube_version=text("kubeVersion"),
            deprecated=flag("deprecated"),
        )
        problem = _invalid(cv)
        if problem is not None:
            self._skipped_count += 1
            if len(self._skipped) < MAX_SKIPPED_REPORTED:
                self._skipped.append(f"{chart} {cv.version or '<no version>'}: {problem}")
            return None
        return cv

    @staticmethod
    def _string(value: object, event: Event, key: str) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise InvalidIndex(f"{_where(event)}: {key} must be a string, found {_kind(value)}")
        return value

    def _anchor(self, event: Event, value: object) -> None:
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._anchors[anchor] = value

    def _scalar(self, event: ScalarEvent) -> str | None:
        value: str = event.value
        self._written += 1
        # implicit[0]: a plain, untagged scalar (libyaml marks plain style '' where PyYAML says None)
        result = None if event.implicit[0] and value in _NULLS else value
        self._anchor(event, result)
        return result

    def _alias(self, event: AliasEvent) -> Any:
        try:
            target = self._anchors[event.anchor or ""]
        except KeyError:
            raise self._error(event, f"found undefined alias {event.anchor!r}") from None
        if id(target) in self._open:
            raise self._error(event, f"anchor {event.anchor!r} contains itself")
        self._written += 1
        self._aliases.alias(target, written=self._written)
        return target

    def _node(self, first: Event) -> Any:
        """Build the node that starts with ``first`` (already consumed): str / None / list / dict."""
        kind = type(first)
        if kind is ScalarEvent:
            return self._scalar(first)  # type: ignore[arg-type]
        if kind is AliasEvent:
            return self._alias(first)  # type: ignore[arg-type]
        root: Any
        if kind is MappingStartEvent:
            root = {}
        elif kind is SequenceStartEvent:
            root = []
        else:  # pragma: no cover - libyaml never puts another event where a node starts
            raise self._error(first, f"unexpected {kind.__name__}")
        self._anchor(first, root)
        self._written += 1
        self._open.add(id(root))
        get = self._loader.get_event
        scalar = self._scalar
        # An explicit stack, not recursion: nesting depth is the document's to choose.
        stack: list[list[Any]] = [[root, _NO_KEY]]
        while stack:
            event = get()
            kind = type(event)
            if kind is MappingEndEvent or kind is SequenceEndEvent:
                frame = stack.pop()
                self._open.discard(id(frame[0]))
                if frame[1] is not _NO_KEY:  # pragma: no cover - libyaml pairs keys with values
                    raise self._error(event, "a key without a value")
                continue
            child: Any = None
            value: Any
            if kind is ScalarEvent:
                value = scalar(event)
            elif kind is AliasEvent:
                value = self._alias(event)
            elif kind is MappingStartEvent:
                value = child = {}
                self._anchor(event, value)
            elif kind is SequenceStartEvent:
                value = child = []
                self._anchor(event, value)
            else:  # pragma: no cover
                raise self._error(event, f"unexpected {kind.__name__}")
            frame = stack[-1]
            container = frame[0]
            if type(container) is list:
                container.append(value)
            elif frame[1] is _NO_KEY:
                if not isinstance(value, str):
                    raise self._error(event, f"map keys must be strings, found {_kind(value)}")
                frame[1] = value
                if child is not None:  # pragma: no cover - isinstance above rejects containers
                    stack.append([child, _NO_KEY])
                continue
            else:
                container[frame[1]] = value
                frame[1] = _NO_KEY
            if child is not None:
                if len(stack) >= MAX_DEPTH:
                    raise self._error(event, f"nesting deeper than {MAX_DEPTH} levels")
                self._written += 1
                self._open.add(id(child))
                stack.append([child, _NO_KEY])
        return root


def _invalid(cv: ChartVersion) -> str | None:
    """Helm's metadata checks an index entry must pass to be kept (``Metadata.Validate``)."""
    if not cv.name:
        return "name is required"
    if cv.name != os.path.basename(cv.name) or "\\" in cv.name:
        return f"name {cv.name!r} is invalid"
    if not cv.version:
        return "version is required"
    if _LOOSE_VERSION.match(cv.version) is None:
        return f"version {cv.version!r} is not a semantic version"
    if cv.type not in _CHART_TYPES:
        return f"type {cv.type!r} is not application or library"
    return None


def _sorted(versions: list[ChartVersion]) -> tuple[ChartVersion, ...]:
    key: Callable[[ChartVersion], Version] = lambda cv: sort_key(cv.version)  # noqa: E731
    return tuple(sorted(versions, key=key, reverse=True))
