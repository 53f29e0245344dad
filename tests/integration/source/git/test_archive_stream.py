"""A fetched commit packed straight from git objects gives the same artifact tree as a checkout packed."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable
from pathlib import Path

from gitops_mesh.artifacts.archive import pack
from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.repos import Repo
from source_controller.git import GitRef, build_filter, checkout
from source_controller.git.archive import pack_commit, sourceignore_filter


def tree_of(artifact: Path) -> dict[str, tuple[int, bytes]]:
    with tarfile.open(artifact, "r:gz") as tar:
        return {m.name: (m.mode, tar.extractfile(m).read()) for m in tar if m.isfile()}  # type: ignore[union-attr]


async def test_streamed_equals_checked_out(git_http: GitServer, make_repo: Callable[..., Repo], tmp_path: Path) -> None:
    repo = make_repo()
    repo.write(
        {
            "deploy/app.yaml": "kind: A\n",
            "deploy/.sourceignore": "*.tmp\n",
            "deploy/scratch.tmp": "x",
            "deploy/nested/b.yaml": "kind: B\n",
            "docs/logo.png": b"\x89PNG",
            ".github/workflows/ci.yaml": "on: push\n",
            "run.sh": "#!/bin/sh\n",
        }
    )
    os.chmod(repo.work / "run.sh", 0o755)
    os.symlink("/etc/passwd", repo.work / "deploy" / "passwd")
    repo.commit()
    repo.push()
    url = git_http.url(repo.name)

    full = await checkout(url, GitRef(), None, tmp_path / "full")
    objects_only = await checkout(url, GitRef(), None, tmp_path / "bare", worktree=False)
    assert objects_only.hash == full.hash
    assert not (tmp_path / "bare" / "deploy").exists(), "no files are written without a work tree"

    a, b = tmp_path / "a.tgz", tmp_path / "b.tgz"
    pack(tmp_path / "full", a, include=build_filter(tmp_path / "full", "docs/\n"))
    keep = sourceignore_filter(tmp_path / "bare", full.hash, "docs/\n")
    pack_commit(tmp_path / "bare", full.hash, b, keep)

    streamed = tree_of(b)
    assert streamed == tree_of(a)
    assert sorted(streamed) == [
        ".github/workflows/ci.yaml",  # a .sourceignore replaces Flux's default exclusions (CI dirs included)
        "deploy/.sourceignore",
        "deploy/app.yaml",
        "deploy/nested/b.yaml",
        "run.sh",
    ]
    assert streamed["run.sh"][0] == 0o700
    assert streamed["deploy/app.yaml"][0] == 0o600
