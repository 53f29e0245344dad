"""Artifacts, consumer side: the one tar.gz reader - every archive we unpack (artifacts, Helm charts) goes through it.

:class:`TarReader` parses the tar stream itself instead of going through :mod:`tarfile`, so every header is
checked before any byte of its entry is read, and memory stays bounded: tarfile buffers a whole pax or
GNU long-name header, whatever size it claims (a 400 KB .tgz declaring a 400 MiB pax header took 469 MB).
:func:`.extract.safe_extract` writes the checked entries to disk; :func:`read_members` keeps the few a
caller wants in memory (a chart's Chart.yaml). Both take one :class:`ExtractLimits`. The rules, next to
fluxcd/pkg's ``tar.Untar`` and Helm's ``LoadArchiveFiles``:

* headers: a pax or GNU long-name header over 1 MiB is refused on its own header, before its data is
  read; every extended header counts against the byte cap, and only the records used are kept;
* names: no absolute path, no ``..`` component, no backslash or NUL (Untar rejects the same, though it
  only looks for ``../`` and so lets a trailing ``/..`` through; Helm refuses absolute and ``..`` paths);
  ``./`` prefixes are accepted; a name is at most 4096 bytes and a component 255 (Linux's PATH_MAX and
  NAME_MAX: nothing longer could be created, and a cap keeps the bookkeeping of paths linear);
* types: regular files and directories. Symlinks are refused, or with ``skip_symlinks`` left out and
  counted in the result (Untar rejects them unless ``WithSkipSymlinks``; Flux's http fetcher, which
  kustomize- and helm-controller use, sets it). Hard links, devices, fifos and anything else are refused
  (Untar: the same, "unsupported file type"). A link, directory or skipped symlink claiming data is
  corrupt: other readers ignore such data, so reading on would parse what they do not;
* structure: a path is one file or one directory: a second file at a path (which entry would a reader
  see?), a file where a directory is, or an entry under a file are refused;
* caps, all on the header before the data: entries (counting the directories their paths imply, so a few
  headers cannot create many directories), total bytes (file contents plus extended headers) and,
  optionally, bytes per file. A gzip bomb stops at the first entry over the cap; Untar checks the same
  running total (100 MiB by default), Helm the same total for charts;
* ``check``: a caller's own rules (one top directory in a chart) run on each entry before its data.

Files get the header's permission bits, never set-id or sticky, always owner-writable (Untar forces owner
rwx on directories only); times are not restored (artifacts carry mtime 0).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from gitops_mesh.artifacts.errors import (
    ArchiveLimitExceeded,
    CorruptArchive,
    StorageError,
    UnsafeArchive,
    UnsafePath,
)

#: fluxcd/pkg tar.DefaultMaxUntarSize; Helm's MaxDecompressedChartSize is the same.
DEFAULT_MAX_TOTAL_BYTES = 100 << 20
DEFAULT_MAX_ENTRIES = 100_000
#: One pax or GNU long-name header: a path, not a payload.
MAX_EXTENDED_HEADER = 1 << 20
#: Linux's PATH_MAX and NAME_MAX.
MAX_NAME_BYTES = 4096
MAX_COMPONENT_BYTES = 255

_BLOCK = 512
_ZERO = bytes(_BLOCK)
_READ = 1 << 16
_INFLATE = 1 << 20
_SHOWN = 200
_REGULAR = {b"0", b"\0", b"7"}
_FORBIDDEN = {
    b"1": "hard link",
    b"3": "character device",
    b"4": "block device",
    b"6": "fifo",
}
#: pax records a reader acts on; others (times, owners, xattrs) are dropped as they are parsed.
_PAX_KEYS = (b"path", b"linkpath", b"size")


@dataclass(frozen=True, slots=True)
class ExtractLimits:
    """What one archive may hold, and the caller's choice about symlinks; the same defaults everywhere."""

    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    max_entries: int = DEFAULT_MAX_ENTRIES
    #: bytes per regular file (Flux's --helm-chart-file-max-size for charts); None: only the total applies
    max_file_bytes: int | None = None
    #: Flux's WithSkipSymlinks: a symlink is left out and counted in the result instead of refused
    skip_symlinks: bool = False


