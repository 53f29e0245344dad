"""Artifacts, producer side: a directory becomes a deterministic tar.gz with Flux's normalised headers.

Conventions (Flux's ``storage.Archive`` and ``sanitizeHeader``/``setDefaultMode``):

* only regular files and directories are archived; symlinks, sockets, fifos and devices are skipped;
* names are relative to the root with ``/`` separators (the root itself has no entry; Flux writes one
  named ``.``, which unpacks to nothing, so leaving it out changes no extracted tree);
* depth-first, each directory's entries in byte order of their names - the order of Go's
  ``filepath.Walk`` - so the same tree always gives the same stream;
* uid/gid 0, empty uname/gname, mtime 0; modes are not copied but normalised: directories 0750,
  files with any execute bit 0700, other files 0600;
* the gzip header carries mtime 0 and no file name; the digest is ``sha256:`` over the compressed bytes.

Nothing is excluded by default: the caller's ``include`` decides about ``.git``, ``.sourceignore`` and
spec.ignore (Flux's SourceIgnoreFilter); a directory it leaves out is not even walked.

The digest is stable for a given tree and zlib build; it is not byte-identical to Flux's (Go's deflate
differs from zlib's), which nothing relies on: consumers verify the digest the producer announces.

Reading files and compressing overlap: the calling thread walks and builds the tar stream in 1 MiB
chunks, a second thread deflates, hashes and writes them (zlib and hashlib release the GIL), with a
bounded queue between the two, so memory stays a few MiB whatever the size of the tree.

A tar stream to repack (``git archive`` output: names and contents the tenant chose) is read by the
project's own capped reader (:class:`.untar.TarReader`), never by :mod:`tarfile`, which buffers whole pax
headers and, on the Python 3.11 the images had, parses them with a backtracking regex (CVE-2024-6232).

A pack runs in a worker thread that asyncio cannot cancel, and the caller's ``include`` (tenant patterns)
runs once per path: a :class:`Stop` is checked before every entry, so a deadline or a cancelled caller
ends the walk at the next path instead of after the whole tree.
"""

from __future__ import annotations

import collections
import hashlib
import os
import queue
import stat
import struct
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gitops_mesh import stoppable
from gitops_mesh.artifacts.errors import StorageError, UnsafeArchive
from gitops_mesh.artifacts.untar import ExtractLimits, TarReader
from gitops_mesh.stoppable import Stopped

#: Modes written for every entry, whatever the file system says (Flux's defaults).
DIR_MODE = 0o750
EXEC_FILE_MODE = 0o700
FILE_MODE = 0o600

#: Default deflate level: the same as ``gzip -6`` and Go's ``gzip.DefaultCompression``.
DEFAULT_LEVEL = 6

#: ``include(relpath, is_dir)``: True keeps the entry; a directory left out is not walked at all.
Include = Callable[[str, bool], bool]

BLOCK = 512
_CHUNK = 1 << 20
_QUEUE_DEPTH = 4
_WINDOW = 32 * 1024
_WORKERS = max(1, min(8, os.cpu_count() or 1))
# gzip member header: deflate, no flags, mtime 0, no extra flags, OS unix (what zlib writes with wbits 31).
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
_MAX_OCTAL_SIZE = 0o77777777777
_ZERO_BLOCK = bytes(BLOCK)
# O_NONBLOCK: a fifo swapped in after the directory scan must not hang the walk on open().
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
# A repacked stream's size and entry count were held to the repository size limit by the fetch that
# produced its commit; the reader's structural caps (header sizes, names, types) are what apply here.
# Symlinks are left out, as pack() leaves them out of a checkout.
_STREAM_LIMITS = ExtractLimits(max_total_bytes=sys.maxsize, max_entries=sys.maxsize, skip_symlinks=True)


class PackStopped(StorageError, Stopped):
    """A pack gave up between two entries: its deadline passed (``timed_out``) or its caller was cancelled."""

    def __init__(self, message: str, *, timed_out: bool) -> None:
        StorageError.__init__(self, message)
        self.timed_out = timed_out


