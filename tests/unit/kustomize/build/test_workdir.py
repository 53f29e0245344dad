"""The build's private copy of a shared tree: clamped paths, hard links, writes that never reach the tree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kustomize_controller.build.errors import PathNotFound
from kustomize_controller.build.workdir import build_dir, materialize, replace_file, secure_join


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
