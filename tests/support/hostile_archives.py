"""One corpus of hostile tar.gz archives, for every caller of the archive reader (artifacts and Helm charts).

Every archive starts like a chart (``demo/`` and a valid ``demo/Chart.yaml``), so a chart loader gets past
its own rules and meets the hostile entry, and an artifact unpack meets the same entry. Archives are
written through zlib as they are made: a bomb is never held in memory, here or in the test.
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gitops_mesh.artifacts.errors import ArchiveLimitExceeded, CorruptArchive, UnsafeArchive, UnsafePath
from gitops_mesh.artifacts.untar import ExtractLimits

#: The limits every caller gets in the corpus tests: small, so the caps are reached quickly.
LIMITS = ExtractLimits(max_total_bytes=1 << 20, max_entries=64)
#: Size of the extended-header and gzip bombs: far above any cap and any memory a test may use.
BOMB = 64 << 20
CHART_YAML = b"apiVersion: v2\nname: demo\nversion: 1.0.0\n"


class TarGzStream:
    """Writes a tar stream through gzip to ``path`` piece by piece, with any header a hostile writer could."""

    def __init__(self, path: Path) -> None:
        self._out = path.open("wb")
        self._z = zlib.compressobj(6, zlib.DEFLATED, 31)

    def raw(self, data: bytes) -> None:
        self._out.write(self._z.compress(data))

    def fill(self, size: int, byte: bytes = b"\0", *, pad: bool = True) -> None:
        """``size`` bytes of ``byte`` (and the padding to the next block), a MiB at a time."""
        chunk = byte * min(size, 1 << 20)
        for offset in range(0, size, len(chunk)):
            self.raw(chunk[: min(len(chunk), size - offset)])
        if pad:
            self.raw(bytes(-size % 512))

    def header(
        self, name: str, *, type: bytes = tarfile.REGTYPE, size: int = 0, linkname: str = "", mode: int = 0o644
    ) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.size, info.linkname, info.mode = type, size, linkname, mode
        self.raw(info.tobuf(tarfile.USTAR_FORMAT if len(name) <= 100 else tarfile.PAX_FORMAT))

    def file(self, name: str, data: bytes, *, mode: int = 0o644) -> None:
        self.header(name, size=len(data), mode=mode)
        self.raw(data + bytes(-len(data) % 512))

    def close(self) -> None:
        self.raw(bytes(1024))
        self._out.write(self._z.flush())
        self._out.close()


@dataclass(frozen=True)
class Hostile:
    """One hostile archive and the refusal every caller must give: the reader's error, message and entry."""

    id: str
    write: Callable[[TarGzStream], None]
    error: type[UnsafeArchive]
    match: str
    entry: str | None
    limits: ExtractLimits = field(default=LIMITS)

    def build(self, path: Path) -> Path:
        stream = TarGzStream(path)
        stream.header("demo/", type=tarfile.DIRTYPE, mode=0o755)
        stream.file("demo/Chart.yaml", CHART_YAML)
        self.write(stream)
        stream.close()
        return path


def _files(*entries: tuple[str, bytes]) -> Callable[[TarGzStream], None]:
    def write(s: TarGzStream) -> None:
        for name, data in entries:
            s.file(name, data)

    return write


def _one(name: str, **kwargs: object) -> Callable[[TarGzStream], None]:
    def write(s: TarGzStream) -> None:
        s.header(name, **kwargs)  # type: ignore[arg-type]

    return write


def _symlink_then_through(s: TarGzStream) -> None:
    s.header("demo/escape", type=tarfile.SYMTYPE, linkname="../../../..")
    s.file("demo/escape/evil.yaml", b"written through the link")


def _many(s: TarGzStream) -> None:
    for i in range(100):
        s.file(f"demo/f{i:02}.yaml", b"x")


def _implied_dirs(s: TarGzStream) -> None:
    for i in range(40):
        s.file(f"demo/d{i:02}/x/f", b"")  # one header, two new directories and a file


def _large_total(s: TarGzStream) -> None:
    for i in range(4):
        s.header(f"demo/big{i}.bin", size=400 << 10)
        s.fill(400 << 10)


def _gzip_bomb(s: TarGzStream) -> None:
    s.header("demo/bomb.bin", size=4 * BOMB)
    s.fill(4 * BOMB)


