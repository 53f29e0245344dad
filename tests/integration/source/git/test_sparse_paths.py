"""spec.sparseCheckout asks about the commit, never about the controller's file system."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from gitops_mesh.errors import InvalidSpec
from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.repos import Repo
from source_controller.git import SparseCheckoutMissing, checkout


async def test_a_symlink_in_the_commit_does_not_answer_for_the_host(
    git_http: GitServer, make_repo: Callable[..., Repo], tmp_path: Path
) -> None:
    repo = make_repo()
    repo.write({"apps/app.yaml": "kind: A\n"})
    os.symlink("/", repo.work / "apps" / "host")  # checked out with apps/, and pointing at the host's root
    repo.commit()
    repo.push()
    url = git_http.url(repo.name)
    assert Path("/etc").is_dir()
    # the existence check followed the checked-out link: '/etc' on the controller made this succeed
    with pytest.raises(SparseCheckoutMissing, match="sparse checkout dir 'apps/host/etc' does not exist in commit"):
        await checkout(url, None, None, tmp_path / "co", sparse=["apps", "apps/host/etc"])
    # what the commit does hold is fine, with Flux's leading '/' or './'
    await checkout(url, None, None, tmp_path / "ok", sparse=["/apps/", "./apps"])
    assert (tmp_path / "ok" / "apps" / "app.yaml").is_file()


async def test_a_parent_directory_is_refused_before_anything_is_fetched(git_http: GitServer, tmp_path: Path) -> None:
    dest = tmp_path / "co"
    with pytest.raises(InvalidSpec, match=r"^spec.sparseCheckout: invalid directory '\.\./\.\./etc': '\.\.' is not"):
        await checkout(git_http.url("nowhere"), None, None, dest, sparse=["../../etc"])
    assert not dest.exists()
