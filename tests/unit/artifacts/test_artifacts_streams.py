"""The parallel gzip writer and the tar-stream packer (what `git archive` output goes through)."""

from __future__ import annotations

import gzip
import io
import os
import random
import subprocess
import tarfile
from pathlib import Path

import pytest

from gitops_mesh.artifacts.archive import pack, pack_tar_stream
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