class Stop(stoppable.Stop):
    """A :class:`gitops_mesh.stoppable.Stop` for packs, checked before each entry (and so before each
    ``include`` call): a cancelled reconcile or an expired timeout stops the thread at the next path,
    instead of leaving it to walk the rest of the tree. Its check raises PackStopped.
    """

    def __init__(self, timeout: float | None = None, *, cancelled: threading.Event | None = None) -> None:
        super().__init__(timeout, cancelled=cancelled, what="archiving", error=PackStopped)


@dataclass(frozen=True, slots=True)
class PackResult:
    """What :func:`pack` wrote: the digest and size of the compressed file, and what went in."""

    digest: str
    size: int
    files: int
    dirs: int


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


_UID_GID = _octal(0, 8) * 2
_MTIME = _octal(0, 12)
_MAGIC = b"ustar\x0000"
_EMPTY_NAMES = bytes(100) + _MAGIC + bytes(32 + 32) + _octal(0, 8) * 2


def tar_header(name: bytes, mode: int, size: int, typeflag: bytes) -> bytes:
    """One ustar header (preceded by a pax header when the name or size does not fit ustar)."""
    records: list[bytes] = []
    prefix = b""
    if len(name) > 100:
        split = _ustar_split(name)
        if split is None:
            records.append(_pax_record(b"path", name))
            name = name[-100:]
        else:
            prefix, name = split
    size_field = size
    if size > _MAX_OCTAL_SIZE:
        records.append(_pax_record(b"size", b"%d" % size))
        size_field = 0
    header = bytearray(
        name.ljust(100, b"\0")
        + _octal(mode, 8)
        + _UID_GID
        + _octal(size_field, 12)
        + _MTIME
        + b" " * 8
        + typeflag
        + _EMPTY_NAMES
        + prefix.ljust(155, b"\0")
        + bytes(12)
    )
    header[148:156] = b"%06o\0 " % sum(header)
    if not records:
        return bytes(header)
    pax = b"".join(records)
    pax_header = tar_header(b"././@PaxHeader", 0o644, len(pax), b"x")
    return pax_header + pax + _padding(len(pax)) + bytes(header)


def _ustar_split(name: bytes) -> tuple[bytes, bytes] | None:
    """Split a long name at a ``/`` into ustar's prefix (155) and name (100) fields, if it can be."""
    start = max(0, len(name) - 101)
    cut = name.find(b"/", start, 156)
    if cut <= 0 or len(name) - cut - 1 == 0:
        return None
    return name[:cut], name[cut + 1 :]


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(b"%d" % length) + len(body) != length:
        length += 1
    return b"%d" % length + body


def _padding(size: int) -> bytes:
    return _ZERO_BLOCK[: -size % BLOCK]


def _sorted_entries(path: bytes) -> list[os.DirEntry[bytes]]:
    with os.scandir(path) as it:
        return sorted(it, key=lambda e: e.name)


def _walk(root: bytes, include: Include | None, stop: Stop | None) -> Iterator[tuple[bytes, bytes, bool]]:
    """(relative name, absolute path, is_dir) in Walk order; only regular files and directories."""
    # An explicit stack, not recursion: a hostile repository can nest deeper than Python's limit.
    stack: list[tuple[bytes, Iterator[os.DirEntry[bytes]]]] = [(b"", iter(_sorted_entries(root)))]
    while stack:
        prefix, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        if stop is not None:
            stop.check()  # before include: the entries it leaves out cost as much as those it keeps
        rel = prefix + entry.name
        if entry.is_dir(follow_symlinks=False):
            if include is not None and not include(os.fsdecode(rel), True):
                continue
            yield rel, entry.path, True
            stack.append((rel + b"/", iter(_sorted_entries(entry.path))))
        elif entry.is_file(follow_symlinks=False):
            if include is not None and not include(os.fsdecode(rel), False):
                continue
            yield rel, entry.path, False


