"""Artifacts, consumer side: unpack a fetched tar.gz safely, and cache unpacked trees by digest.

:func:`safe_extract` writes what :class:`.untar.TarReader` checked (its docstring has the rules) into an
empty directory. As no link is ever created and ``dest`` must start empty, no path can lead out of it;
files are opened with O_NOFOLLOW and O_EXCL all the same.

:class:`TreeCache` keeps unpacked trees under a root, one per digest: callers of one digest share one
download and one unpack, trees are leased while in use and the least recently used unleased ones are
evicted past ``max_entries``. Trees are shared: a consumer must not write into one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import stat
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from gitops_mesh.artifacts.digests import parse_digest
from gitops_mesh.artifacts.errors import StorageError, UnsafeArchive
from gitops_mesh.artifacts.fetch import fetch
from gitops_mesh.artifacts.untar import ArchiveEntry, EntryCheck, ExtractLimits, ExtractResult, TarReader, open_archive
from gitops_mesh.observability import metrics
from gitops_mesh.observability.logging import get_logger

# ExtractLimits and ExtractResult are part of this module's interface (callers import them from here).
__all__ = ["ExtractLimits", "ExtractResult", "TreeCache", "safe_extract", "tree_dirname"]

log = get_logger(__name__)

#: Errors creating an entry that come from the archive's names rather than from the disk.
_ARCHIVE_ERRNOS = {errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ELOOP}
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class _Writer:
    """Creates the checked entries under ``dest``, which started empty and never holds a link."""

    def __init__(self, dest: Path) -> None:
        self.dest = os.fsencode(dest)

    def _mkdir(self, rel: bytes, mode: int) -> None:
        path = os.path.join(self.dest, rel)
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(path).st_mode):  # pragma: no cover - the reader refuses such clashes
                raise

    def write(self, entry: ArchiveEntry, reader: TarReader) -> None:
        rel = os.fsencode(entry.path)
        parts = rel.split(b"/")
        # The reader says which parents are new: no set of made paths here, and no mkdir of known ones.
        for depth in range(len(parts) - entry.new_dirs, len(parts)):
            self._mkdir(b"/".join(parts[:depth]), 0o750)
        if entry.is_dir:
            self._mkdir(rel, (entry.mode & 0o777) | 0o700)
            return
        fd = os.open(os.path.join(self.dest, rel), _WRITE_FLAGS, (entry.mode & 0o777) | 0o600)
        try:

            def write(view: memoryview) -> None:
                while view:
                    view = view[os.write(fd, view) :]

            reader.copy(write)
        finally:
            os.close(fd)


def safe_extract(
    tar_gz_path: Path,
    dest: Path,
    limits: ExtractLimits | None = None,
    *,
    check: EntryCheck | None = None,
) -> ExtractResult:
    """Unpack ``tar_gz_path`` into ``dest`` (absent or empty), refusing anything unsafe (blocking).

    ``limits`` defaults to :class:`ExtractLimits`'s defaults. ``check`` runs the caller's own rules on each entry before it is written.
    """
    limits = limits or ExtractLimits()
    try:
        dest.mkdir(mode=0o750, parents=True, exist_ok=True)
        empty = not any(dest.iterdir())
    except OSError as e:
        raise StorageError(f"cannot create {dest}: {e.strerror or e}") from e
    if not empty:
        raise ValueError(f"{dest} must be empty: an existing tree could hold links out of it")
    out = _Writer(dest)
    with open_archive(tar_gz_path) as f:
        reader = TarReader(f, limits, check=check)
        for entry in reader:
            try:
                out.write(entry, reader)
            except OSError as e:
                if e.errno in _ARCHIVE_ERRNOS:
                    raise UnsafeArchive(f"cannot create entry ({e.strerror})", entry=entry.name) from e
                raise StorageError(f"cannot unpack entry {entry.name!r}: {e}") from e
    if reader.result.skipped_symlinks:
        log.info("archive symlinks skipped", archive=tar_gz_path.name, symlinks=reader.result.skipped_symlinks)
    return reader.result


@dataclass(eq=False)
class _Tree:
    path: Path
    users: int = 0
    ready: asyncio.Task[None] | None = field(default=None, repr=False)


def tree_dirname(digest: str) -> str:
    """``sha256:ab..`` -> ``sha256-ab..``: a digest as a directory name (validated)."""
    algo, hexpart = parse_digest(digest)
    return f"{algo}-{hexpart}"


class TreeCache:
    """Unpacked artifact trees by digest: one download and unpack per digest, LRU-evicted when unused."""

    def __init__(self, root: Path, max_entries: int = 16, *, limits: ExtractLimits | None = None) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.root = root
        self.max_entries = max_entries
        self.limits = limits or ExtractLimits()
        self._trees: OrderedDict[str, _Tree] = OrderedDict()
        self._root_lock = asyncio.Lock()
        self._root_ready = False

    def __len__(self) -> int:
        return len(self._trees)

    @contextlib.asynccontextmanager
    async def tree(self, digest: str, download: Callable[[Path], Awaitable[object]]) -> AsyncIterator[Path]:
        """Lease the unpacked tree of ``digest``; ``download(path)`` writes the verified archive on a miss.

        The tree stays on disk at least until the ``async with`` block ends. Concurrent callers of one
        digest share one download and unpack; if it fails, all of them get its error and the next call
        tries again.
        """
        key = tree_dirname(digest)
        tree = self._trees.get(key)
        if tree is not None and tree.ready is not None and tree.ready.cancelled():
            # Cancelled before it ever ran, so it could not take itself out of the dict.
            del self._trees[key]
            tree = None
        if tree is None:
            tree = self._trees[key] = _Tree(self.root / key)
            tree.ready = asyncio.create_task(self._build(key, tree, download), name=f"artifact-unpack-{key[:19]}")
            tree.ready.add_done_callback(_retrieve)
            metrics.artifact_tree_cache.labels(result="miss").inc()
        else:
            assert tree.ready is not None
            metrics.artifact_tree_cache.labels(result="hit" if tree.ready.done() else "shared").inc()
        self._trees.move_to_end(key)
        tree.users += 1
        try:
            assert tree.ready is not None
            # Shielded: one caller giving up must not cancel the unpack the others wait for.
            await asyncio.shield(tree.ready)
            yield tree.path
        finally:
            tree.users -= 1
            await self._evict()

    @contextlib.asynccontextmanager
    async def tree_from_url(
        self, session: aiohttp.ClientSession, url: str, *, digest: str, max_size: int
    ) -> AsyncIterator[Path]:
        """:meth:`tree`, downloading with :func:`.fetch.fetch` (digest and size checked) on a miss."""

        async def download(dest: Path) -> None:
            await fetch(session, url, dest, digest=digest, max_size=max_size)

        async with self.tree(digest, download) as path:
            yield path

    async def _build(self, key: str, tree: _Tree, download: Callable[[Path], Awaitable[object]]) -> None:
        token = uuid.uuid4().hex[:12]
        archive = self.root / f".download-{token}.tar.gz"
        staging = self.root / f".unpack-{token}"
        try:
            await self._prepare_root()
            await download(archive)
            result = await asyncio.to_thread(safe_extract, archive, staging, self.limits)
            # Renamed into place only once complete: a tree directory is always a whole tree.
            await asyncio.to_thread(os.replace, staging, tree.path)
            log.debug("artifact unpacked", tree=key, files=result.files, bytes=result.bytes)
        except BaseException:
            if self._trees.get(key) is tree:
                del self._trees[key]
            await asyncio.to_thread(shutil.rmtree, staging, True)
            raise
        finally:
            archive.unlink(missing_ok=True)

    async def _prepare_root(self) -> None:
        """Create the root; the first time, clear what an earlier process left (we cannot vouch for it)."""
        async with self._root_lock:
            if self._root_ready:
                return

            def wipe() -> None:
                self.root.mkdir(parents=True, exist_ok=True)
                for entry in os.scandir(self.root):
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)

            await asyncio.to_thread(wipe)
            self._root_ready = True

    async def _evict(self) -> None:
        while len(self._trees) > self.max_entries:
            # Failed and cancelled unpacks leave the dict themselves, so a done tree here is a whole one.
            victim = next(
                (k for k, t in self._trees.items() if t.users == 0 and t.ready is not None and t.ready.done()), None
            )
            if victim is None:
                return
            tree = self._trees.pop(victim)
            # Renamed away at once, removed in a thread: a new unpack of that digest may start meanwhile.
            trash = self.root / f".evicted-{uuid.uuid4().hex[:12]}"
            os.replace(tree.path, trash)
            await asyncio.to_thread(shutil.rmtree, trash, True)

    async def clear(self) -> None:
        """Remove every unused tree (shutdown, tests)."""
        for key, tree in list(self._trees.items()):
            if tree.users == 0 and tree.ready is not None and tree.ready.done():
                del self._trees[key]
                await asyncio.to_thread(shutil.rmtree, tree.path, True)


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a failed unpack's error as seen: its waiters got it, or nobody was left to."""
    if not task.cancelled():
        task.exception()
