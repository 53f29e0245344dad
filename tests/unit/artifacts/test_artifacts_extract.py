"""safe_extract() and read_members() against tarballs made here with tarfile, and the TreeCache's sharing and eviction.

The hostile corpus shared with the Helm chart loader is tests/unit/source/test_hostile_archives.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import stat
import tarfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitops_mesh.artifacts.archive import pack
from gitops_mesh.artifacts.errors import (
    ArchiveLimitExceeded,
    ArtifactError,
    ArtifactUnavailable,
    CorruptArchive,
    StorageError,
    UnsafeArchive,
)
from gitops_mesh.artifacts.extract import ExtractLimits, TreeCache, safe_extract
from gitops_mesh.artifacts.untar import ArchiveEntry, read_members

from .support import make_tar_gz, snapshot, tar_member, write_tree

CAPS = ExtractLimits(max_total_bytes=1 << 20, max_entries=100)


def extract(archive: Path, dest: Path, **fields: Any) -> None:
    """Extract under the test caps, with ``fields`` of ExtractLimits changed."""
    safe_extract(archive, dest, dataclasses.replace(CAPS, **fields))


def nothing_outside(tmp_path: Path, dest: Path) -> None:
    """Only the archive and the destination exist in the test's directory."""
    assert {p.name for p in tmp_path.iterdir()} <= {"a.tgz", dest.name}


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("/etc/evil.conf", "absolute path"),
        ("../evil.yaml", r"path traversal \('..'\)"),
        ("ok/../../evil.yaml", r"path traversal \('..'\)"),
        ("ok/..", r"path traversal \('..'\)"),
        ("ok\\..\\..\\evil", "backslash"),
    ],
)
def test_bad_names_are_rejected_naming_the_entry(tmp_path: Path, name: str, why: str) -> None:
    archive = make_tar_gz(tmp_path / "a.tgz", [tar_member("fine.yaml", b"x"), tar_member(name, b"evil")])
    with tarfile.open(archive) as tar:
        assert tar.getnames()[1] == name, "tarfile wrote the hostile name as is"
    with pytest.raises(UnsafeArchive, match=why) as caught:
        extract(archive, tmp_path / "out")
    assert caught.value.entry == name
    assert repr(name) in str(caught.value)
    nothing_outside(tmp_path, tmp_path / "out")


def test_symlink_to_etc_is_rejected(tmp_path: Path) -> None:
    archive = make_tar_gz(tmp_path / "a.tgz", [tar_member("etc", type=tarfile.SYMTYPE, linkname="/etc")])
    with pytest.raises(UnsafeArchive, match=r"symlink to '/etc' in archive") as caught:
        extract(archive, tmp_path / "out")
    assert caught.value.entry == "etc"
    assert not (tmp_path / "out" / "etc").exists()


def test_skip_symlinks_drops_links_and_a_path_through_one_stays_inside(tmp_path: Path) -> None:
    archive = make_tar_gz(
        tmp_path / "a.tgz",
        [
            tar_member("link", type=tarfile.SYMTYPE, linkname=str(tmp_path)),
            tar_member("link/escaped.yaml", b"would land next to the archive"),
            tar_member("kept.yaml", b"kept"),
        ],
    )
    result = safe_extract(archive, tmp_path / "out", ExtractLimits(skip_symlinks=True))
    assert (result.files, result.dirs, result.skipped_symlinks) == (2, 0, 1), "a skipped link is reported"
    assert snapshot(tmp_path / "out") == {
        "link": ("dir", b"", 0o750),
        "link/escaped.yaml": ("file", b"would land next to the archive", 0o644),
        "kept.yaml": ("file", b"kept", 0o644),
    }
    nothing_outside(tmp_path, tmp_path / "out")


@pytest.mark.parametrize("target", ["/etc/passwd", "../outside", "inside.yaml"])
def test_hard_links_are_rejected(tmp_path: Path, target: str) -> None:
    archive = make_tar_gz(
        tmp_path / "a.tgz", [tar_member("inside.yaml", b"x"), tar_member("hl", type=tarfile.LNKTYPE, linkname=target)]
    )
    with pytest.raises(UnsafeArchive, match="hard link in archive") as caught:
        extract(archive, tmp_path / "out", skip_symlinks=True)
    assert caught.value.entry == "hl"