def _pax_bomb(s: TarGzStream) -> None:
    # One well-formed pax record as long as the whole header: tarfile would buffer and parse all of it.
    prefix = b"%d path=" % BOMB
    s.header("demo/PaxHeader/evil", type=tarfile.XHDTYPE, size=BOMB)
    s.raw(prefix)
    s.fill(BOMB - len(prefix) - 1, b"a", pad=False)
    s.raw(b"\n")  # BOMB bytes in all, a whole number of blocks
    s.file("demo/evil.yaml", b"x")


def _gnu_long_name_bomb(s: TarGzStream) -> None:
    s.header("././@LongLink", type=tarfile.GNUTYPE_LONGNAME, size=BOMB)
    s.fill(BOMB, b"a")
    s.file("demo/evil.yaml", b"x")


def _pax_headers_add_up(s: TarGzStream) -> None:
    record = b"%d comment=" % (600 << 10)
    for _ in range(2):
        s.header("demo/PaxHeader/big", type=tarfile.XHDTYPE, size=600 << 10)
        s.raw(record)
        s.fill((600 << 10) - len(record) - 1, b"c", pad=False)
        s.raw(b"\n")
    s.file("demo/after.yaml", b"x")


def _symlink_with_data(s: TarGzStream) -> None:
    # Other readers ignore a symlink's data; one that read it would find this header, "demo/hidden.yaml".
    s.header("demo/link", type=tarfile.SYMTYPE, linkname="values.yaml", size=1024)
    hidden = tarfile.TarInfo("demo/hidden.yaml")
    s.raw(hidden.tobuf(tarfile.USTAR_FORMAT) + bytes(512))


LONG_NAME = "demo/" + "a/" * 2100 + "x"

