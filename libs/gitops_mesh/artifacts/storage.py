"""Artifacts, producer side: the storage directory - layout, atomic stores, the latest link, GC, removal.

Layout and URLs are Flux's: ``<kind lowercase>/<namespace>/<name>/<file>`` under the root, served as
``http://<advertised addr>/<path>`` (an advertised address that already has a scheme is used as is).

Choices, with Flux's behaviour for reference:

* Stores are atomic: content goes to a hidden temp file in the object's directory, then ``os.replace``.
  Readers (the file server, consumers) see the old file or the new one, never half of one. Files and
  bytes are written through aiofiles, archives by the packer in a worker thread, so a store never blocks
  the loop on the disk; a cancelled store removes its temp file.
* ``latest.tar.gz`` is kept, as Flux keeps it (``Storage.Symlink``; ``status.url`` points at it), but
  as a *relative* symlink: the root can be moved or mounted elsewhere without breaking it. GC and
  ``exists`` ignore symlinks, like Flux.
* GC keeps the ``retention_records`` newest files by mtime (Flux's --artifact-retention-records,
  default 2) and never the current one; with ``retention_ttl`` set (Flux's --artifact-retention-ttl),
  files older than that go whatever their number. Hidden temp files left by a crash are removed too.
* One lock per object directory, held by a task and re-entrant for that task, so a reconcile can hold
  it around archive + link + GC while each of those also takes it on its own. Flux uses a lock file
  because several processes may share a volume; one process owns our storage (leader election).
* Empty namespace directories are left in place: removing them could race another object's store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiofiles
import aiofiles.os

from gitops_mesh import stoppable
from gitops_mesh.artifacts.archive import DEFAULT_LEVEL, Include, PackResult, Stop, pack
from gitops_mesh.artifacts.digests import file_digest, new_hasher, parse_digest
from gitops_mesh.artifacts.errors import DigestMismatch, InvalidArtifactPath, StorageError
from gitops_mesh.artifacts.hashed_writes import copy_hashed, write_hashed
from gitops_mesh.observability import metrics
from gitops_mesh.observability.logging import get_logger

log = get_logger(__name__)

LATEST = "latest.tar.gz"
DEFAULT_RETENTION_RECORDS = 2
_TEMP_PREFIX = ".tmp-"

#: Writes an artifact's content to the temp path it is given; returns the content's digest and size.
Writer = Callable[[Path], Awaitable[tuple[str, int]]]


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    """Where an artifact was stored and what it is; the caller adds the revision for the status."""

    path: str
    url: str
    digest: str
    size: int
    last_update_time: datetime


def _component(value: str, what: str) -> str:
    if not value or value in {".", ".."} or value.startswith(".") or "/" in value or "\\" in value or "\0" in value:
        raise InvalidArtifactPath(f"invalid artifact {what} {value!r}")
    return value


class _TaskLock:
    """An asyncio lock the holding task may take again (nested ``async with``)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self.refs = 0

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        me = asyncio.current_task()
        if me is not None and self._owner is me:
            yield
            return
        async with self._lock:
            self._owner = me
            try:
                yield
            finally:
                self._owner = None


