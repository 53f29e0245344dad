"""The kustomizations reachable from a build directory, and the checks on their references before kustomize runs.

kustomize's root-only load restrictor keeps the files a kustomization loads inside its own directory,
but a base (a directory with its own kustomization) may sit anywhere on disk, and a base may be a git
URL. So before running kustomize we walk ``resources``, ``bases``, ``components``, ``transformers``,
``generators`` and ``validators`` from the build directory and refuse:

* a local reference that leaves the artifact (absolute, or more ``..`` than it has levels) - Flux gets
  the same guarantee from the secure file system its kustomize build runs on;
* a remote reference (URL, scp-like ``git@host:repo``, ``git::``, or ``host.tld/owner/repo`` that is
  not a local path) when remote bases are disabled (Flux's ``--no-remote-bases``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kustomize_controller.build import manifests
from kustomize_controller.build.errors import BuildFailed, RemoteBaseRefused, UnsafeReference
from kustomize_controller.build.workdir import find_kustomization, relative

#: kustomization fields whose entries are paths (or URLs) of files or kustomization directories.
REFERENCE_FIELDS = ("resources", "bases", "components", "transformers", "generators", "validators")
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:")
_HOST_PATH = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(:\d+)?/")


@dataclass(frozen=True, slots=True)
class Kustomization:
    """One kustomization file of the graph, parsed."""

    directory: Path
    file: Path
    content: dict[str, Any]


def looks_remote(reference: str) -> bool:
    """Whether kustomize would fetch ``reference`` rather than read it from disk (before existence is known)."""
    scheme = _URL_SCHEME.match(reference)
    if scheme:
        return scheme.group(1).lower() != "file"
    return reference.startswith("git::") or bool(_SCP_LIKE.match(reference)) or bool(_HOST_PATH.match(reference))


def references(content: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(field, entry)`` for every path-or-URL entry of a kustomization (inline configs are skipped)."""
    for field in REFERENCE_FIELDS:
        entries = content.get(field)
        if not isinstance(entries, list):
            continue
        for entry in entries:
            # transformers/generators/validators may hold inline YAML configs instead of paths.
            if isinstance(entry, str) and entry and "\n" not in entry:
                yield field, entry


def walk(root: Path, start: Path) -> Iterator[Kustomization]:
    """Every kustomization reachable from ``start`` through local references, each once, depth first.

    Missing or remote references are skipped here (kustomize and :func:`check_references` report them).
    """
    seen: set[Path] = set()
    pending = [start]
    while pending:
        directory = pending.pop()
        if directory in seen:
            continue
        seen.add(directory)
        file = find_kustomization(directory)
        if file is None:
            continue
        content = load_kustomization(file, relative(root, file))
        yield Kustomization(directory, file, content)
        nested: list[Path] = []
        for _, entry in references(content):
            target = local_target(directory, entry)
            if target is not None and _inside(root, target) and target.is_dir():
                nested.append(target)
        pending.extend(reversed(nested))


def local_target(directory: Path, entry: str) -> Path | None:
    """Where a reference points on disk; None when kustomize would treat it as remote."""
    path = entry.removeprefix("file://") if entry.startswith("file://") else entry
    if not entry.startswith("file://") and looks_remote(entry):
        candidate = Path(os.path.normpath(directory / path))
        # host.tld/owner/repo is a local directory when one by that name exists (kustomize tries disk first).
        if _HOST_PATH.match(entry) and candidate.exists():
            return candidate
        return None
    return Path(os.path.normpath(directory / path))


def check_references(root: Path, start: Path, *, no_remote_bases: bool) -> None:
    """Raise UnsafeReference or RemoteBaseRefused for the first offending reference under ``start``."""
    for node in walk(root, start):
        name = relative(root, node.file)
        for field, entry in references(node.content):
            target = local_target(node.directory, entry)
            if target is None:
                if no_remote_bases:
                    raise RemoteBaseRefused(
                        f"'{name}' {field} '{entry}' is a remote base, and remote bases are disabled (--no-remote-bases)"
                    )
                continue
            if not _inside(root, target):
                raise UnsafeReference(f"'{name}' {field} '{entry}' points outside the source artifact")


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def load_kustomization(file: Path, name: str) -> dict[str, Any]:
    """A kustomization file as a map (empty file: ``{}``); BuildFailed naming ``name`` otherwise."""
    try:
        loaded = manifests.load_kustomization(file.read_bytes())
    except yaml.YAMLError as e:
        raise BuildFailed(f"failed to read kustomization '{name}': {manifests.yaml_problem(e)}") from e
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise BuildFailed(f"failed to read kustomization '{name}': a {type(loaded).__name__}, not a map")
    return loaded
