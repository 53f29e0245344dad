"""Artifacts, consumer side: unpack a fetched tar.gz safely, and cache unpacked trees by digest.

:func:`safe_extract` reads the tar stream itself instead of through :mod:`tarfile`, to check every
header before any byte of its entry is written and to bound memory: tarfile buffers a whole pax or
GNU long-name header, whatever size it claims. What it enforces, next to fluxcd/pkg's ``tar.Untar``:

* names: no absolute path, no ``..`` component, no backslash or NUL (Untar rejects the same, though
  it only looks for ``../`` and so lets a trailing ``/..`` through); ``./`` prefixes are accepted;
* types: regular files and directories. Symlinks are rejected, or dropped with ``skip_symlinks``
  (Untar rejects them unless ``WithSkipSymlinks``; Flux's http fetcher, which kustomize- and
  helm-controller use, sets it). Hard links, devices, fifos and anything else are rejected (Untar: the
  same, "unsupported file type"). As no link is ever created and ``dest`` must start empty, no path
  can lead out of ``dest``;
* caps: entries, and total bytes (file contents plus extended headers), both checked on the header,
  before its data is read, so a gzip bomb stops at the first entry over the cap - Untar checks the
  same running total of header sizes (100 MiB by default);
* modes: the header's permission bits, never set-id or sticky, always owner-writable (Untar forces
  owner rwx on directories only); times are not restored (artifacts carry mtime 0).

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
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import aiohttp

from gitops_mesh.artifacts.digests import parse_digest
from gitops_mesh.artifacts.errors import ArchiveLimitExceeded, CorruptArchive, StorageError, UnsafeArchive
from gitops_mesh.artifacts.fetch import fetch
from gitops_mesh.observability import metrics
from gitops_mesh.observability.logging import get_logger

log = get_logger(__name__)

#: fluxcd/pkg tar.DefaultMaxUntarSize.
DEFAULT_MAX_TOTAL_BYTES = 100 << 20
DEFAULT_MAX_ENTRIES = 100_000

_BLOCK = 512
_ZERO = bytes(_BLOCK)
_READ = 1 << 16
_INFLATE = 1 << 20
#: One pax or GNU long-name header: a path, not a payload.
_MAX_EXTENDED_HEADER = 1 << 20
_REGULAR = {b"0", b"\0", b"7"}
_FORBIDDEN = {
    b"1": "hard link",
    b"3": "character device",
    b"4": "block device",
    b"6": "fifo",
}
#: Errors creating an entry that come from the archive's names rather than from the disk.
_ARCHIVE_ERRNOS = {errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ELOOP}
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class ExtractLimits:
    """Caps for one archive: total uncompressed bytes and number of entries."""

    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    max_entries: int = DEFAULT_MAX_ENTRIES
    skip_symlinks: bool = False


@dataclass(frozen=True, slots=True)
class ExtractResult:
    """What was unpacked; ``bytes`` is what counted against the cap (contents and extended headers)."""

    files: int
    dirs: int
    bytes: int


class _Inflater:
    """Decompressed bytes of a (possibly multi-member) gzip file, produced at most 1 MiB at a time."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._z = zlib.decompressobj(31)
        self._buf = b""
        self._pos = 0

    def _more(self) -> bytes:
        """The next decompressed piece; b"" at the end of the stream."""
        try:
            while True:
                if self._z.unconsumed_tail:
                    data = self._z.decompress(self._z.unconsumed_tail, _INFLATE)
                elif self._z.eof:
                    tail = self._z.unused_data or self._f.read(_READ)
                    if not tail:
                        return b""
                    self._z = zlib.decompressobj(31)
                    data = self._z.decompress(tail, _INFLATE)
                else:
                    raw = self._f.read(_READ)
                    if not raw:
                        raise CorruptArchive("truncated gzip stream", entry=None)
                    data = self._z.decompress(raw, _INFLATE)
                if data:
                    return data
        except zlib.error as e:
            raise CorruptArchive(f"not a valid gzip stream ({e})", entry=None) from e

    def read(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or fewer only at the end of the stream."""
        while len(self._buf) - self._pos < n:
            more = self._more()
            if not more:
                break
            self._buf = self._buf[self._pos :] + more
            self._pos = 0
        data = self._buf[self._pos : self._pos + n]
        self._pos += len(data)
        return data

    def copy(self, n: int, write: Callable[[memoryview], object] | None) -> int:
        """Pass the next ``n`` bytes to ``write`` (or drop them); returns how many there were."""
        done = 0
        while done < n:
            if self._pos >= len(self._buf):
                self._buf, self._pos = self._more(), 0
                if not self._buf:
                    break
            piece = memoryview(self._buf)[self._pos : self._pos + (n - done)]
            self._pos += len(piece)
            done += len(piece)
            if write is not None:
                write(piece)
        return done


@dataclass(slots=True)
class _Header:
    name: bytes
    mode: int
    size: int
    typeflag: bytes
    linkname: bytes


def _number(field: bytes, what: str, entry: bytes) -> int:
    if field and field[0] & 0x80:
        # GNU base-256: big sizes; a negative value (0xff lead byte) is never valid here.
        if field[0] == 0xFF:
            raise CorruptArchive(f"negative {what} in tar header", entry=_show(entry))
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.strip(b" \0")
    try:
        return int(text, 8) if text else 0
    except ValueError as e:
        raise CorruptArchive(f"bad {what} {field!r} in tar header", entry=_show(entry)) from e


def _cstring(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


def _parse_header(block: bytes) -> _Header:
    name = _cstring(block[0:100])
    stored = _number(block[148:156], "checksum", name)
    unsigned = sum(block[:148]) + 256 + sum(block[156:])
    # Some old writers summed signed chars; only worth computing when the usual sum does not match.
    if stored != unsigned and stored != unsigned - 2 * sum(b for b in block[:148] + block[156:] if b > 127):
        raise CorruptArchive("tar header checksum mismatch (not a tar file, or corrupt)", entry=_show(name))
    if block[257:263] == b"ustar\0" and (prefix := _cstring(block[345:500])):
        name = prefix + b"/" + name
    return _Header(
        name=name,
        mode=_number(block[100:108], "mode", name),
        size=_number(block[124:136], "size", name),
        typeflag=block[156:157],
        linkname=_cstring(block[157:257]),
    )


def _parse_pax(data: bytes, entry: bytes) -> dict[bytes, bytes]:
    records: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError as e:
            raise CorruptArchive("malformed pax header", entry=_show(entry)) from e
        record = data[space + 1 : pos + length]
        if length <= 0 or space < 0 or not record.endswith(b"\n") or b"=" not in record:
            raise CorruptArchive("malformed pax header", entry=_show(entry))
        key, _, value = record[:-1].partition(b"=")
        records[key] = value
        pos += length
    return records


def _show(name: bytes) -> str:
    return name.decode("utf-8", "backslashreplace")


def _safe_parts(name: bytes) -> list[bytes]:
    """The path components of an entry name, or UnsafeArchive saying why it is not allowed."""
    if not name:
        raise UnsafeArchive("empty entry name", entry="")
    if name.startswith(b"/"):
        raise UnsafeArchive("absolute path in archive", entry=_show(name))
    if b"\\" in name or b"\0" in name:
        raise UnsafeArchive("backslash or NUL in entry name", entry=_show(name))
    parts = [p for p in name.split(b"/") if p not in (b"", b".")]
    if b".." in parts:
        raise UnsafeArchive("path traversal ('..') in archive", entry=_show(name))
    return parts


class _Writer:
    """Creates the checked entries under ``dest``, which started empty and never holds a link."""

    def __init__(self, dest: Path) -> None:
        self.dest = os.fsencode(dest)
        self._made: set[bytes] = {b""}

    def _mkdirs(self, rel: bytes, entry: bytes) -> None:
        # Iterative: a hostile name can have more components than Python's recursion limit.
        missing: list[bytes] = []
        while rel not in self._made:
            missing.append(rel)
            rel = os.path.dirname(rel)
        for rel in reversed(missing):
            self._mkdir(rel, 0o750, entry)

    def _mkdir(self, rel: bytes, mode: int, entry: bytes) -> None:
        path = os.path.join(self.dest, rel)
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                raise UnsafeArchive("entry goes where an earlier entry made a file", entry=_show(entry)) from None
        self._made.add(rel)

    def directory(self, rel: bytes, mode: int, entry: bytes) -> None:
        self._mkdirs(os.path.dirname(rel), entry)
        self._mkdir(rel, (mode & 0o777) | 0o700, entry)

    def file(self, rel: bytes, mode: int, size: int, source: _Inflater, entry: bytes) -> None:
        self._mkdirs(os.path.dirname(rel), entry)
        try:
            fd = os.open(os.path.join(self.dest, rel), _WRITE_FLAGS, (mode & 0o777) | 0o600)
        except IsADirectoryError:
            raise UnsafeArchive("file entry where an earlier entry made a directory", entry=_show(entry)) from None
        try:

            def write(view: memoryview) -> None:
                while view:
                    view = view[os.write(fd, view) :]

            if source.copy(size, write) != size:
                raise CorruptArchive("archive ends inside an entry", entry=_show(entry))
        finally:
            os.close(fd)


def safe_extract(
    tar_gz_path: Path,
    dest: Path,
    *,
    max_total_bytes: int,
    max_entries: int,
    skip_symlinks: bool = False,
) -> ExtractResult:
    """Unpack ``tar_gz_path`` into ``dest`` (absent or empty), refusing anything unsafe (blocking)."""
    dest.mkdir(mode=0o750, parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise ValueError(f"{dest} must be empty: an existing tree could hold links out of it")
    with tar_gz_path.open("rb") as f:
        return _extract(_Inflater(f), _Writer(dest), max_total_bytes, max_entries, skip_symlinks)


def _extract(
    src: _Inflater, out: _Writer, max_total_bytes: int, max_entries: int, skip_symlinks: bool
) -> ExtractResult:
    total = entries = files = dirs = 0
    long_name: bytes | None = None
    pax: dict[bytes, bytes] = {}
    last = b""
    while True:
        block = src.read(_BLOCK)
        if not block or block == _ZERO:
            # A clean end (zero block, or none at all as some writers do) only between entries.
            if long_name is not None or pax:
                raise CorruptArchive("archive ends after an extended header", entry=_show(last))
            return ExtractResult(files=files, dirs=dirs, bytes=total)
        if len(block) < _BLOCK:
            raise CorruptArchive("archive ends inside a header", entry=_show(last))
        header = _parse_header(block)
        name = header.name
        typeflag = header.typeflag
        if typeflag in (b"x", b"g", b"L", b"K"):
            # Extended headers count against the byte cap too, or a run of them would be a bomb.
            total += header.size + _BLOCK
            if header.size > _MAX_EXTENDED_HEADER or total > max_total_bytes:
                raise ArchiveLimitExceeded(
                    f"extended header of {header.size} bytes over the limit", entry=_show(long_name or name)
                )
            data = src.read(header.size)
            if len(data) < header.size:
                raise CorruptArchive("archive ends inside an extended header", entry=_show(name))
            src.copy(-header.size % _BLOCK, None)
            if typeflag == b"x":
                pax.update(_parse_pax(data, name))
            elif typeflag == b"L":
                long_name = _cstring(data)
            continue
        if long_name is not None:
            name = long_name
        if b"path" in pax:
            name = pax[b"path"]
        size = header.size
        if b"size" in pax:
            if not pax[b"size"].isdigit():
                raise CorruptArchive("bad size in pax header", entry=_show(name))
            size = int(pax[b"size"])
        long_name, pax, last = None, {}, name

        entries += 1
        if entries > max_entries:
            raise ArchiveLimitExceeded(f"archive has more than {max_entries} entries", entry=_show(name))
        parts = _safe_parts(name)
        if typeflag == b"2":
            if skip_symlinks:
                continue
            target = _show(header.linkname)
            raise UnsafeArchive(f"symlink to {target!r} in archive; links are not allowed", entry=_show(name))
        if typeflag in _FORBIDDEN:
            kind = _FORBIDDEN[typeflag]
            raise UnsafeArchive(f"{kind} in archive; only files and directories are allowed", entry=_show(name))
        if typeflag not in _REGULAR and typeflag != b"5":
            raise UnsafeArchive(f"unsupported entry type {typeflag!r}", entry=_show(name))
        if typeflag == b"5":
            if size:
                raise CorruptArchive(f"directory entry with {size} bytes of data", entry=_show(name))
        else:
            total += size
            if total > max_total_bytes:
                raise ArchiveLimitExceeded(f"archive unpacks to more than {max_total_bytes} bytes", entry=_show(name))
        rel = b"/".join(parts)
        if not rel:
            if typeflag != b"5":
                raise UnsafeArchive("file entry names the destination itself", entry=_show(name))
            continue
        try:
            if typeflag == b"5":
                out.directory(rel, header.mode, name)
                dirs += 1
            else:
                out.file(rel, header.mode, size, src, name)
                src.copy(-size % _BLOCK, None)
                files += 1
        except OSError as e:
            if e.errno in _ARCHIVE_ERRNOS:
                raise UnsafeArchive(f"cannot create entry ({e.strerror})", entry=_show(name)) from e
            raise StorageError(f"cannot unpack entry {_show(name)!r}: {e}") from e


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
            limits = self.limits
            result = await asyncio.to_thread(
                safe_extract,
                archive,
                staging,
                max_total_bytes=limits.max_total_bytes,
                max_entries=limits.max_entries,
                skip_symlinks=limits.skip_symlinks,
            )
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
