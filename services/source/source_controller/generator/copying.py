"""Flux's copy operations (``cp``-like), applied from the sources' unpacked trees into one staging directory (blocking).

The rules are source-watcher's builder, case by case:

* ``from`` without glob characters is one file or directory. A directory is copied as a subdirectory of
  ``to`` (``@src/dir/`` → ``<to>/dir/...``; ``@src/`` copies the source's root, i.e. its contents); a file
  goes to ``<to>/<name>`` when ``to`` ends with ``/`` or is an existing directory, else to ``to`` itself.
* ``from`` with glob characters: every match is copied to ``<to>/<match>``, except that ``dir/**`` strips
  ``dir/`` (``@src/deploy/**`` → ``<to>/...``); a matched directory is copied whole. Overwrite and Merge
  match with Go's ``fs.Glob`` (``**`` is one segment), Extract with doublestar (``**`` any depth).
* ``exclude`` patterns (doublestar) are matched against the path from the source root and the path below
  ``from``'s literal prefix; a pattern without ``/`` also against the file name. An excluded directory
  is skipped whole.
* ``Overwrite`` (default): later operations replace files of earlier ones. ``Merge``: a file copied onto
  an existing one is deep-merged into it (:mod:`.merging`; only for files, not inside copied directories).
  ``Extract``: ``.tar.gz``/``.tgz`` files are unpacked into ``to`` (other glob matches are skipped; a
  single non-tarball or a directory is an error).
* No match, or every match excluded, is an error, as a missing literal path is.

Safety: the sources were unpacked by the runtime's capped reader with symlinks left out, so no path
below a source root leads outside it; ``from``/``to`` with ``..`` or an absolute path are refused before
anything is touched (:func:`parse_copy`); tarballs are unpacked by the same capped reader
(:func:`gitops_mesh.artifacts.extract.safe_extract`) into scratch space first. The staged bytes and
entries are counted against a :class:`Budget`; every file checks the caller's :class:`Stop`.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gitops_mesh.artifacts.errors import ArtifactError
from gitops_mesh.artifacts.extract import ExtractLimits, safe_extract
from gitops_mesh.stoppable import Stop
from source_controller.generator.globs import BadPattern, Glob, compile_glob, has_glob
from source_controller.generator.merging import MergeError, dump_values, load_values, merge_maps

OVERWRITE = "Overwrite"
MERGE = "Merge"
EXTRACT = "Extract"
STRATEGIES = (OVERWRITE, MERGE, EXTRACT)
TARBALL_SUFFIXES = (".tar.gz", ".tgz")
ARTIFACT_PREFIX = "@artifact/"
_CHUNK = 1 << 20


class CopyError(Exception):
    """A copy operation failed: a missing path, no match, a file that cannot be merged or unpacked, a cap."""


@dataclass(frozen=True, slots=True)
class CopyOp:
    """One ``copy`` entry, parsed and checked: the alias, the path in the source, the path in the artifact."""

    source: str  # the spec's "from", for messages
    to: str  # the spec's "to", for messages
    alias: str
    pattern: str  # below the alias root, as written ("" for the root)
    dest: str  # below the artifact root, normalised ("" for the root)
    dest_is_dir: bool
    exclude: tuple[Glob, ...] = ()
    strategy: str = OVERWRITE


def _clean(path: str, what: str) -> str:
    """A relative path normalised as Go's filepath.Clean ("" for the root); ``..`` or absolute refused."""
    if "\0" in path or "\\" in path:
        raise BadPattern(f"{what} must not hold NUL or backslash characters")
    if path.startswith("/"):
        raise BadPattern(f"{what} must be relative to its root, not absolute")
    cleaned = posixpath.normpath(path) if path else "."
    if cleaned == ".." or cleaned.startswith("../") or "/../" in f"/{cleaned}/":
        raise BadPattern(f"{what} must stay inside its root (no '..')")
    return "" if cleaned == "." else cleaned


