"""pack(): Flux's tarball conventions, determinism, filters, and a round trip through safe_extract."""

from __future__ import annotations

import hashlib
import os
import string
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitops_mesh.artifacts.archive import pack, pack_async, tar_header
from gitops_mesh.artifacts.errors import StorageError
from gitops_mesh.artifacts.extract import ExtractLimits, safe_extract

from .support import snapshot, write_tree

TREE = {
    "README.md": b"# demo\n",
    "deploy/app.yaml": b"kind: Deployment\n",
    "deploy/base/kustomization.yaml": b"resources: []\n",
    "scripts/run.sh": b"#!/bin/sh\necho hi\n",
    "z/empty.txt": b"",
}


def members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path, "r:gz") as tar:
        return tar.getmembers()


def test_headers_follow_flux_conventions(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", TREE, executable=frozenset({"scripts/run.sh"}))
    (src / "emptydir").mkdir()
    result = pack(src, tmp_path / "a.tar.gz")

    got = members(tmp_path / "a.tar.gz")
    assert [m.name for m in got] == [
        "README.md",
        "deploy",
        "deploy/app.yaml",
        "deploy/base",
        "deploy/base/kustomization.yaml",
        "emptydir",
        "scripts",
        "scripts/run.sh",
        "z",
        "z/empty.txt",
    ]
    modes = {m.name: (m.type, m.mode) for m in got}
    assert modes["deploy"] == (tarfile.DIRTYPE, 0o750)
    assert modes["emptydir"] == (tarfile.DIRTYPE, 0o750)
    assert modes["scripts/run.sh"] == (tarfile.REGTYPE, 0o700)
    assert modes["README.md"] == (tarfile.REGTYPE, 0o600)
    for m in got:
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", 0)
    assert (result.files, result.dirs) == (5, 5)


def test_digest_is_sha256_of_the_compressed_file_and_gzip_header_has_no_time(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", TREE)
    result = pack(src, tmp_path / "a.tar.gz")
    data = (tmp_path / "a.tar.gz").read_bytes()
    assert result.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert result.size == len(data)
    assert data[:4] == b"\x1f\x8b\x08\x00"  # gzip, deflate, no flags (no file name)
    assert data[4:8] == b"\0\0\0\0"  # mtime 0


def test_same_tree_same_digest_whatever_times_owners_and_modes(tmp_path: Path) -> None:
    a = write_tree(tmp_path / "a", TREE, executable=frozenset({"scripts/run.sh"}))
    b = write_tree(tmp_path / "b", TREE, executable=frozenset({"scripts/run.sh"}))
    for path in b.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000), follow_symlinks=False)
    (b / "README.md").chmod(0o640)
    (b / "scripts/run.sh").chmod(0o711)  # any execute bit is "executable"
    (b / "deploy").chmod(0o777)
    if os.geteuid() == 0:
        os.chown(b / "README.md", 1234, 5678)
    assert pack(a, tmp_path / "a.tgz").digest == pack(b, tmp_path / "b.tgz").digest
    assert (tmp_path / "a.tgz").read_bytes() == (tmp_path / "b.tgz").read_bytes()


def test_content_change_changes_digest(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", TREE)
    before = pack(src, tmp_path / "a.tgz").digest
    (src / "README.md").write_bytes(b"# changed\n")
    assert pack(src, tmp_path / "a.tgz").digest != before


def test_symlinks_and_special_files_are_skipped(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"real.txt": b"x", "dir/inner.txt": b"y"})
    (src / "to-etc").symlink_to("/etc/passwd")
    (src / "to-real").symlink_to("real.txt")
    (src / "dir-link").symlink_to("dir", target_is_directory=True)
    os.mkfifo(src / "fifo")
    pack(src, tmp_path / "a.tgz")
    names = [m.name for m in members(tmp_path / "a.tgz")]
    assert names == ["dir", "dir/inner.txt", "real.txt"]


def test_include_filter_prunes_directories_and_skips_files(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {**TREE, ".git/HEAD": b"ref: main\n", ".git/objects/x": b"blob"})
    seen: list[tuple[str, bool]] = []

    def include(rel: str, is_dir: bool) -> bool:
        seen.append((rel, is_dir))
        return rel != ".git" and not rel.endswith(".md")

    pack(src, tmp_path / "a.tgz", include=include)
    names = [m.name for m in members(tmp_path / "a.tgz")]
    assert ".git" not in names
    assert "README.md" not in names
    assert "deploy/base/kustomization.yaml" in names
    assert (".git", True) in seen
    assert ("scripts/run.sh", False) in seen
    assert not any(rel.startswith(".git/") for rel, _ in seen), "an excluded directory is not walked"