class _Deflater(threading.Thread):
    """Deflates, hashes and writes the chunks it is given, off the producing thread.

    Chunks are compressed in parallel the way pigz does it: each is a raw deflate block that uses the
    previous chunk's last 32 KiB as its dictionary and ends on a sync flush, so the concatenation is one
    valid deflate stream; the gzip header, the running CRC-32 and the trailer are written here. zlib
    releases the GIL, so on N cores compression runs up to N times faster than ``gzip -6``, and the output
    depends only on the input and the chunk boundaries, never on thread timing.
    """

    def __init__(self, out: int, level: int) -> None:
        super().__init__(name="artifact-deflate", daemon=True)
        self.chunks: queue.Queue[bytes | bytearray | None] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self.error: OSError | None = None
        self.size = 0
        self._out = out
        self._level = level
        self._hash = hashlib.sha256()
        self._crc = 0
        self._isize = 0
        self._pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="artifact-deflate")

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def _block(self, data: bytes | bytearray, zdict: bytes, last: bool) -> bytes:
        c = (
            zlib.compressobj(self._level, zlib.DEFLATED, -15, zdict=zdict)
            if zdict
            else zlib.compressobj(self._level, zlib.DEFLATED, -15)
        )
        return c.compress(data) + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)

    def run(self) -> None:
        try:
            self._emit(_GZIP_HEADER)
            pending: collections.deque[Future[bytes]] = collections.deque()
            zdict = b""
            chunk = self.chunks.get()
            while chunk is not None:
                following = self.chunks.get()
                self._crc = zlib.crc32(chunk, self._crc)
                self._isize += len(chunk)
                pending.append(self._pool.submit(self._block, chunk, zdict, following is None))
                zdict = bytes(chunk[-_WINDOW:]) if len(chunk) >= _WINDOW else (zdict + bytes(chunk))[-_WINDOW:]
                while len(pending) > _WORKERS * 2 or (pending and pending[0].done()):
                    self._emit(pending.popleft().result())
                chunk = following
            if self._isize == 0:
                self._emit(self._block(b"", b"", True))
            while pending:
                self._emit(pending.popleft().result())
            self._emit(struct.pack("<II", self._crc & 0xFFFFFFFF, self._isize & 0xFFFFFFFF))
        except OSError as e:
            self.error = e
            # Keep taking chunks so the producer never blocks on a full queue; it checks .error.
            while self.chunks.get() is not None:
                pass
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        self._hash.update(data)
        view = memoryview(data)
        while view:
            written = os.write(self._out, view)
            view = view[written:]
        self.size += len(data)


def pack(
    src_dir: Path,
    dest_file: Path,
    *,
    include: Include | None = None,
    level: int = DEFAULT_LEVEL,
    stop: Stop | None = None,
) -> PackResult:
    """Archive ``src_dir`` into ``dest_file`` (created or truncated, removed again on failure).

    ``stop`` is checked before each entry; PackStopped when it says so.
    """
    root = os.fsencode(src_dir)
    if not os.path.isdir(root):
        raise StorageError(f"cannot archive {src_dir}: not a directory")
    return _write_archive(dest_file, level, lambda out: _produce(root, include, out, stop), f"cannot archive {src_dir}")


def pack_tar_stream(
    stream: IO[bytes],
    dest_file: Path,
    *,
    include: Include | None = None,
    level: int = DEFAULT_LEVEL,
    stop: Stop | None = None,
) -> PackResult:
    """Re-pack a tar stream (``git archive`` output) with the same conventions as :func:`pack` (blocking).

    Nothing touches the disk but the artifact: no checkout is written and read back, which on a
    10,000-file repository is most of the cost. Only regular files are kept (symlinks, links and
    specials skipped); a directory entry is written before the first file kept under it, so directories
    that hold nothing kept are left out, as a checkout of the same tree packed by :func:`pack` would
    not show them either (git tracks no empty directories). The stream is checked as every archive we
    read is (:mod:`.untar`): a name climbing out with ``..``, a duplicate or an oversized header fails the
    pack. ``stop`` is checked before each entry.
    """
    return _write_archive(
        dest_file,
        level,
        lambda out: _produce_from_tar(stream, include, out, stop),
        "cannot read the tree to archive",
    )