def parse_copy(spec: Mapping[str, object]) -> CopyOp:
    """A ``copy`` entry of the spec as a :class:`CopyOp`; BadPattern names what is wrong."""
    source, to = str(spec.get("from") or ""), str(spec.get("to") or "")
    if not source.startswith("@") or "/" not in source:
        raise BadPattern(f"copy from '{source}' must be '@<alias>/<pattern>'")
    alias, _, pattern = source[1:].partition("/")
    if not to.startswith(ARTIFACT_PREFIX):
        raise BadPattern(f"copy to '{to}' must start with '{ARTIFACT_PREFIX}'")
    strategy = str(spec.get("strategy") or OVERWRITE)
    if strategy not in STRATEGIES:
        raise BadPattern(f"copy strategy '{strategy}' is not one of {', '.join(STRATEGIES)}")
    # The pattern is matched as written (a trailing "/" is meaningful to nothing but the literal case,
    # where it is cleaned away as Flux cleans it), but it may not climb out of the source.
    _clean(pattern, f"copy from '{source}'")
    dest = _clean(to[len(ARTIFACT_PREFIX) :], f"copy to '{to}'")
    excludes = []
    for raw in spec.get("exclude") or ():  # type: ignore[attr-defined]
        excludes.append(compile_glob(str(raw), doublestar=True))
    if has_glob(pattern):
        compile_glob(pattern, doublestar=strategy == EXTRACT)
    return CopyOp(source, to, alias, pattern, dest, to.endswith("/"), tuple(excludes), strategy)


@dataclass
class Budget:
    """What one artifact's staging may hold; exceeding it is a CopyError naming the cap."""

    max_bytes: int
    max_entries: int
    limits: ExtractLimits
    bytes: int = 0
    entries: int = 0

    def add(self, size: int, entries: int = 1) -> None:
        self.bytes += size
        self.entries += entries
        if self.bytes > self.max_bytes:
            raise CopyError(f"the artifact would be larger than {self.max_bytes} bytes")
        if self.entries > self.max_entries:
            raise CopyError(f"the artifact would hold more than {self.max_entries} entries")


