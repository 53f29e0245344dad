"""A commit git cannot read fails the streamed artifact as a git error, with git's reason and no file left."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from source_controller.git import GitOperationFailed, build_filter
from source_controller.git.archive import pack_commit, sourceignore_filter

MISSING = "0" * 40


@pytest.fixture
def empty_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=60)
    return repo


def test_archive_of_a_missing_commit(empty_repo: Path, tmp_path: Path) -> None:
    dest = tmp_path / "a.tgz"
    # git prints nothing, so the packer finds no archive; git's exit status (128) names the cause
    with pytest.raises(
        GitOperationFailed, match=r"^git archive of the fetched commit failed: fatal: not a tree object"
    ):
        pack_commit(empty_repo, MISSING, dest, build_filter(empty_repo))
    assert not dest.exists()


def test_sourceignore_of_a_missing_commit(empty_repo: Path) -> None:
    with pytest.raises(
        GitOperationFailed, match=r"^git ls-tree of the fetched commit failed: fatal: not a tree object"
    ):
        sourceignore_filter(empty_repo, MISSING, None)
