"""The parallel gzip writer and the tar-stream packer (what `git archive` output goes through)."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import random
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from gitops_mesh.artifacts.archive import PackStopped, Stop, pack, pack_async, pack_tar_stream
from gitops_mesh.artifacts.errors import StorageError


def big_tree(root: Path, files: int = 40, size: int = 300_000) -> None:
    rng = random.Random(7)
    words = [b"apiVersion", b"kind", b"metadata", b"spec", b"replicas", b"image", b"- name", b"80"]
    for i in range(files):
        d = root / f"d{i % 5}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.yaml").write_bytes(b" ".join(rng.choices(words, k=size // 6))[:size])


def test_parallel_gzip_is_valid_and_deterministic(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    big_tree(tree)  # ~12 MB: many 1 MiB chunks compressed on several threads
    one, two = tmp_path / "1.tgz", tmp_path / "2.tgz"
    r1, r2 = pack(tree, one), pack(tree, two)
    assert r1.digest == r2.digest
    assert one.read_bytes() == two.read_bytes()
    subprocess.run(["gzip", "-t", str(one)], check=True)  # the real gzip accepts the stream and its trailer
    with tarfile.open(one, "r:gz") as tar:
        got = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    want = {p.relative_to(tree).as_posix(): p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    assert got == want


def test_empty_tree_is_a_valid_gzip(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    out = tmp_path / "e.tgz"
    pack(tmp_path / "empty", out)
    assert gzip.decompress(out.read_bytes()) == bytes(1024)


def tar_of(entries: list[tuple[str, bytes | None, int, bytes]]) -> io.BytesIO:
    """A tar like git archive's: (name, data or None for a dir, mode, type)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode, kind in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.type, info.mtime, info.uid, info.uname = mode, kind, 1_700_000_000, 1000, "dev"
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def test_tar_stream_is_normalised_filtered_and_links_dropped(tmp_path: Path) -> None:
    stream = tar_of(
        [
            ("deploy/", None, 0o775, tarfile.DIRTYPE),
            ("deploy/app.yaml", b"kind: A\n", 0o664, tarfile.REGTYPE),
            ("deploy/run.sh", b"#!/bin/sh\n", 0o775, tarfile.REGTYPE),
            ("deploy/passwd", None, 0o777, tarfile.SYMTYPE),
            ("docs/", None, 0o775, tarfile.DIRTYPE),
            ("docs/readme.md", b"hi", 0o664, tarfile.REGTYPE),
            ("top.yaml", b"t", 0o664, tarfile.REGTYPE),
        ]
    )
    out = tmp_path / "a.tgz"
    result = pack_tar_stream(stream, out, include=lambda rel, _d: not rel.startswith("docs"))
    assert (result.files, result.dirs) == (3, 1)
    with tarfile.open(out, "r:gz") as tar:
        members = {m.name: m for m in tar}
        assert sorted(members) == ["deploy", "deploy/app.yaml", "deploy/run.sh", "top.yaml"]
        assert members["deploy"].mode == 0o750
        assert members["deploy/app.yaml"].mode == 0o600
        assert members["deploy/run.sh"].mode == 0o700
        for m in members.values():
            assert (m.uid, m.gid, m.mtime, m.uname) == (0, 0, 0, "")
        assert tar.extractfile(members["deploy/app.yaml"]).read() == b"kind: A\n"  # type: ignore[union-attr]


def test_garbage_stream_is_a_storage_error_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "x.tgz"
    with pytest.raises(StorageError, match="cannot read the tree"):
        pack_tar_stream(io.BytesIO(os.urandom(4096)), out)
    assert not out.exists()