@dataclass
class Copier:
    """Applies copy operations into ``staging``; ``sources`` maps each alias to its unpacked tree."""

    sources: Mapping[str, Path]
    staging: Path
    scratch: Path
    budget: Budget
    stop: Stop = field(default_factory=Stop)

    def apply_all(self, ops: Sequence[CopyOp]) -> None:
        for op in ops:
            self.stop.check()
            try:
                self.apply(op)
            except (CopyError, MergeError, ArtifactError, OSError) as e:
                detail = f"{e.strerror}: {_shown(e.filename, self)}" if isinstance(e, OSError) and e.strerror else e
                raise CopyError(f"failed to apply copy operation from '{op.source}' to '{op.to}': {detail}") from e

    def apply(self, op: CopyOp) -> None:
        root = self.sources.get(op.alias)
        if root is None:
            raise CopyError(f"source alias '{op.alias}' not found")
        if not has_glob(op.pattern):
            self._single(op, root, _clean(op.pattern, "from"))
            return
        glob = compile_glob(op.pattern, doublestar=op.strategy == EXTRACT)
        base = selection_root(op.pattern)
        matches = [m for m in _glob(root, glob, base) if m not in ("", ".")]
        if not matches:
            raise CopyError(f"no files match pattern '{op.pattern}' in source '{op.alias}'")
        kept = [m for m in matches if not excluded(m, base, op.exclude)]
        if not kept:
            raise CopyError(f"all files matching pattern '{op.pattern}' in source '{op.alias}' were excluded")
        for match in kept:
            self.stop.check()
            if op.strategy == EXTRACT:
                if is_tarball(match) and (root / match).is_file():
                    self._extract(root / match, op.dest)
                continue
            self._copy(op, root, match, glob_destination(op.pattern, match, op.dest), base)

    def _single(self, op: CopyOp, root: Path, path: str) -> None:
        src = root / path if path else root
        try:
            st = os.lstat(src)
        except FileNotFoundError:
            raise CopyError(f"source '{path or '.'}' does not exist") from None
        if stat.S_ISDIR(st.st_mode):
            if op.strategy == EXTRACT:
                raise CopyError(f"extract strategy is not supported for directories, got '{path or '.'}'")
            # cp -r dir dest: dest/dir (the source's root has no name of its own: its contents go to dest)
            self._copy(op, root, path, _join(op.dest, posixpath.basename(path)), path)
            return
        if excluded(path, "", op.exclude):
            return
        if op.strategy == EXTRACT:
            if not is_tarball(path):
                raise CopyError(f"extract strategy requires tarball file (.tar.gz or .tgz), got '{path}'")
            self._extract(src, op.dest)
            return
        name = posixpath.basename(path)
        dest = _join(op.dest, name) if op.dest_is_dir or (self.staging / op.dest).is_dir() else op.dest
        self._copy(op, root, path, dest, "")

    def _copy(self, op: CopyOp, root: Path, path: str, dest: str, base: str) -> None:
        src = root / path if path else root
        if src.is_dir():
            self._copy_dir(op, root, path, dest, base)
        elif op.strategy == MERGE and (self.staging / dest).is_file():
            self._merge(src, dest, path)
        else:
            self._copy_file(src, dest)

    def _copy_dir(self, op: CopyOp, root: Path, path: str, dest: str, base: str) -> None:
        self._mkdirs(dest)
        for rel, is_dir in _walk(
            root / path if path else root, skip=lambda rel: excluded(_join(path, rel), base, op.exclude)
        ):
            self.stop.check()
            if is_dir:
                self._mkdirs(_join(dest, rel))
            else:
                self._copy_file(root / _join(path, rel), _join(dest, rel))

    def _mkdirs(self, rel: str) -> None:
        if not rel:
            return
        target = self.staging / rel
        if target.is_dir():
            return
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            sub = self.staging.joinpath(*parts[:i])
            if not sub.is_dir():
                sub.mkdir(mode=0o750)
                self.budget.add(0)

    def _copy_file(self, src: Path, dest: str) -> None:
        if not dest:
            raise CopyError("cannot copy a file onto the artifact's root; end 'to' with '/'")
        self._mkdirs(posixpath.dirname(dest))
        size = os.stat(src).st_size
        self.budget.add(size)
        target = self.staging / dest
        # O_NOFOLLOW: nothing in staging is a link, and nothing is allowed to become one.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
            while chunk := f.read(_CHUNK):
                out.write(chunk)
        os.chmod(target, (os.stat(src).st_mode & 0o777) | 0o600)

    def _merge(self, src: Path, dest: str, path: str) -> None:
        target = self.staging / dest
        base = load_values(target.read_bytes(), what=f"'{dest}' in the artifact")
        overlay = load_values(src.read_bytes(), what=f"'{path}'")
        data = dump_values(merge_maps(base, overlay))
        self.budget.add(len(data), 0)
        target.write_bytes(data)

    def _extract(self, tarball: Path, dest: str) -> None:
        with tempfile.TemporaryDirectory(prefix="extract-", dir=self.scratch) as tmp:
            unpacked = Path(tmp) / "tree"
            try:
                safe_extract(tarball, unpacked, self.budget.limits)
            except ArtifactError as e:
                raise CopyError(f"failed to extract tarball '{tarball.name}': {e}") from e
            self._mkdirs(dest)
            for rel, is_dir in _walk(unpacked):
                self.stop.check()
                if is_dir:
                    self._mkdirs(_join(dest, rel))
                else:
                    self._copy_file(unpacked / rel, _join(dest, rel))


def _shown(filename: object, copier: Copier) -> str:
    """An OSError's file as a path inside the artifact or a source, never this host's directories."""
    if not isinstance(filename, str):
        return "?"
    for root in (copier.staging, *copier.sources.values()):
        with_sep = f"{root}{os.sep}"
        if filename.startswith(with_sep):
            return filename[len(with_sep) :]
    return posixpath.basename(filename)