@pytest.mark.parametrize(
    ("type", "kind"),
    [(tarfile.CHRTYPE, "character device"), (tarfile.BLKTYPE, "block device"), (tarfile.FIFOTYPE, "fifo")],
)
def test_device_files_and_fifos_are_rejected(tmp_path: Path, type: bytes, kind: str) -> None:
    archive = make_tar_gz(tmp_path / "a.tgz", [tar_member("dev/thing", type=type)])
    with pytest.raises(UnsafeArchive, match=kind) as caught:
        extract(archive, tmp_path / "out")
    assert caught.value.entry == "dev/thing"
    assert not (tmp_path / "out" / "dev" / "thing").exists()


def test_unknown_entry_types_are_rejected(tmp_path: Path) -> None:
    archive = make_tar_gz(tmp_path / "a.tgz", [tar_member("sparse", type=tarfile.GNUTYPE_SPARSE)])
    with pytest.raises(UnsafeArchive, match="unsupported entry type") as caught:
        extract(archive, tmp_path / "out")
    assert caught.value.entry == "sparse"


def test_too_many_entries_stop_at_the_first_one_over(tmp_path: Path) -> None:
    archive = make_tar_gz(tmp_path / "a.tgz", [tar_member(f"f{i:02}.yaml", b"x") for i in range(20)])
    with pytest.raises(ArchiveLimitExceeded, match="more than 5 entries") as caught:
        extract(archive, tmp_path / "out", max_entries=5)
    assert caught.value.entry == "f05.yaml"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"f{i:02}.yaml" for i in range(5)]