@dataclass(frozen=True, slots=True)
class ExtractResult:
    """What was read; ``bytes`` is what counted against the cap (contents and extended headers)."""

    files: int
    dirs: int
    bytes: int
    #: symlinks left out with ``skip_symlinks`` (never silently: callers log or surface this)
    skipped_symlinks: int = 0


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """A checked file or directory entry."""

    #: the name as written in the archive, for messages (cut short past 200 characters)
    name: str
    #: normalised: relative, ``/``-separated, no ``.`` or empty components, never empty
    path: str
    is_dir: bool
    #: permission bits from the header
    mode: int
    size: int
    #: how many of the entry's parent directories (the deepest ones) appear for the first time with it
    new_dirs: int

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.path.split("/"))


#: A caller's own rule, run on each entry before its data is read; it raises to refuse the archive.
EntryCheck = Callable[[ArchiveEntry], None]


class _Inflater:
    """Decompressed bytes of a (possibly multi-member) gzip file, produced at most 1 MiB at a time."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self._z = zlib.decompressobj(31)
        self._buf = b""
        self._pos = 0

    def _raw(self) -> bytes:
        try:
            return self._f.read(_READ)
        except OSError as e:
            raise StorageError(f"cannot read archive: {e.strerror or e}") from e

    def _more(self) -> bytes:
        """The next decompressed piece; b"" at the end of the stream."""
        try:
            while True:
                if self._z.unconsumed_tail:
                    data = self._z.decompress(self._z.unconsumed_tail, _INFLATE)
                elif self._z.eof:
                    tail = self._z.unused_data or self._raw()
                    if not tail:
                        return b""
                    self._z = zlib.decompressobj(31)
                    data = self._z.decompress(tail, _INFLATE)
                else:
                    raw = self._raw()
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


class _Plain:
    """An uncompressed tar stream (``git archive`` output), handed out as :class:`_Inflater` hands out its bytes."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f

    def _raw(self, n: int) -> bytes:
        try:
            return self._f.read(n)
        except OSError as e:
            raise StorageError(f"cannot read archive: {e.strerror or e}") from e

    def read(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or fewer only at the end of the stream."""
        pieces: list[bytes] = []
        got = 0
        while got < n and (piece := self._raw(min(n - got, _INFLATE))):
            pieces.append(piece)
            got += len(piece)
        return b"".join(pieces)

    def copy(self, n: int, write: Callable[[memoryview], object] | None) -> int:
        """Pass the next ``n`` bytes to ``write`` (or drop them); returns how many there were."""
        done = 0
        while done < n and (piece := self._raw(min(n - done, _INFLATE))):
            done += len(piece)
            if write is not None:
                write(memoryview(piece))
        return done


@dataclass(slots=True)
class _Header:
    name: bytes
    mode: int
    size: int
    typeflag: bytes
    linkname: bytes


def _show(name: bytes) -> str:
    """An entry name for a message: decoded, and cut short (a hostile name can be a megabyte)."""
    text = name[: _SHOWN * 4].decode("utf-8", "backslashreplace")
    return text if len(text) <= _SHOWN and len(name) <= _SHOWN * 4 else text[:_SHOWN] + "..."


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
    typeflag = block[156:157]
    if typeflag == b"\0" and name.endswith(b"/"):
        typeflag = b"5"  # pre-POSIX writers marked directories by the slash alone; tarfile and Go agree
    return _Header(
        name=name,
        mode=_number(block[100:108], "mode", name),
        size=_number(block[124:136], "size", name),
        typeflag=typeflag,
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
        if key in _PAX_KEYS:
            records[key] = value
        pos += length
    return records


def _safe_parts(name: bytes) -> list[bytes]:
    """The path components of an entry name, or UnsafeArchive saying why it is not allowed."""
    if not name:
        raise UnsafePath("empty entry name", entry="")
    if len(name) > MAX_NAME_BYTES:
        raise ArchiveLimitExceeded(f"entry name longer than {MAX_NAME_BYTES} bytes", entry=_show(name))
    if name.startswith(b"/"):
        raise UnsafePath("absolute path in archive", entry=_show(name))
    if b"\\" in name or b"\0" in name:
        raise UnsafePath("backslash or NUL in entry name", entry=_show(name))
    parts = [p for p in name.split(b"/") if p not in (b"", b".")]
    if b".." in parts:
        raise UnsafePath("path traversal ('..') in archive", entry=_show(name))
    if any(len(p) > MAX_COMPONENT_BYTES for p in parts):
        raise ArchiveLimitExceeded(f"path component longer than {MAX_COMPONENT_BYTES} bytes", entry=_show(name))
    return parts


class _Layout:
    """Which paths are directories and which files so far, as a tree of ids: memory linear in the names."""

    def __init__(self) -> None:
        self._dirs: dict[tuple[int, bytes], int] = {}
        self._files: set[tuple[int, bytes]] = set()

    @property
    def nodes(self) -> int:
        return len(self._dirs) + len(self._files)

    def add(self, parts: list[bytes], is_dir: bool, name: bytes) -> int:
        """Record an entry; returns how many of its parent directories are new. Refuses clashes."""
        parent, new = 0, 0
        for part in parts[:-1]:
            key = (parent, part)
            if key in self._files:
                raise UnsafeArchive("entry goes where an earlier entry made a file", entry=_show(name))
            found = self._dirs.get(key)
            if found is None:
                found = self._dirs[key] = len(self._dirs) + 1
                new += 1
            parent = found
        key = (parent, parts[-1])
        if key in self._files:
            what = "entry goes where an earlier entry made a file" if is_dir else "duplicate entry in archive"
            raise UnsafeArchive(what, entry=_show(name))
        if is_dir:
            self._dirs.setdefault(key, len(self._dirs) + 1)
        elif key in self._dirs:
            raise UnsafeArchive("file entry where an earlier entry made a directory", entry=_show(name))
        else:
            self._files.add(key)
        return new


class TarReader:
    """The checked entries of one tar.gz stream, in order (blocking); see the module docstring for the rules.

    Iterate once. While an entry is current, :meth:`copy` or :meth:`read` may take its data (once); data
    not taken is skipped when the next header is read. :attr:`result` is complete when iteration ends.
    """

    def __init__(
        self, f: IO[bytes], limits: ExtractLimits, *, check: EntryCheck | None = None, gzip: bool = True
    ) -> None:
        # gzip=False: a plain tar stream (git archive's, repacked into an artifact by the producer)
        self._src: _Inflater | _Plain = _Inflater(f) if gzip else _Plain(f)
        self._limits = limits
        self._check = check
        self._layout = _Layout()
        #: the current file entry's name and the bytes of data it still has, then its padding
        self._current = b""
        self._unread = 0
        self._padding = 0
        self.result = ExtractResult(files=0, dirs=0, bytes=0)

    def copy(self, write: Callable[[memoryview], object]) -> None:
        """Pass the current file entry's data to ``write``, in pieces of at most 1 MiB."""
        size, self._unread = self._unread, 0
        if self._src.copy(size, write) != size:
            raise CorruptArchive("archive ends inside an entry", entry=_show(self._current))

    def read(self) -> bytes:
        """The current file entry's data (at most ``max_file_bytes``, or the total cap, by the checks)."""
        size, self._unread = self._unread, 0
        data = self._src.read(size)
        if len(data) != size:
            raise CorruptArchive("archive ends inside an entry", entry=_show(self._current))
        return data

    def _skip_rest(self) -> None:
        rest = self._unread + self._padding
        self._unread = self._padding = 0
        if self._src.copy(rest, None) != rest:
            raise CorruptArchive("archive ends inside an entry", entry=_show(self._current))

    def __iter__(self) -> Iterator[ArchiveEntry]:
        limits = self._limits
        total = entries = files = dirs = skipped = 0
        long_name: bytes | None = None
        long_link: bytes | None = None
        pax: dict[bytes, bytes] = {}
        while True:
            self._skip_rest()
            block = self._src.read(_BLOCK)
            if not block or block == _ZERO:
                # A clean end (zero block, or none at all as some writers do) only between entries.
                if long_name is not None or long_link is not None or pax:
                    raise CorruptArchive("archive ends after an extended header", entry=_show(self._current))
                self.result = ExtractResult(files=files, dirs=dirs, bytes=total, skipped_symlinks=skipped)
                return
            if len(block) < _BLOCK:
                raise CorruptArchive("archive ends inside a header", entry=_show(self._current))
            header = _parse_header(block)
            name = header.name
            typeflag = header.typeflag
            if typeflag in (b"x", b"g", b"L", b"K"):
                # Extended headers count against the byte cap too, or a run of them would be a bomb.
                total += header.size + _BLOCK
                if header.size > MAX_EXTENDED_HEADER or total > limits.max_total_bytes:
                    raise ArchiveLimitExceeded(
                        f"extended header of {header.size} bytes over the limit", entry=_show(long_name or name)
                    )
                data = self._src.read(header.size)
                if len(data) < header.size:
                    raise CorruptArchive("archive ends inside an extended header", entry=_show(name))
                self._src.copy(-header.size % _BLOCK, None)
                if typeflag == b"x":
                    pax.update(_parse_pax(data, name))
                elif typeflag == b"L":
                    long_name = _cstring(data)
                elif typeflag == b"K":
                    long_link = _cstring(data)
                continue
            name = pax.get(b"path", long_name if long_name is not None else name)
            linkname = pax.get(b"linkpath", long_link if long_link is not None else header.linkname)
            size = header.size
            if b"size" in pax:
                if not pax[b"size"].isdigit():
                    raise CorruptArchive("bad size in pax header", entry=_show(name))
                size = int(pax[b"size"])
            long_name, long_link, pax = None, None, {}
            self._current, self._unread, self._padding = name, 0, 0

            entries += 1
            if entries > limits.max_entries:
                raise ArchiveLimitExceeded(f"archive has more than {limits.max_entries} entries", entry=_show(name))
            parts = _safe_parts(name)
            if typeflag == b"2":
                if size:
                    raise CorruptArchive(f"symlink entry with {size} bytes of data", entry=_show(name))
                if limits.skip_symlinks:
                    skipped += 1
                    continue
                raise UnsafeArchive(
                    f"symlink to {_show(linkname)!r} in archive; links are not allowed", entry=_show(name)
                )
            if typeflag in _FORBIDDEN:
                kind = _FORBIDDEN[typeflag]
                raise UnsafeArchive(f"{kind} in archive; only files and directories are allowed", entry=_show(name))
            if typeflag not in _REGULAR and typeflag != b"5":
                raise UnsafeArchive(f"unsupported entry type {typeflag!r}", entry=_show(name))
            is_dir = typeflag == b"5"
            if is_dir:
                if size:
                    raise CorruptArchive(f"directory entry with {size} bytes of data", entry=_show(name))
            else:
                if limits.max_file_bytes is not None and size > limits.max_file_bytes:
                    raise ArchiveLimitExceeded(
                        f"file of {size} bytes over the limit of {limits.max_file_bytes} bytes per file",
                        entry=_show(name),
                    )
                total += size
                if total > limits.max_total_bytes:
                    raise ArchiveLimitExceeded(
                        f"archive unpacks to more than {limits.max_total_bytes} bytes", entry=_show(name)
                    )
                self._unread, self._padding = size, -size % _BLOCK
            if not parts:
                if not is_dir:
                    raise UnsafePath("file entry names the destination itself", entry=_show(name))
                continue
            new_dirs = self._layout.add(parts, is_dir, name)
            if self._layout.nodes > limits.max_entries:
                raise ArchiveLimitExceeded(
                    f"archive has more than {limits.max_entries} entries (counting the directories they imply)",
                    entry=_show(name),
                )
            entry = ArchiveEntry(
                name=_show(name),
                path="/".join(p.decode("utf-8", "surrogateescape") for p in parts),
                is_dir=is_dir,
                mode=header.mode,
                size=0 if is_dir else size,
                new_dirs=new_dirs,
            )
            if self._check is not None:
                self._check(entry)
            if is_dir:
                dirs += 1
            else:
                files += 1
            yield entry


def read_members(
    tar_gz_path: Path,
    want: Callable[[ArchiveEntry], bool],
    limits: ExtractLimits,
    *,
    check: EntryCheck | None = None,
) -> dict[str, bytes]:
    """Check every entry as :func:`.extract.safe_extract` does, writing nothing (blocking).

    Returns the data of the files ``want`` picks, by normalised path: held in memory, so each is at most
    ``limits.max_file_bytes`` (or the total cap) - pick a few small ones, like a chart's Chart.yaml.
    """
    found: dict[str, bytes] = {}
    with open_archive(tar_gz_path) as f:
        reader = TarReader(f, limits, check=check)
        for entry in reader:
            if not entry.is_dir and want(entry):
                found[entry.path] = reader.read()
    return found


def open_archive(path: Path) -> BinaryIO:
    """``path`` opened for reading; a failure is the disk's (StorageError), not the archive's."""
    try:
        return path.open("rb")
    except OSError as e:
        raise StorageError(f"cannot open archive {path.name}: {e.strerror or e}") from e
