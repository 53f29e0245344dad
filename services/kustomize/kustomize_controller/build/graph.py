"""The kustomizations reachable from a build directory, and the checks on everything they load before kustomize runs.

kustomize v5 reads files, directories and URLs from many fields, not only ``resources``: every
``Loader.Load`` of a path GETs it when it is an ``http(s)`` URL (scheme in any case), and every
``loader.New`` clones it when it parses as a git URL (``git::`` in any case, ``ssh://``, ``https://``,
``file://``, ``user@host:…``, the ``github.com/`` shorthand — even when a local directory of that name
exists). Field names are matched as Go's JSON decoder matches them: case-insensitively, Unicode folding
included. So before kustomize runs we walk every kustomization reachable from the build directory and
check each entry of every field in :data:`KUSTOMIZATION_FIELDS`, and of the builtin plugin configurations
that ``transformers``/``generators``/``validators`` list (:data:`PLUGIN_CONFIG_FIELDS`), and refuse:

* a local path that leaves the artifact (absolute, ``..`` past its root, a symlink out of it), whether
  or not anything exists there (so a refusal never tells whether a path exists on the controller's host);
* a ``file://`` URL in any field: kustomize would clone a repository of the controller's host;
* a remote entry (URL, git repository) when remote bases are disabled (Flux's ``--no-remote-bases``);
* a directory listed as plugin configurations holding more than ``resources``: its patches, replacements
  or configurations could compute a configuration's path after this check (:data:`CONFIG_DIRECTORY_FIELDS`).

What a remote base holds cannot be checked here; with remote bases enabled git runs with a protocol
allow-list (:mod:`.kustomize`), and kustomize's root-only load restrictor keeps a clone's files in it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Final

import yaml

from gitops_mesh import tenant_yaml
from kustomize_controller.build import manifests
from kustomize_controller.build.errors import BuildFailed, RemoteBaseRefused, UnsafeReference
from kustomize_controller.build.workdir import find_kustomization, relative


class Load(Enum):
    """How kustomize uses an entry: which of its loaders reads it decides what counts as remote."""

    #: ``Loader.Load``: a local file, or an http(s) URL it GETs.
    FILE = "file"
    #: read as a file first, then as a directory or git repository (``resources``, ``transformers``…).
    RESOURCE = "resource"
    #: ``loader.New`` only: a directory or git repository (``components``).
    BASE = "base"


#: Every field of a kustomization (or Component) that kustomize v5 loads a file, directory or URL from,
#: as ``a.b`` (a key) and ``a[]`` (every item of a list); ``files`` entries may be ``key=path``.
#: Source: sigs.k8s.io/kustomize api/types (Kustomization, GeneratorArgs, Patch, ReplacementField,
#: HelmGlobals, HelmChart, HelmChartArgs). Helm chart inflation is off (no ``--enable-helm``, as in
#: Flux) but its fields are checked all the same.
KUSTOMIZATION_FIELDS: Final[tuple[tuple[str, Load], ...]] = (
    ("resources[]", Load.RESOURCE),
    ("bases[]", Load.RESOURCE),
    ("components[]", Load.BASE),
    ("transformers[]", Load.RESOURCE),
    ("generators[]", Load.RESOURCE),
    ("validators[]", Load.RESOURCE),
    ("crds[]", Load.FILE),
    ("configurations[]", Load.FILE),
    ("openapi.path", Load.FILE),
    ("patchesStrategicMerge[]", Load.FILE),
    ("patches[].path", Load.FILE),
    ("patchesJson6902[].path", Load.FILE),
    ("replacements[].path", Load.FILE),
    *(
        (f"{generator}[].{field}", Load.FILE)
        for generator in ("configMapGenerator", "secretGenerator")
        for field in ("files[]", "envs[]", "env")
    ),
    ("helmGlobals.chartHome", Load.FILE),
    ("helmGlobals.configHome", Load.FILE),
    *(
        (f"helmCharts[].{field}", Load.FILE)
        for field in ("repo", "valuesFile", "additionalValuesFiles[]", "chartHome", "configHome")
    ),
    *(
        (f"helmChartInflationGenerator[].{field}", Load.FILE)
        for field in ("chartRepoUrl", "chartHome", "helmHome", "helmBin", "values")
    ),
)

#: The fields listing plugin configurations (inline YAML, files, or directories of them).
PLUGIN_LISTS: Final = ("transformers", "generators", "validators")
_PLUGIN_LISTS: Final = frozenset(name.casefold() for name in PLUGIN_LISTS)

#: Top-level fields of kustomize's builtin plugin configurations that name files or URLs (ConfigMap/
#: SecretGenerator, Patch/PatchJson6902/PatchStrategicMergeTransformer, ReplacementTransformer,
#: HelmChartInflationGenerator). Checked on every configuration whatever its kind: no builtin uses one
#: of these names for anything else.
PLUGIN_CONFIG_FIELDS: Final = (
    "path",
    "paths[]",
    "files[]",
    "envs[]",
    "env",
    "replacements[].path",
    "repo",
    "valuesFile",
    "additionalValuesFiles[]",
    "chartHome",
    "configHome",
    "chartRepoUrl",
    "helmHome",
    "helmBin",
    "values",
)

#: What a kustomization listed as a directory of plugin configurations may hold: anything that
#: transforms its resources could turn a checked configuration into one that loads any URL or file.
CONFIG_DIRECTORY_FIELDS: Final = frozenset(
    name.casefold() for name in ("apiVersion", "kind", "metadata", "resources", "bases", "buildMetadata", "sortOptions")
)

#: kustomize's own rules (api/internal/git/repospec.go, api/internal/loader/fileloader.go), made wider.
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]*@")
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:")
_HOST_PATH = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(:\d+)?/")
#: How much of an entry a message quotes.
_SHOWN = 200


@dataclass(frozen=True, slots=True)
class Kustomization:
    """One kustomization file of the graph, parsed.

    ``configs_for`` is set when it was reached as a directory of plugin configurations: the directory
    of the kustomization listing it, against which kustomize resolves the configurations' paths.
    """

    directory: Path
    file: Path
    content: dict[str, Any]
    configs_for: Path | None = None


def fetches(entry: str) -> bool:
    """Whether kustomize's ``Loader.Load`` would fetch ``entry`` over the network (wider: any ``scheme://``)."""
    text = entry.strip()
    return text.lower().startswith(("http:", "https:")) or bool(_URL_SCHEME.match(text))