def _join(a: str, b: str) -> str:
    return f"{a}/{b}" if a and b else a or b


def is_tarball(path: str) -> bool:
    return path.lower().endswith(TARBALL_SUFFIXES)


def selection_root(pattern: str) -> str:
    """The literal directories before the first glob segment (Flux's sourceSelectionRoot); "" for none."""
    parts = []
    for part in posixpath.normpath(pattern).split("/"):
        if has_glob(part):
            break
        parts.append(part)
    root = "/".join(parts)
    return "" if root == "." else root


def glob_destination(pattern: str, match: str, dest: str) -> str:
    """Where a glob match goes: ``dir/**`` strips ``dir/``; any other pattern keeps the whole match."""
    if pattern.endswith("/**"):
        prefix = pattern[: -len("/**")] + "/"
        if match.startswith(prefix):
            return _join(dest, match[len(prefix) :])
    return _join(dest, match)


def excluded(path: str, base: str, patterns: Sequence[Glob]) -> bool:
    """Flux's shouldExcludePath: against the path from the source root, then the path below ``base``."""
    if not patterns:
        return False
    if _excluded(path, patterns):
        return True
    if not base:
        return False
    prefix = base + "/"
    if not path.startswith(prefix):
        return False
    return _excluded(path[len(prefix) :], patterns)


def _excluded(path: str, patterns: Sequence[Glob]) -> bool:
    name = posixpath.basename(path)
    return any(g.match(path) or ("/" not in g.pattern and g.match(name)) for g in patterns)


def _walk(top: Path, skip: Callable[[str], bool] | None = None) -> Iterator[tuple[str, bool]]:
    """(relative path, is_dir) depth first, each directory's entries sorted; regular files and dirs only.

    An entry ``skip`` says yes to is left out, a directory with everything below it.
    """
    stack: list[tuple[str, Iterator[os.DirEntry[str]]]] = [("", iter(_entries(top)))]
    while stack:
        prefix, it = stack[-1]
        entry = next(it, None)
        if entry is None:
            stack.pop()
            continue
        rel = prefix + entry.name
        is_dir = entry.is_dir(follow_symlinks=False)
        if (not is_dir and not entry.is_file(follow_symlinks=False)) or (skip is not None and skip(rel)):
            continue
        yield rel, is_dir
        if is_dir:
            stack.append((rel + "/", iter(_entries(Path(entry.path)))))


def _entries(path: Path) -> list[os.DirEntry[str]]:
    with os.scandir(path) as it:
        return sorted(it, key=lambda e: e.name)


def _glob(root: Path, glob: Glob, base: str) -> list[str]:
    """Paths below ``root`` (from its root) that ``glob`` matches, in ``fs.Glob``'s order.

    Only the pattern's literal prefix is entered; Go's dialect never looks deeper than the pattern has
    segments, doublestar looks at the whole subtree below the prefix.
    """
    top = root / base if base else root
    if not top.is_dir():
        return []
    depth = None if glob.doublestar else glob.pattern.strip("/").count("/") - (base.count("/") + 1 if base else 0)
    found = []
    if glob.match(base) and base:
        found.append(base)
    stack: list[tuple[str, int, Iterator[os.DirEntry[str]]]] = [(base, 0, iter(_entries(top)))]
    while stack:
        prefix, level, it = stack[-1]
        entry = next(it, None)
        if entry is None:
            stack.pop()
            continue
        rel = _join(prefix, entry.name)
        is_dir = entry.is_dir(follow_symlinks=False)
        if not is_dir and not entry.is_file(follow_symlinks=False):
            continue
        if glob.match(rel):
            found.append(rel)
        if is_dir and (depth is None or level < depth):
            stack.append((rel, level + 1, iter(_entries(Path(entry.path)))))
    return found