def _bomb(path: Path, entries: list[tuple[str, int]]) -> Path:
    """A tar.gz of files full of zeros, streamed through zlib so the test never holds them in memory."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    with path.open("wb") as out:
        for name, size in entries:
            info = tarfile.TarInfo(name)
            info.size = size
            out.write(z.compress(info.tobuf(tarfile.USTAR_FORMAT)))
            for offset in range(0, size, len(zeros)):
                out.write(z.compress(zeros[: min(len(zeros), size - offset)]))
            out.write(z.compress(bytes(-size % 512)))
        out.write(z.compress(bytes(1024)))
        out.write(z.flush())
    return path


def test_gzip_bomb_entry_is_refused_before_any_byte_is_written(tmp_path: Path) -> None:
    archive = _bomb(tmp_path / "a.tgz", [("small.yaml", 100), ("bomb.bin", 64 << 20)])
    assert archive.stat().st_size < 1 << 20, "a real bomb: a small file that inflates to 64 MiB"
    with pytest.raises(ArchiveLimitExceeded, match=f"more than {1 << 20} bytes") as caught:
        extract(archive, tmp_path / "out")
    assert caught.value.entry == "bomb.bin"
    assert not (tmp_path / "out" / "bomb.bin").exists()


def test_many_small_entries_over_the_total_stop_early(tmp_path: Path) -> None:
    archive = _bomb(tmp_path / "a.tgz", [(f"part{i:03}.bin", 256 << 10) for i in range(400)])
    with pytest.raises(ArchiveLimitExceeded) as caught:
        extract(archive, tmp_path / "out")
    assert caught.value.entry == "part004.bin"
    assert len(list((tmp_path / "out").iterdir())) == 4


def test_huge_extended_header_is_refused(tmp_path: Path) -> None:
    long_name = "d/" * (700 << 10) + "f"  # a pax path record of 1.4 MiB
    archive = make_tar_gz(tmp_path / "a.tgz", [tar_member(long_name, b"x")])
    with pytest.raises(ArchiveLimitExceeded, match="extended header"):
        extract(archive, tmp_path / "out", max_total_bytes=64 << 20)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not gzip at all", "not a valid gzip stream"),
        (b"", "truncated gzip stream"),
    ],
)
def test_not_gzip_is_corrupt(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "a.tgz").write_bytes(content)
    with pytest.raises(CorruptArchive, match=message):
        extract(tmp_path / "a.tgz", tmp_path / "out")


def test_truncated_archive_is_corrupt_and_names_the_entry(tmp_path: Path) -> None:
    good = make_tar_gz(tmp_path / "good.tgz", [tar_member("a.yaml", b"a" * 5000), tar_member("b.yaml", b"b" * 5000)])
    inflated = zlib.decompress(good.read_bytes(), 31)
    (tmp_path / "a.tgz").write_bytes(zlib.compress(inflated[:2000], wbits=31))
    with pytest.raises(CorruptArchive, match="ends inside an entry") as caught:
        extract(tmp_path / "a.tgz", tmp_path / "out")
    assert caught.value.entry == "a.yaml"


def test_gzip_of_garbage_fails_the_header_checksum(tmp_path: Path) -> None:
    (tmp_path / "a.tgz").write_bytes(zlib.compress(b"garbage" * 200, wbits=31))
    with pytest.raises(CorruptArchive, match="checksum"):
        extract(tmp_path / "a.tgz", tmp_path / "out")


def test_a_file_cannot_become_a_directory(tmp_path: Path) -> None:
    archive = make_tar_gz(tmp_path / "a.tgz", [tar_member("a", b"file"), tar_member("a/b", b"inside")])
    with pytest.raises(UnsafeArchive, match="earlier entry made a file") as caught:
        extract(archive, tmp_path / "out")
    assert caught.value.entry == "a/b"


def test_read_members_keeps_what_is_wanted_and_still_checks_every_entry(tmp_path: Path) -> None:
    members = [tar_member("./app/Chart.yaml", b"name: app\n"), tar_member("app/big.bin", bytes(4096))]
    archive = make_tar_gz(tmp_path / "a.tgz", members)
    limits = ExtractLimits(max_file_bytes=4096)
    assert read_members(archive, lambda e: e.path.endswith(".yaml"), limits) == {"app/Chart.yaml": b"name: app\n"}
    archive = make_tar_gz(tmp_path / "b.tgz", [*members, tar_member("app/link", type=tarfile.SYMTYPE, linkname="/")])
    with pytest.raises(UnsafeArchive, match="symlink") as caught:
        read_members(archive, lambda e: True, limits)
    assert caught.value.entry == "app/link", "an entry after the wanted ones is still checked"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tgz", "b.tgz"], "nothing is written"


def test_a_callers_check_runs_before_the_entry_is_written(tmp_path: Path) -> None:
    archive = make_tar_gz(tmp_path / "a.tgz", [tar_member("ok.yaml", b"x"), tar_member("secret.key", b"k")])
    seen: list[ArchiveEntry] = []

    def check(entry: ArchiveEntry) -> None:
        seen.append(entry)
        if entry.path.endswith(".key"):
            raise UnsafeArchive("no keys here", entry=entry.name)

    with pytest.raises(UnsafeArchive, match="no keys here"):
        safe_extract(archive, tmp_path / "out", check=check)
    assert [(e.path, e.size, e.is_dir) for e in seen] == [("ok.yaml", 1, False), ("secret.key", 1, False)]
    assert os.listdir(tmp_path / "out") == ["ok.yaml"]


def test_a_slash_marks_a_directory_in_pre_posix_archives(tmp_path: Path) -> None:
    stream = zlib.compressobj(6, zlib.DEFLATED, 31)
    info = tarfile.TarInfo("conf/")
    info.type = tarfile.AREGTYPE
    data = stream.compress(info.tobuf(tarfile.USTAR_FORMAT) + bytes(1024)) + stream.flush()
    (tmp_path / "a.tgz").write_bytes(data)
    result = safe_extract(tmp_path / "a.tgz", tmp_path / "out")
    assert (result.files, result.dirs) == (0, 1)
    assert (tmp_path / "out" / "conf").is_dir()


def test_an_unreadable_archive_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"cannot open archive missing\.tgz"):
        safe_extract(tmp_path / "missing.tgz", tmp_path / "out")


def test_destination_must_be_empty(tmp_path: Path) -> None:
    archive = make_tar_gz(tmp_path / "a.tgz", [tar_member("a", b"x")])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to("/etc")
    with pytest.raises(ValueError, match="must be empty"):
        extract(archive, tmp_path / "out")


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_other_writers_archives_are_read(tmp_path: Path, fmt: int) -> None:
    long = "deep/" + "n" * 90 + "/" + "m" * 90 + ".yaml"  # needs a prefix (ustar), longname (gnu) or pax
    entries = [
        tar_member(".", type=tarfile.DIRTYPE, mode=0o750),  # Flux's archives start with the root as "."
        tar_member("./deploy", type=tarfile.DIRTYPE, mode=0o755),
        tar_member("./deploy/app.yaml", b"kind: Deployment\n", mode=0o4755),
        tar_member("locked.yaml", b"mode 000", mode=0o000),
        tar_member(long, b"long"),
    ]
    make_tar_gz(tmp_path / "a.tgz", entries, format=fmt)
    extract(tmp_path / "a.tgz", tmp_path / "out")
    out = tmp_path / "out"
    assert (out / "deploy/app.yaml").read_bytes() == b"kind: Deployment\n"
    assert not (out / "deploy/app.yaml").stat().st_mode & stat.S_ISUID, "set-id bits are never restored"
    assert (out / "locked.yaml").stat().st_mode & 0o600 == 0o600, "owner can always read and write"
    assert (out / long).read_bytes() == b"long"


# TreeCache


def archive_of(tmp_path: Path, files: dict[str, bytes], name: str) -> tuple[Path, str]:
    src = write_tree(tmp_path / f"src-{name}", files)
    result = pack(src, tmp_path / f"{name}.tgz")
    return tmp_path / f"{name}.tgz", result.digest


class Downloads:
    """Counts downloads and copies the prepared archive; optionally slow, or failing."""

    def __init__(self, archive: Path, *, delay: float = 0.0, fail: BaseException | None = None) -> None:
        self.archive = archive
        self.delay = delay
        self.fail = fail
        self.calls = 0

    async def __call__(self, dest: Path) -> None:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        shutil.copyfile(self.archive, dest)


async def test_concurrent_callers_of_one_digest_share_one_download_and_unpack(tmp_path: Path) -> None:
    archive, digest = archive_of(tmp_path, {"app.yaml": b"app"}, "a")
    cache = TreeCache(tmp_path / "cache", max_entries=4)
    download = Downloads(archive, delay=0.05)

    async def use() -> bytes:
        async with cache.tree(digest, download) as tree:
            await asyncio.sleep(0.01)
            return (tree / "app.yaml").read_bytes()

    assert await asyncio.gather(*(use() for _ in range(10))) == [b"app"] * 10
    assert download.calls == 1
    async with cache.tree(digest, download) as tree:
        assert tree.name == digest.replace(":", "-")
    assert download.calls == 1, "a later caller hits the cache"


async def test_least_recently_used_unleased_trees_are_evicted(tmp_path: Path) -> None:
    cache = TreeCache(tmp_path / "cache", max_entries=2)
    sources = {n: archive_of(tmp_path, {f"{n}.yaml": n.encode()}, n) for n in "abcd"}
    paths: dict[str, Path] = {}
    async with cache.tree(sources["a"][1], Downloads(sources["a"][0])) as held:
        paths["a"] = held
        for n in "bcd":
            async with cache.tree(sources[n][1], Downloads(sources[n][0])) as tree:
                paths[n] = tree
        assert (held / "a.yaml").read_bytes() == b"a", "a leased tree is never evicted"
    assert len(cache) == 2
    assert not paths["b"].exists()
    assert not paths["c"].exists()
    assert paths["d"].exists()
    assert paths["a"].exists()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted([paths["a"].name, paths["d"].name])


async def test_a_failed_download_reaches_every_waiter_and_the_next_call_retries(tmp_path: Path) -> None:
    archive, digest = archive_of(tmp_path, {"app.yaml": b"app"}, "a")
    cache = TreeCache(tmp_path / "cache")
    failing = Downloads(archive, delay=0.02, fail=ArtifactUnavailable("source away", url="http://x"))

    async def use() -> None:
        async with cache.tree(digest, failing):
            pass

    results = await asyncio.gather(*(use() for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, ArtifactUnavailable) for r in results)
    assert failing.calls == 1
    working = Downloads(archive)
    async with cache.tree(digest, working) as tree:
        assert (tree / "app.yaml").read_bytes() == b"app"
    assert working.calls == 1
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")], "no staging left behind"


async def test_an_unsafe_archive_fails_the_lease_and_leaves_nothing(tmp_path: Path) -> None:
    archive = make_tar_gz(tmp_path / "evil.tgz", [tar_member("../evil", b"x")])
    cache = TreeCache(tmp_path / "cache")
    with pytest.raises(UnsafeArchive):
        async with cache.tree("sha256:" + "0" * 64, Downloads(archive)):
            pass
    assert list((tmp_path / "cache").iterdir()) == []
    assert len(cache) == 0


async def test_one_waiter_cancelled_does_not_cancel_the_shared_unpack(tmp_path: Path) -> None:
    archive, digest = archive_of(tmp_path, {"app.yaml": b"app"}, "a")
    cache = TreeCache(tmp_path / "cache")
    download = Downloads(archive, delay=0.1)

    async def use() -> bytes:
        async with cache.tree(digest, download) as tree:
            return (tree / "app.yaml").read_bytes()

    impatient = asyncio.create_task(use())
    patient = asyncio.create_task(use())
    await asyncio.sleep(0.02)
    impatient.cancel()
    assert await patient == b"app"
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert download.calls == 1


async def test_limits_apply_to_cached_unpacks(tmp_path: Path) -> None:
    archive, digest = archive_of(tmp_path, {f"f{i}": b"x" for i in range(10)}, "a")
    cache = TreeCache(tmp_path / "cache", limits=ExtractLimits(max_entries=3))
    with pytest.raises(ArchiveLimitExceeded):
        async with cache.tree(digest, Downloads(archive)):
            pass


async def test_leftovers_of_an_earlier_process_are_cleared(tmp_path: Path) -> None:
    stale = tmp_path / "cache" / ("sha256-" + "1" * 64)
    stale.mkdir(parents=True)
    (stale / "half-written.yaml").write_bytes(b"?")
    (tmp_path / "cache" / ".download-abc.tar.gz").write_bytes(b"?")
    archive, digest = archive_of(tmp_path, {"app.yaml": b"app"}, "a")
    cache = TreeCache(tmp_path / "cache")
    async with cache.tree(digest, Downloads(archive)) as tree:
        assert os.listdir(tmp_path / "cache") == [tree.name]


def _sample_tar(tmp_path: Path) -> bytes:
    files = {
        "deploy/app.yaml": b"kind: Deployment\n" * 20,
        "a/" + "d" * 120 + "/prefixed.yaml": b"x",
        "p" * 160 + "/" + "q" * 110: b"pax",
    }
    src = write_tree(tmp_path / "fuzz-src", files)
    pack(src, tmp_path / "fuzz.tgz")
    return zlib.decompress((tmp_path / "fuzz.tgz").read_bytes(), 31)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    flips=st.lists(st.tuples(st.integers(min_value=0, max_value=6 * 512), st.integers(0, 255)), min_size=1, max_size=8)
)
def test_corrupted_headers_fail_cleanly_and_stay_inside(
    tmp_path_factory: pytest.TempPathFactory, flips: list[tuple[int, int]]
) -> None:
    work = tmp_path_factory.mktemp("fuzz")
    stream = bytearray(_sample_tar(work))
    for offset, value in flips:
        stream[offset % len(stream)] = value
    (work / "a.tgz").write_bytes(zlib.compress(bytes(stream), wbits=31))
    dest = work / "out"
    with contextlib.suppress(ArtifactError):
        safe_extract(work / "a.tgz", dest, ExtractLimits(max_total_bytes=1 << 20, max_entries=50))
    assert {p.name for p in work.iterdir()} <= {"fuzz-src", "fuzz.tgz", "a.tgz", "out"}
    for path in dest.rglob("*"):
        assert not path.is_symlink()
        assert path.resolve().is_relative_to(dest.resolve())