def clones(entry: str) -> bool:
    """Whether kustomize's ``loader.New`` would take ``entry`` as a git repository, whatever is on disk."""
    text = entry.strip()
    lowered = text.lower()
    return (
        fetches(text)
        or lowered.startswith(("git::", "github.com/", "github.com:"))
        or bool(_USERNAME.match(text) or _SCP_LIKE.match(text))
    )


def looks_remote(reference: str) -> bool:
    """Whether ``reference`` names something remote (before what is on disk is known); ``file://`` is local."""
    if _file_url(reference):
        return False
    return clones(reference) or bool(_HOST_PATH.match(reference.strip()))


def folded(mapping: Mapping[Any, Any], field: str) -> list[Any]:
    """The values of every key of ``mapping`` Go's JSON decoder would take for ``field`` (case-folded)."""
    want = field.casefold()
    return [value for key, value in mapping.items() if isinstance(key, str) and key.casefold() == want]


def strings_at(node: Any, spec: str, where: str = "") -> Iterator[tuple[str, str]]:
    """``(where, value)`` for every non-empty string ``spec`` names under ``node`` (see KUSTOMIZATION_FIELDS).

    A ``files`` entry ``key=path`` yields its path as well: kustomize loads what follows the ``=``.
    """
    head, _, rest = spec.partition(".")
    field = head.removesuffix("[]")
    if not isinstance(node, Mapping):
        return
    label = f"{where}.{field}" if where else field
    for value in folded(node, field):
        items = list(enumerate(value)) if head.endswith("[]") and isinstance(value, list) else [(None, value)]
        for index, item in items:
            if rest:
                yield from strings_at(item, rest, label if index is None else f"{label}[{index}]")
            elif isinstance(item, str) and item:
                yield label, item
                if field.casefold() == "files" and "=" in item:
                    yield label, item.partition("=")[2]