CORPUS: list[Hostile] = [
    Hostile("absolute-path", _files(("/etc/evil.yaml", b"x")), UnsafePath, "absolute path", "/etc/evil.yaml"),
    Hostile(
        "dot-dot",
        _files(("demo/../../evil.yaml", b"x")),
        UnsafePath,
        r"path traversal \('..'\)",
        "demo/../../evil.yaml",
    ),
    Hostile("trailing-dot-dot", _files(("demo/templates/..", b"x")), UnsafePath, "path traversal", "demo/templates/.."),
    Hostile("backslash", _files(("demo\\..\\..\\evil", b"x")), UnsafePath, "backslash", "demo\\..\\..\\evil"),
    Hostile(
        "symlink-out",
        _one("demo/templates/passwd", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
        UnsafeArchive,
        "symlink to '/etc/passwd' in archive; links are not allowed",
        "demo/templates/passwd",
    ),
    Hostile(
        "symlink-then-file-through-it",
        _symlink_then_through,
        UnsafeArchive,
        "symlink to '../../../..'",
        "demo/escape",
    ),
    Hostile(
        "symlink-with-data", _symlink_with_data, CorruptArchive, "symlink entry with 1024 bytes of data", "demo/link"
    ),
    Hostile(
        "hardlink-out",
        _one("demo/hl", type=tarfile.LNKTYPE, linkname="/etc/passwd"),
        UnsafeArchive,
        "hard link in archive",
        "demo/hl",
    ),
    Hostile(
        "hardlink-inside",
        _one("demo/hl", type=tarfile.LNKTYPE, linkname="demo/Chart.yaml"),
        UnsafeArchive,
        "hard link in archive",
        "demo/hl",
    ),
    Hostile("char-device", _one("demo/null", type=tarfile.CHRTYPE), UnsafeArchive, "character device", "demo/null"),
    Hostile("block-device", _one("demo/sda", type=tarfile.BLKTYPE), UnsafeArchive, "block device", "demo/sda"),
    Hostile("fifo", _one("demo/pipe", type=tarfile.FIFOTYPE), UnsafeArchive, "fifo", "demo/pipe"),
    # "demo/" and Chart.yaml are entries 1 and 2, so the 65th entry is f62.
    Hostile("too-many-entries", _many, ArchiveLimitExceeded, "more than 64 entries", "demo/f62.yaml"),
    # Nodes after entry i: demo, Chart.yaml and three per entry: 2 + 3 * (i + 1) > 64 first at i = 20.
    Hostile(
        "implied-directories-count",
        _implied_dirs,
        ArchiveLimitExceeded,
        "more than 64 entries \\(counting the directories they imply\\)",
        "demo/d20/x/f",
    ),
    Hostile(
        "too-large-in-total",
        _large_total,
        ArchiveLimitExceeded,
        f"unpacks to more than {1 << 20} bytes",
        "demo/big2.bin",
    ),
    Hostile(
        "file-over-per-file-cap",
        _files(("demo/values.yaml", bytes(600 << 10))),
        ArchiveLimitExceeded,
        f"file of {600 << 10} bytes over the limit of {512 << 10} bytes per file",
        "demo/values.yaml",
        ExtractLimits(max_total_bytes=1 << 20, max_entries=64, max_file_bytes=512 << 10),
    ),
    Hostile("gzip-bomb", _gzip_bomb, ArchiveLimitExceeded, f"unpacks to more than {1 << 20} bytes", "demo/bomb.bin"),
    Hostile(
        "pax-header-bomb", _pax_bomb, ArchiveLimitExceeded, f"extended header of {BOMB} bytes", "demo/PaxHeader/evil"
    ),
    Hostile(
        "gnu-long-name-bomb",
        _gnu_long_name_bomb,
        ArchiveLimitExceeded,
        f"extended header of {BOMB} bytes",
        "././@LongLink",
    ),
    Hostile(
        "pax-headers-count-against-the-total",
        _pax_headers_add_up,
        ArchiveLimitExceeded,
        f"extended header of {600 << 10} bytes over the limit",
        "demo/PaxHeader/big",
    ),
    Hostile(
        "name-longer-than-path-max",
        _files((LONG_NAME, b"x")),
        ArchiveLimitExceeded,
        "longer than 4096 bytes",
        LONG_NAME[:200] + "...",  # messages show a hostile name cut short
    ),
    Hostile(
        "duplicate-file",
        _files(("demo/values.yaml", b"a: 1\n"), ("demo/values.yaml", b"a: 2\n")),
        UnsafeArchive,
        "duplicate entry",
        "demo/values.yaml",
    ),
    Hostile(
        "duplicate-chart-yaml",
        _files(("demo/Chart.yaml", b"apiVersion: v2\nname: other\nversion: 6.6.6\n")),
        UnsafeArchive,
        "duplicate entry",
        "demo/Chart.yaml",
    ),
    Hostile(
        "file-then-directory",
        _files(("demo/templates", b"a file"), ("demo/templates/a.yaml", b"x")),
        UnsafeArchive,
        "earlier entry made a file",
        "demo/templates/a.yaml",
    ),
    Hostile(
        "directory-then-file",
        _files(("demo/templates/a.yaml", b"x"), ("demo/templates", b"a file")),
        UnsafeArchive,
        "earlier entry made a directory",
        "demo/templates",
    ),
]


#: The issue's pax header: 400 MiB, declared by the first member of a ~400 KB chart.
ISSUE_PAX_HEADER = 400 << 20


def pax_header_first(path: Path, size: int = ISSUE_PAX_HEADER, *, key: bytes = b"path") -> Path:
    """The issue's chart: a .tgz whose first member is a ``size``-byte pax header (one ``key`` record), then Chart.yaml.

    Written as gzip members, which every gzip reader concatenates: a 1 MiB run of the record is compressed
    once (to about 1 KB) and repeated, so 400 MiB of header cost milliseconds and ~400 KB, never memory.
    """
    head = tarfile.TarInfo("demo/PaxHeader/evil")
    head.type, head.size = tarfile.XHDTYPE, size
    record = b"%d %s=" % (size, key)
    run = size - len(record) - 1
    chunk = 1 << 20
    tail = tarfile.TarInfo("demo/Chart.yaml")
    tail.size = len(CHART_YAML)
    with path.open("wb") as out:
        out.write(zlib.compress(head.tobuf(tarfile.USTAR_FORMAT) + record, 9, 31))
        block = zlib.compress(b"a" * chunk, 9, 31)
        for _ in range(run // chunk):
            out.write(block)
        rest = b"a" * (run % chunk) + b"\n" + bytes(-size % 512)
        rest += tail.tobuf(tarfile.USTAR_FORMAT) + CHART_YAML + bytes(-len(CHART_YAML) % 512) + bytes(1024)
        out.write(zlib.compress(rest, 9, 31))
    return path