def test_tar_stream_is_read_by_the_capped_reader_not_tarfile(tmp_path: Path) -> None:
    # tarfile buffers a whole pax header, whatever it claims, and (3.11.7) parses it with a backtracking regex
    # (CVE-2024-6232); the project's reader refuses one over 1 MiB on its header, before reading it.
    huge = tarfile.TarInfo("a.yaml")
    huge.size = 1
    huge.pax_headers = {"comment": "x" * (2 << 20)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(huge, io.BytesIO(b"a"))
    buf.seek(0)
    out = tmp_path / "a.tgz"
    with pytest.raises(StorageError, match=r"^cannot read the tree to archive: extended header of \d+ bytes over"):
        pack_tar_stream(buf, out)
    assert not out.exists()


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../escape.yaml", r"path traversal \('\.\.'\) in archive: '\.\./escape\.yaml'"),
        ("/etc/cron.d/x", r"absolute path in archive: '/etc/cron\.d/x'"),
    ],
)
def test_tar_stream_names_are_checked_like_every_archive(tmp_path: Path, name: str, why: str) -> None:
    # a tree object from a hostile server can name an entry so; it was copied into the artifact as it was
    out = tmp_path / "a.tgz"
    with pytest.raises(StorageError, match=f"^cannot read the tree to archive: {why}$"):
        pack_tar_stream(tar_of([("ok.yaml", b"k", 0o644, tarfile.REGTYPE), (name, b"x", 0o644, tarfile.REGTYPE)]), out)
    assert not out.exists()


def test_tar_stream_keeps_long_and_non_ascii_names(tmp_path: Path) -> None:
    long_dir = "d" * 90 + "/" + "e" * 90
    long_name = f"{long_dir}/{'f' * 120}.yaml"  # pax path record: longer than ustar's prefix and name
    stream = tar_of([(long_name, b"long", 0o664, tarfile.REGTYPE), ("naïve.txt", b"\xc3\xa9", 0o664, tarfile.REGTYPE)])
    out = tmp_path / "a.tgz"
    assert pack_tar_stream(stream, out).files == 2
    with tarfile.open(out, "r:gz") as tar:
        got = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    assert got == {long_name: b"long", "naïve.txt": b"\xc3\xa9"}


def test_a_stop_ends_the_walk_before_the_next_include(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(50):
        (src / f"f{i:02}.yaml").write_text("x")
    stop = Stop()
    seen: list[str] = []

    def include(rel: str, _is_dir: bool) -> bool:
        seen.append(rel)
        if len(seen) == 3:
            stop.cancel()  # what the awaiting task does when the reconcile is cancelled
        return True

    out = tmp_path / "a.tgz"
    with pytest.raises(PackStopped, match=r"^archiving was cancelled$"):
        pack(src, out, include=include, stop=stop)
    assert seen == ["f00.yaml", "f01.yaml", "f02.yaml"]
    assert not out.exists()


def test_a_stream_pack_stops_at_its_deadline(tmp_path: Path) -> None:
    entries: list[tuple[str, bytes | None, int, bytes]] = [
        (f"f{i}.yaml", b"x", 0o644, tarfile.REGTYPE) for i in range(50)
    ]
    seen: list[str] = []

    def slow(rel: str, _is_dir: bool) -> bool:
        seen.append(rel)
        time.sleep(0.02)  # a pattern that takes long on every path
        return True

    out = tmp_path / "a.tgz"
    with pytest.raises(PackStopped, match=r"^archiving timed out after 0\.1s$"):
        pack_tar_stream(tar_of(entries), out, include=slow, stop=Stop(0.1))
    assert 1 <= len(seen) < 20, seen
    assert not out.exists()


async def test_cancelling_pack_async_stops_its_thread(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(200):
        (src / f"f{i:03}.yaml").write_text("x")
    calls: list[str] = []
    started = threading.Event()

    def slow(rel: str, _is_dir: bool) -> bool:
        calls.append(rel)
        started.set()
        time.sleep(0.01)
        return True

    out = tmp_path / "a.tgz"
    task = asyncio.create_task(pack_async(src, out, include=slow))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stopped_at = len(calls)
    await asyncio.sleep(0.1)  # the thread has ended: nothing calls include any more
    assert len(calls) == stopped_at < 200
    assert not out.exists()