def references(content: dict[str, Any]) -> Iterator[tuple[str, str, Load]]:
    """``(where, entry, load)`` for every file/directory/URL entry of a kustomization."""
    for spec, load in KUSTOMIZATION_FIELDS:
        for where, entry in strings_at(content, spec):
            yield where, entry, load


def walk(root: Path, start: Path) -> Iterator[Kustomization]:
    """Every kustomization reachable from ``start`` through local references, each once, depth first.

    Missing or remote references are skipped here (kustomize and :func:`check_references` report them);
    so is any path outside ``root``, before anything about it is looked up.
    """
    seen: set[tuple[Path, Path | None]] = set()
    pending: list[tuple[Path, Path | None]] = [(start, None)]
    while pending:
        directory, configs_for = pending.pop()
        if (directory, configs_for) in seen:
            continue
        seen.add((directory, configs_for))
        file = find_kustomization(directory)
        if file is None:
            continue
        content = load_kustomization(file, relative(root, file))
        node = Kustomization(directory, file, content, configs_for)
        yield node
        nested: list[tuple[Path, Path | None]] = []
        for field, entry, load in _entries(node):
            target = local_path(root, directory, entry)
            if target is None or load is Load.FILE or not _is_dir(target) or _remote(root, directory, entry, load):
                continue
            plugin = field.split("[")[0].split(".")[0].casefold() in _PLUGIN_LISTS
            nested.append((target, directory if plugin else configs_for))
        pending.extend(reversed(nested))


def check_references(root: Path, start: Path, *, no_remote_bases: bool) -> None:
    """Raise UnsafeReference or RemoteBaseRefused for the first offending entry of the graph under ``start``."""
    for node in walk(root, start):
        name = relative(root, node.file)
        if node.configs_for is not None:
            extra = sorted(str(key) for key in node.content if str(key).casefold() not in CONFIG_DIRECTORY_FIELDS)
            if extra:
                raise UnsafeReference(
                    f"'{name}' is listed as plugin configurations and sets {', '.join(extra)}: such a "
                    "directory may only list resources (its transformations could change what a "
                    "configuration loads)"
                )
        for where, entry, load in _entries(node):
            _check(root, node.directory, name, where, entry, load, no_remote_bases=no_remote_bases)
            if node.configs_for is not None or where.split("[")[0].casefold() in _PLUGIN_LISTS:
                # kustomize resolves a configuration's paths against the kustomization listing it.
                base = node.configs_for or node.directory
                for source, doc in _plugin_configs(root, node.directory, entry, name, load):
                    kind = doc.get("kind") if isinstance(doc.get("kind"), str) else "configuration"
                    for field in PLUGIN_CONFIG_FIELDS:
                        for at, path in strings_at(doc, field):
                            _check(root, base, source, f"{kind} {at}", path, Load.FILE, no_remote_bases=no_remote_bases)


def _entries(node: Kustomization) -> Iterator[tuple[str, str, Load]]:
    if node.configs_for is None:
        yield from references(node.content)
        return
    for field in ("resources[]", "bases[]"):
        for where, entry in strings_at(node.content, field):
            yield where, entry, Load.RESOURCE


