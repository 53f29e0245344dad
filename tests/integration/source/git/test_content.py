"""What a checkout contains: .sourceignore + spec.ignore filtering, submodules, sparse checkout, the size cap."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.repos import Repo
from source_controller.git import (
    GitRef,
    RepositoryTooLarge,
    SparseCheckoutMissing,
    build_filter,
    checkout,
    included_files,
)
from source_controller.git import remote as remote_module


async def test_sourceignore_and_spec_ignore_on_a_checkout(
    git_http: GitServer, make_repo: Callable[..., Repo], tmp_path: Path
) -> None:
    repo = make_repo()
    repo.commit(
        {
            ".sourceignore": "docs/\n",
            "deploy/.sourceignore": "*.md\n",
            "deploy/app.yaml": "a: 1\n",
            "deploy/README.md": "# hi\n",
            "docs/guide.md": "guide\n",
            "charts/logo.png": b"\x89PNG",
            ".github/workflows/ci.yaml": "on: push\n",
            "tests/fixture.yaml": "t: 1\n",
            ".gitignore": "*.tmp\n",
        },
        "content",
    )
    repo.push()
    dest = tmp_path / "co"
    await checkout(git_http.url(repo.name), None, None, dest)
    assert sorted(included_files(dest, build_filter(dest))) == [
        ".github/workflows/ci.yaml",  # a .sourceignore replaces Flux's default list (VCS files stay excluded)
        ".sourceignore",
        "charts/logo.png",
        "deploy/.sourceignore",
        "deploy/app.yaml",
        "tests/fixture.yaml",
    ]
    assert sorted(included_files(dest, build_filter(dest, "/tests/\n!docs/\n"))) == [
        ".github/workflows/ci.yaml",
        ".sourceignore",
        "charts/logo.png",
        "deploy/.sourceignore",
        "deploy/app.yaml",
        "docs/guide.md",
    ]


async def test_submodules_only_when_asked(git_http: GitServer, make_repo: Callable[..., Repo], tmp_path: Path) -> None:
    child = make_repo()
    child_head = child.commit({"lib.yaml": "lib: 1\n"}, "child")
    child.push()
    parent = make_repo()
    parent.add_submodule("vendor/lib", git_http.url(child.name), child_head)
    parent.commit({"app.yaml": "a: 1\n"}, "with a submodule")
    parent.push()
    url = git_http.url(parent.name)
    plain = await checkout(url, None, None, tmp_path / "plain")
    assert (tmp_path / "plain" / "app.yaml").exists()
    assert not (tmp_path / "plain" / "vendor" / "lib" / "lib.yaml").exists()
    recursed = await checkout(url, None, None, tmp_path / "deep", recurse_submodules=True)
    assert recursed.hash == plain.hash
    assert (tmp_path / "deep" / "vendor" / "lib" / "lib.yaml").read_text() == "lib: 1\n"


@pytest.fixture
def layered(make_repo: Callable[..., Repo]) -> Repo:
    repo = make_repo()
    repo.commit(
        {"root.yaml": "r\n", "apps/a.yaml": "a\n", "infra/i.yaml": "i\n", "infra/sub/j.yaml": "j\n", "docs/d.md": "d\n"}
    )
    repo.push()
    return repo


async def test_sparse_checkout(git_http: GitServer, layered: Repo, tmp_path: Path) -> None:
    dest = tmp_path / "co"
    await checkout(git_http.url(layered.name), GitRef(branch="master"), None, dest, sparse=["apps", "infra/"])
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() and ".git" not in p.parts)
    assert files == ["apps/a.yaml", "infra/i.yaml", "infra/sub/j.yaml"]


async def test_sparse_checkout_of_a_missing_dir(git_http: GitServer, layered: Repo, tmp_path: Path) -> None:
    with pytest.raises(SparseCheckoutMissing, match="sparse checkout dir 'nope' does not exist"):
        await checkout(git_http.url(layered.name), None, None, tmp_path / "co", sparse=["apps", "nope"])


def worktree_files(dest: Path) -> list[Path]:
    return [p for p in dest.rglob("*") if p.is_file() and ".git" not in p.relative_to(dest).parts]


async def test_fetch_over_the_size_limit_is_aborted(
    git_http: GitServer, make_repo: Callable[..., Repo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_module, "SIZE_POLL_SECONDS", 0.002)
    repo = make_repo()
    repo.commit({"blob.bin": os.urandom(6 << 20)}, "incompressible")
    repo.push()
    dest = tmp_path / "co"
    with pytest.raises(RepositoryTooLarge, match=r"larger than the size limit of 1\.0 MiB"):
        await checkout(git_http.url(repo.name), None, None, dest, max_size=1 << 20)
    assert worktree_files(dest) == []


async def test_checkout_over_the_size_limit_is_refused_before_writing(
    git_http: GitServer, make_repo: Callable[..., Repo], tmp_path: Path
) -> None:
    repo = make_repo()
    repo.commit({"zeros.bin": bytes(8 << 20), "small.yaml": "s\n"}, "compresses to almost nothing")
    repo.push()
    dest = tmp_path / "co"
    with pytest.raises(RepositoryTooLarge, match=r"checks out to more than the size limit of 2\.0 MiB"):
        await checkout(git_http.url(repo.name), None, None, dest, max_size=2 << 20)
    assert worktree_files(dest) == []
    # within the limit, or limited to a small sparse directory, it is fine
    await checkout(git_http.url(repo.name), None, None, tmp_path / "ok", max_size=16 << 20)
    assert (tmp_path / "ok" / "small.yaml").exists()