class Storage:
    """The artifact directory of a source controller."""

    def __init__(
        self,
        root: Path,
        advertised_addr: str,
        *,
        retention_records: int = DEFAULT_RETENTION_RECORDS,
        retention_ttl: float | None = None,
        fsync: bool = False,
    ) -> None:
        if retention_records < 1:
            raise ValueError("retention_records must be at least 1")
        self.root = root
        self.advertised_addr = advertised_addr.rstrip("/")
        self.retention_records = retention_records
        self.retention_ttl = retention_ttl
        self.fsync = fsync
        self._locks: dict[str, _TaskLock] = {}

    # Layout

    @staticmethod
    def object_dir(kind: str, namespace: str, name: str) -> str:
        """``<kind lowercase>/<namespace>/<name>``: the directory holding an object's artifacts."""
        return "/".join(
            (_component(kind.lower(), "kind"), _component(namespace, "namespace"), _component(name, "name"))
        )

    def artifact_path(self, kind: str, namespace: str, name: str, filename: str) -> str:
        """The artifact's path relative to the root, as Flux writes it in ``status.artifact.path``."""
        return f"{self.object_dir(kind, namespace, name)}/{_component(filename, 'file name')}"

    def url(self, path: str) -> str:
        if self.advertised_addr.startswith(("http://", "https://")):
            return f"{self.advertised_addr}/{path.lstrip('/')}"
        return f"http://{self.advertised_addr}/{path.lstrip('/')}"

    def local_path(self, path: str) -> Path:
        """The file for a relative artifact path; every component is checked, so it stays under the root."""
        parts = path.strip("/").split("/")
        if len(parts) != 4:
            raise InvalidArtifactPath(f"invalid artifact path {path!r}: want <kind>/<namespace>/<name>/<file>")
        for part in parts:
            _component(part, "path component")
        return self.root.joinpath(*parts)

    # Locking

    @contextlib.asynccontextmanager
    async def lock(self, kind: str, namespace: str, name: str) -> AsyncIterator[None]:
        """Exclusive use of one object's directory; re-entrant within the holding task."""
        key = self.object_dir(kind, namespace, name)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = _TaskLock()
        lock.refs += 1
        try:
            async with lock.hold():
                yield
        finally:
            lock.refs -= 1
            if lock.refs == 0:
                del self._locks[key]

    # Storing

    async def archive(
        self,
        kind: str,
        namespace: str,
        name: str,
        filename: str,
        src_dir: Path,
        *,
        include: Include | None = None,
        level: int = DEFAULT_LEVEL,
    ) -> StoredArtifact:
        """Pack ``src_dir`` (see :mod:`.archive`) into the object's ``filename``, atomically.

        Cancelling the call stops the packing thread at its next entry (``include`` runs tenant patterns).
        """
        stop = Stop()
        return await self.store_with(
            kind,
            namespace,
            name,
            filename,
            lambda tmp: pack(src_dir, tmp, include=include, level=level, stop=stop),
            stop=stop,
        )

    async def store_with(
        self,
        kind: str,
        namespace: str,
        name: str,
        filename: str,
        write: Callable[[Path], PackResult],
        *,
        stop: stoppable.Stop | None = None,
    ) -> StoredArtifact:
        """Store what ``write(tmp_path)`` produces (blocking, run in a thread) as the object's ``filename``.

        With ``stop`` (which ``write`` checks), cancelling the call stops the thread before it returns.
        """
        path = self.artifact_path(kind, namespace, name, filename)

        def produce(tmp: Path) -> tuple[str, int]:
            result = write(tmp)
            return result.digest, result.size

        async def in_thread(tmp: Path) -> tuple[str, int]:
            if stop is None:
                return await asyncio.to_thread(produce, tmp)
            return await stoppable.in_thread(lambda: produce(tmp), stop)

        started = time.perf_counter()
        stored = await self._store(kind, namespace, name, path, in_thread)
        metrics.artifact_pack_duration.labels(kind=kind.lower()).observe(time.perf_counter() - started)
        return stored

    async def write_bytes(self, kind: str, namespace: str, name: str, filename: str, data: bytes) -> StoredArtifact:
        """Store ``data`` (a chart index, a small file) as the object's ``filename``, atomically."""
        path = self.artifact_path(kind, namespace, name, filename)

        async def write(tmp: Path) -> tuple[str, int]:
            hasher = new_hasher("sha256")
            async with aiofiles.open(tmp, "wb") as out:
                await write_hashed(out, hasher, data)
            return f"sha256:{hasher.hexdigest()}", len(data)

        return await self._store(kind, namespace, name, path, write)

    async def copy_file(self, kind: str, namespace: str, name: str, filename: str, src: Path) -> StoredArtifact:
        """Copy ``src`` (a packaged chart, a downloaded blob) in as the object's ``filename``, atomically."""
        path = self.artifact_path(kind, namespace, name, filename)

        async def write(tmp: Path) -> tuple[str, int]:
            hasher = new_hasher("sha256")
            async with aiofiles.open(tmp, "wb") as out:
                size = await copy_hashed(src, out, hasher)
            return f"sha256:{hasher.hexdigest()}", size

        return await self._store(kind, namespace, name, path, write)

    async def _store(self, kind: str, namespace: str, name: str, path: str, write: Writer) -> StoredArtifact:
        final = self.local_path(path)
        async with self.lock(kind, namespace, name):
            digest, size = await self._write_atomically(final, write)
        metrics.artifact_stored_bytes.labels(kind=kind.lower()).inc(size)
        return StoredArtifact(path=path, url=self.url(path), digest=digest, size=size, last_update_time=_now())

    async def _write_atomically(self, final: Path, write: Writer) -> tuple[str, int]:
        tmp = final.with_name(f"{_TEMP_PREFIX}{uuid.uuid4().hex[:12]}-{final.name}")
        try:
            await aiofiles.os.makedirs(final.parent, mode=0o700, exist_ok=True)
            result = await write(tmp)
            await asyncio.to_thread(self._commit, tmp, final)
        except OSError as e:
            await _discard(tmp)
            raise StorageError(f"cannot store {final.relative_to(self.root)}: {e}") from e
        except BaseException:
            # A failed or cancelled write leaves no temp file behind (GC would only find it later).
            await _discard(tmp)
            raise
        return result

    def _commit(self, tmp: Path, final: Path) -> None:
        """Make the written temp file the stored one: private, durable under --fsync, renamed into place."""
        os.chmod(tmp, 0o600)
        if self.fsync:
            _fsync_path(tmp)
        os.replace(tmp, final)
        if self.fsync:
            _fsync_path(final.parent)

    async def set_latest(self, path: str, link_name: str = LATEST) -> str:
        """Point the object's ``link_name`` at the artifact ``path``; returns the link's URL (``status.url``)."""
        target = self.local_path(path)
        link = target.with_name(_component(link_name, "link name"))
        kind, namespace, name, _ = path.strip("/").split("/")

        def relink() -> None:
            tmp = link.with_name(f"{_TEMP_PREFIX}{uuid.uuid4().hex[:12]}-{link.name}")
            try:
                os.symlink(target.name, tmp)
                os.replace(tmp, link)
            except OSError as e:
                tmp.unlink(missing_ok=True)
                raise StorageError(f"cannot link {link_name} to {path}: {e}") from e

        async with self.lock(kind, namespace, name):
            await asyncio.to_thread(relink)
        return self.url(str(link.relative_to(self.root)))

    # Reading

    def exists(self, path: str) -> bool:
        """True when ``path`` is a regular file (not a link), as Flux's ``ArtifactExist``."""
        try:
            return stat.S_ISREG(os.lstat(self.local_path(path)).st_mode)
        except OSError:
            return False

    async def verify(self, path: str, digest: str) -> None:
        """Raise unless the stored file exists and its content has ``digest``."""
        algo, expected = parse_digest(digest)
        local = self.local_path(path)
        try:
            got = await asyncio.to_thread(file_digest, local, algo)
        except OSError as e:
            raise StorageError(f"cannot verify {path}: {e.strerror}") from e
        if got != f"{algo}:{expected}":
            raise DigestMismatch(what=path, expected=digest, got=got)

    def list_files(self, kind: str, namespace: str, name: str) -> list[str]:
        """The object's artifact file names, newest first (links and temp files left out)."""
        return [entry.name for entry, _ in self._artifacts(self.root / self.object_dir(kind, namespace, name))]

    # Removing

    async def gc(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        current: str | None = None,
        keep: int | None = None,
        ttl: float | None = None,
    ) -> list[str]:
        """Remove the object's old artifacts, keeping ``keep`` in all (the current one among them).

        ``current`` is the file name of the artifact in the object's status: it is never removed, even
        when it is not among the newest. Returns the removed files' paths relative to the root.
        """
        keep = self.retention_records if keep is None else keep
        if keep < 1:
            raise ValueError("keep must be at least 1")
        ttl = self.retention_ttl if ttl is None else ttl
        rel_dir = self.object_dir(kind, namespace, name)
        if current is not None:
            _component(current, "file name")

        def collect() -> list[str]:
            directory = self.root / rel_dir
            removed: list[str] = []
            artifacts = self._artifacts(directory)
            others = [(entry, mtime) for entry, mtime in artifacts if entry.name != current]
            keep_others = keep - (1 if len(others) < len(artifacts) else 0)
            now = time.time()
            doomed = [
                entry
                for i, (entry, mtime) in enumerate(others)
                if i >= keep_others or (ttl is not None and now - mtime > ttl)
            ]
            with contextlib.suppress(FileNotFoundError), os.scandir(directory) as it:
                # Under the lock no store is in flight, so any temp file is a crashed write's leftover.
                doomed += [e for e in it if e.name.startswith(_TEMP_PREFIX)]
            for entry in doomed:
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue
                except OSError as e:
                    raise StorageError(f"cannot remove {rel_dir}/{entry.name}: {e.strerror}") from e
                removed.append(f"{rel_dir}/{entry.name}")
            return removed

        async with self.lock(kind, namespace, name):
            removed = await asyncio.to_thread(collect)
        if removed:
            metrics.artifact_gc_removed.labels(kind=kind.lower()).inc(len(removed))
            log.debug("artifacts garbage-collected", path=rel_dir, removed=removed)
        return removed

    async def remove_all(self, kind: str, namespace: str, name: str) -> bool:
        """Remove the object's directory and everything in it (the finalizer); False when there was none."""
        rel_dir = self.object_dir(kind, namespace, name)
        directory = self.root / rel_dir

        def remove() -> bool:
            try:
                shutil.rmtree(directory)
            except FileNotFoundError:
                return False
            except OSError as e:
                raise StorageError(f"cannot remove {rel_dir}: {e.strerror}") from e
            return True

        async with self.lock(kind, namespace, name):
            return await asyncio.to_thread(remove)

    @staticmethod
    def _artifacts(directory: Path) -> list[tuple[os.DirEntry[str], float]]:
        """Regular, non-hidden files with their mtimes, newest first (name breaks ties, for stable GC)."""
        try:
            with os.scandir(directory) as it:
                found = [
                    (e, e.stat(follow_symlinks=False).st_mtime)
                    for e in it
                    if e.is_file(follow_symlinks=False) and not e.name.startswith(".")
                ]
        except FileNotFoundError:
            return []
        found.sort(key=lambda item: (item[1], item[0].name), reverse=True)
        return found


async def _discard(tmp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        await aiofiles.os.unlink(tmp)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