def _check(
    root: Path, directory: Path, name: str, where: str, entry: str, load: Load, *, no_remote_bases: bool
) -> None:
    shown = _shown(entry)
    if _file_url(entry):
        raise UnsafeReference(
            f"'{name}' {where} '{shown}' points outside the source artifact (a file: URL names the controller's files)"
        )
    if local_path(root, directory, entry) is None and not fetches(entry):
        raise UnsafeReference(f"'{name}' {where} '{shown}' points outside the source artifact")
    if no_remote_bases and _remote(root, directory, entry, load):
        what = "file" if load is Load.FILE else "base"
        raise RemoteBaseRefused(
            f"'{name}' {where} '{shown}' is a remote {what}, and remote bases are disabled (--no-remote-bases)"
        )


def _file_url(entry: str) -> bool:
    """``file:…`` or ``git::file:…``: to kustomize a git repository on the controller's own disk."""
    text = entry.strip().lower()
    return text.removeprefix("git::").startswith("file:")


def local_path(root: Path, directory: Path, entry: str) -> Path | None:
    """Where ``entry`` is on disk read as a local path, if inside ``root`` (lexically, then through symlinks).

    None when it leaves the root; whether anything exists outside is never looked up.
    """
    target = Path(os.path.normpath(directory / entry))
    if not _inside(root, target):
        return None
    # Checked lexically first: nothing outside the artifact is ever looked up, so no refusal tells what exists.
    try:
        resolved = target.resolve()
    except (OSError, ValueError):
        return target  # a name the OS refuses (NUL, too long) leads nowhere, let alone out of the root
    return target if _inside(root.resolve(), resolved) else None


def _remote(root: Path, directory: Path, entry: str, load: Load) -> bool:
    """Whether kustomize would go to the network (or a git repository) for ``entry``, as it does for ``load``."""
    if fetches(entry):
        return True
    if load is Load.FILE:
        return False
    target = local_path(root, directory, entry)
    if load is Load.RESOURCE and target is not None and _is_file(target):
        return False  # a resource is read as a file first, whatever its name
    if clones(entry):
        return True
    if _HOST_PATH.match(entry.strip()):
        # host.tld/owner/repo without a scheme or user: kustomize v5 reads it from disk; refused when absent,
        # as the user most likely meant a remote base.
        return target is None or not (_is_file(target) or _is_dir(target))
    return False


def _plugin_configs(root: Path, directory: Path, entry: str, name: str, load: Load) -> Iterator[tuple[str, Any]]:
    """``(source, document)`` for the plugin configurations an entry stands for: inline YAML or a file's documents."""
    if load is Load.FILE or fetches(entry):
        return
    target = local_path(root, directory, entry)
    if target is not None and _is_file(target):
        source = relative(root, target)
        data: bytes | str = target.read_bytes()
    elif target is not None and _is_dir(target):
        return  # a directory of configurations: walked as a kustomization of its own
    else:
        source, data = name, entry
    try:
        documents = list(manifests.load_all(data))
    except yaml.YAMLError as e:
        if source == name:
            return  # not YAML, so not an inline configuration: kustomize takes it as a path (checked above)
        raise BuildFailed(f"failed to read plugin configuration '{source}': {tenant_yaml.problem(e)}") from e
    pending = list(documents)
    while pending:
        doc = pending.pop(0)
        if isinstance(doc, Mapping):
            yield source, doc
            # kustomize expands a List's items into resources, so into configurations too.
            for items in folded(doc, "items"):
                pending.extend(items if isinstance(items, list) else [])


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def _shown(entry: str) -> str:
    text = " ".join(entry.split())
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def load_kustomization(file: Path, name: str) -> dict[str, Any]:
    """A kustomization file as a map (empty file: ``{}``); BuildFailed naming ``name`` otherwise."""
    try:
        loaded = manifests.load_kustomization(file.read_bytes())
    except yaml.YAMLError as e:
        raise BuildFailed(f"failed to read kustomization '{name}': {tenant_yaml.problem(e)}") from e
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise BuildFailed(f"failed to read kustomization '{name}': a {type(loaded).__name__}, not a map")
    return loaded
