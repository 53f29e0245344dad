"""The build's private copy of a shared tree: clamped paths, hard links, writes that never reach the tree."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from kustomize_controller.build.errors import PathNotFound
from kustomize_controller.build.workdir import (
    UnsafeDirectory,
    build_dir,
    materialize,
    private_directory,
    replace_file,
    secure_join,
)
from kustomize_controller.settings import parse


@pytest.mark.parametrize(
    ("path", "want"),
    [("", "."), ("./apps", "apps"), ("apps/../x", "x"), ("../../etc", "etc"), ("/apps/prod", "apps/prod")],
)
def test_secure_join_stays_in_the_root(tmp_path: Path, path: str, want: str) -> None:
    assert secure_join(tmp_path, path) == (tmp_path / want if want != "." else tmp_path)


def test_materialize_links_and_replace_never_writes_through(tmp_path: Path) -> None:
    tree, work = tmp_path / "tree", tmp_path / "work"
    (tree / "a/b").mkdir(parents=True)
    (tree / "a/b/k.yaml").write_text("original")
    (tree / "top.yaml").write_text("top")
    materialize(tree, work)
    copied = work / "a/b/k.yaml"
    assert copied.read_text() == "original"
    assert copied.stat().st_ino == (tree / "a/b/k.yaml").stat().st_ino, "hard-linked, not copied"
    replace_file(copied, b"changed")
    assert copied.read_text() == "changed"
    assert (tree / "a/b/k.yaml").read_text() == "original"
    assert (work / "top.yaml").read_text() == "top"


def test_symlinks_are_not_reproduced(tmp_path: Path) -> None:
    tree, work = tmp_path / "tree", tmp_path / "work"
    tree.mkdir()
    (tmp_path / "secret").write_text("s")
    (tree / "link.yaml").symlink_to(tmp_path / "secret")
    materialize(tree, work)
    assert not (work / "link.yaml").exists()


def test_build_dir_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file.yaml").write_text("x")
    with pytest.raises(PathNotFound, match=re.escape("'file.yaml' is not a directory")) as info:
        build_dir(tmp_path, "file.yaml")
    assert info.value.reason == "ArtifactFailed"
    with pytest.raises(PathNotFound, match="'nope' is not a directory"):
        build_dir(tmp_path, "./nope")
    assert build_dir(tmp_path, "") == tmp_path


# --- the tree cache's directory is private (issue #11 item 6) ---


def test_default_cache_directory_is_fresh_and_private_per_process() -> None:
    first = private_directory("", prefix="kustomize-controller-")
    second = private_directory("", prefix="kustomize-controller-")
    try:
        assert first != second
        for path in (first, second):
            info = path.lstat()
            assert stat.S_ISDIR(info.st_mode)
            assert stat.S_IMODE(info.st_mode) == 0o700
            assert info.st_uid == os.geteuid()
    finally:
        first.rmdir()
        second.rmdir()


def test_a_configured_cache_directory_is_created_private(tmp_path: Path) -> None:
    made = private_directory(str(tmp_path / "a/b/trees"), prefix="x-")
    assert made == (tmp_path / "a/b/trees").resolve()
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    assert private_directory(str(made), prefix="x-") == made, "our own 0700 directory is taken again"


def test_a_configured_cache_directory_open_to_others_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o700)
    shared.chmod(0o755)
    with pytest.raises(UnsafeDirectory, match=r"is open to group or others \(mode 0755\); make it 0700"):
        private_directory(str(shared), prefix="x-")


def test_a_symlinked_or_non_directory_cache_path_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(UnsafeDirectory, match="is a symbolic link"):
        private_directory(str(tmp_path / "link"), prefix="x-")
    (tmp_path / "file").write_text("")
    with pytest.raises(UnsafeDirectory, match="is not a directory"):
        private_directory(str(tmp_path / "file"), prefix="x-")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a directory owned by another user")
def test_a_cache_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(UnsafeDirectory, match="is owned by uid 65534, not by this process's uid 0"):
        private_directory(str(theirs), prefix="x-")


def test_the_default_setting_is_a_fresh_directory() -> None:
    assert parse([]).tree_cache_dir == ""