def test_long_and_non_ascii_names(tmp_path: Path) -> None:
    files = {
        "a/" + "d" * 120 + "/f.yaml": b"ustar prefix",
        "z" * 150 + "/" + "y" * 120: b"needs pax",
        "ünïcödé/файл.yaml": b"utf-8",
    }
    src = write_tree(tmp_path / "src", files)
    pack(src, tmp_path / "a.tgz")
    with tarfile.open(tmp_path / "a.tgz", "r:gz") as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
    assert names == set(files)
    out = tmp_path / "out"
    safe_extract(tmp_path / "a.tgz", out, ExtractLimits(max_total_bytes=1 << 20, max_entries=100))
    for rel, content in files.items():
        assert (out / rel).read_bytes() == content


def test_header_for_huge_size_uses_pax() -> None:
    header = tar_header(b"big.bin", 0o600, 10 << 30, b"0")
    assert len(header) == 3 * 512  # pax header, its record block, the ustar header
    assert b" size=10737418240\n" in header


def test_missing_source_dir_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="not a directory"):
        pack(tmp_path / "nope", tmp_path / "a.tgz")
    assert not (tmp_path / "a.tgz").exists()


def test_unwritable_destination_is_a_storage_error(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", TREE)
    with pytest.raises(StorageError, match="cannot create"):
        pack(src, tmp_path / "missing-dir" / "a.tgz")


def test_header_size_is_the_opened_files_size(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"a.txt": b"x" * 10})

    def include(rel: str, is_dir: bool) -> bool:
        (src / "a.txt").write_bytes(b"")  # changed after the directory scan, before the file is opened
        return True

    pack(src, tmp_path / "a.tgz", include=include)
    assert [m.size for m in members(tmp_path / "a.tgz")] == [0]


async def test_pack_async_matches_pack(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", TREE)
    assert (await pack_async(src, tmp_path / "a.tgz")).digest == pack(src, tmp_path / "b.tgz").digest


def test_many_files_and_a_large_one_stream_through(tmp_path: Path) -> None:
    files = {f"d{i % 7}/f{i}.txt": (b"line %d\n" % i) * (i % 50) for i in range(600)}
    files["big.bin"] = os.urandom(3 << 20)  # several 1 MiB chunks, incompressible
    src = write_tree(tmp_path / "src", files)
    result = pack(src, tmp_path / "a.tgz")
    assert result.files == len(files)
    out = tmp_path / "out"
    safe_extract(tmp_path / "a.tgz", out, ExtractLimits(max_total_bytes=16 << 20, max_entries=10_000))
    assert (out / "big.bin").read_bytes() == files["big.bin"]
    assert (out / "d3/f10.txt").read_bytes() == files["d3/f10.txt"]


_names = st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=12).filter(
    lambda s: s not in {".", ".."}
)
_trees = st.dictionaries(
    keys=st.lists(_names, min_size=1, max_size=4).map("/".join),
    values=st.tuples(st.binary(max_size=2048), st.booleans()),
    max_size=25,
)


def _consistent(tree: dict[str, tuple[bytes, bool]]) -> dict[str, tuple[bytes, bool]]:
    """Drop paths that would need a file to also be a directory."""
    kept: dict[str, tuple[bytes, bool]] = {}
    for path in sorted(tree, key=len):
        prefixes = {"/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 1)}
        if not prefixes & kept.keys() and not any(k.startswith(path + "/") for k in kept):
            kept[path] = tree[path]
    return kept


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=_trees.map(_consistent))
def test_round_trip_through_safe_extract(
    tmp_path_factory: pytest.TempPathFactory, tree: dict[str, tuple[bytes, bool]]
) -> None:
    work = tmp_path_factory.mktemp("rt")
    files = {path: content for path, (content, _) in tree.items()}
    src = write_tree(work / "src", files, executable=frozenset(p for p, (_, x) in tree.items() if x))
    first = pack(src, work / "a.tgz")
    assert pack(src, work / "b.tgz").digest == first.digest

    safe_extract(work / "a.tgz", work / "out", ExtractLimits(max_total_bytes=1 << 20, max_entries=1000))
    got = snapshot(work / "out")
    want = snapshot(src)
    assert got.keys() == want.keys()
    for rel, (kind, content, _) in want.items():
        assert got[rel][:2] == (kind, content)
        if kind == "file":
            assert got[rel][2] & 0o700 == (0o700 if tree[rel][1] else 0o600)