def _write_archive(dest_file: Path, level: int, produce: Callable[[_TarOut], tuple[int, int]], what: str) -> PackResult:
    """Run ``produce`` into a deflater writing ``dest_file``; the file is removed again on any failure."""
    try:
        fd = os.open(dest_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise StorageError(f"cannot create {dest_file}: {e.strerror}") from e
    deflater = _Deflater(fd, level)
    deflater.start()
    try:
        try:
            files, dirs = produce(_TarOut(deflater))
        finally:
            deflater.chunks.put(None)
            deflater.join()
            os.close(fd)
    except (OSError, UnsafeArchive) as e:
        dest_file.unlink(missing_ok=True)
        if deflater.error is not None:
            raise StorageError(f"cannot write {dest_file}: {deflater.error}") from deflater.error
        raise StorageError(f"{what}: {e}") from e
    except BaseException:
        dest_file.unlink(missing_ok=True)
        raise
    if deflater.error is not None:
        dest_file.unlink(missing_ok=True)
        raise StorageError(f"cannot write {dest_file}: {deflater.error}") from deflater.error
    return PackResult(digest=deflater.digest, size=deflater.size, files=files, dirs=dirs)


class _TarOut:
    """The uncompressed tar stream, handed to the deflater in chunks of about 1 MiB."""

    def __init__(self, deflater: _Deflater) -> None:
        self._deflater = deflater
        self._buf = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data
        if len(self._buf) >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if self._deflater.error is not None:
            raise self._deflater.error
        self._deflater.chunks.put(self._buf)
        self._buf = bytearray()

    def close(self) -> None:
        self._buf += _ZERO_BLOCK * 2
        self.flush()


async def pack_async(
    src_dir: Path,
    dest_file: Path,
    *,
    include: Include | None = None,
    level: int = DEFAULT_LEVEL,
    timeout: float | None = None,
) -> PackResult:
    """:func:`pack` in a worker thread, so the event loop keeps serving while a big tree compresses.

    Cancelling the call stops the thread at its next entry and waits for it to end (its partial file
    removed); ``timeout`` bounds the walk the same way (PackStopped).
    """
    stop = Stop(timeout)
    return await stoppable.in_thread(lambda: pack(src_dir, dest_file, include=include, level=level, stop=stop), stop)


def _produce(root: bytes, include: Include | None, out: _TarOut, stop: Stop | None) -> tuple[int, int]:
    """Walk the tree into the tar stream; returns (files, dirs)."""
    files = dirs = 0
    for rel, path, is_dir in _walk(root, include, stop):
        if is_dir:
            out.write(tar_header(rel, DIR_MODE, 0, b"5"))
            dirs += 1
            continue
        fd = os.open(path, _OPEN_FLAGS)
        try:
            # fstat of the open file, not the directory entry: the file read is the file described.
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                continue
            size = st.st_size
            out.write(tar_header(rel, EXEC_FILE_MODE if st.st_mode & 0o111 else FILE_MODE, size, b"0"))
            remaining = size
            while remaining:
                data = os.read(fd, min(remaining, _CHUNK))
                if not data:
                    raise StorageError(f"{os.fsdecode(rel)} shrank while it was being archived")
                out.write(data)
                remaining -= len(data)
            out.write(_padding(size))
        finally:
            os.close(fd)
        files += 1
    out.close()
    return files, dirs


def _produce_from_tar(stream: IO[bytes], include: Include | None, out: _TarOut, stop: Stop | None) -> tuple[int, int]:
    """Re-emit a tar stream's kept regular files with normalised headers; returns (files, dirs)."""
    files = dirs = 0
    emitted: set[str] = set()
    reader = TarReader(stream, _STREAM_LIMITS, gzip=False)
    for entry in reader:
        if stop is not None:
            stop.check()
        if entry.is_dir or (include is not None and not include(entry.path, False)):
            continue
        parts = entry.parts
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in emitted:
                emitted.add(parent)
                out.write(tar_header(os.fsencode(parent), DIR_MODE, 0, b"5"))
                dirs += 1
        mode = EXEC_FILE_MODE if entry.mode & 0o111 else FILE_MODE
        out.write(tar_header(os.fsencode(entry.path), mode, entry.size, b"0"))
        reader.copy(out.write)
        out.write(_padding(entry.size))
        files += 1
    out.close()
    return files, dirs
