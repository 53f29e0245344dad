"""Every ref kind against a real smart-HTTP server: resolve (ls-remote) agrees with checkout, no-op needs no fetch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.repos import Repo
from source_controller.git import GitRef, RefNotFound, checkout, resolve


@pytest.fixture
def history(make_repo: Callable[..., Repo]) -> tuple[Repo, dict[str, str]]:
    """master (2 commits), a feature branch, tags v1.0.0 (annotated), v1.1.0, v2.0.0-rc.1, a pull ref."""
    repo = make_repo()
    c: dict[str, str] = {}
    c["first"] = repo.commit({"app.yaml": "v: 1\n"}, "first")
    repo.tag("v1.0.0", message="release 1.0.0")
    c["second"] = repo.commit({"app.yaml": "v: 2\n"}, "second")
    repo.tag("v1.1.0")
    repo.branch("feature/x")
    c["feature"] = repo.commit({"feature.yaml": "f: 1\n"}, "feature work")
    repo.tag("v2.0.0-rc.1")
    repo.switch("master")
    repo.push()
    repo.update_ref("refs/pull/1/head", c["feature"])
    return repo, c


CASES = [
    (GitRef(), "master@sha1:{second}", "second", {"app.yaml": "v: 2\n"}),
    (GitRef(branch="feature/x"), "feature/x@sha1:{feature}", "feature", {"feature.yaml": "f: 1\n"}),
    (GitRef(tag="v1.0.0"), "v1.0.0@sha1:{first}", "first", {"app.yaml": "v: 1\n"}),
    (GitRef(tag="v1.1.0"), "v1.1.0@sha1:{second}", "second", {"app.yaml": "v: 2\n"}),
    (GitRef(semver="^1.0"), "v1.1.0@sha1:{second}", "second", {"app.yaml": "v: 2\n"}),
    (GitRef(semver="<1.1.0"), "v1.0.0@sha1:{first}", "first", {"app.yaml": "v: 1\n"}),
    (GitRef(semver=">=2.0.0-0"), "v2.0.0-rc.1@sha1:{feature}", "feature", {"feature.yaml": "f: 1\n"}),
    (GitRef(name="refs/heads/master"), "refs/heads/master@sha1:{second}", "second", {}),
    (GitRef(name="refs/tags/v1.0.0"), "refs/tags/v1.0.0@sha1:{first}", "first", {}),
    (GitRef(name="refs/pull/1/head"), "refs/pull/1/head@sha1:{feature}", "feature", {"feature.yaml": "f: 1\n"}),
    (GitRef(commit="{first}"), "sha1:{first}", "first", {"app.yaml": "v: 1\n"}),
    (GitRef(branch="master", commit="{first}"), "master@sha1:{first}", "first", {"app.yaml": "v: 1\n"}),
]


@pytest.mark.parametrize(("ref", "revision", "commit", "files"), CASES)
async def test_every_ref_kind(
    git_http: GitServer,
    history: tuple[Repo, dict[str, str]],
    tmp_path: Path,
    ref: GitRef,
    revision: str,
    commit: str,
    files: dict[str, str],
) -> None:
    repo, c = history
    if ref.commit:
        ref = GitRef(branch=ref.branch, commit=ref.commit.format(**c))
    url = git_http.url(repo.name)
    resolved = await resolve(url, ref)
    got = await checkout(url, ref, None, tmp_path / "co", resolved=resolved)
    assert resolved.revision == got.revision == revision.format(**c)
    assert got.hash == resolved.commit == c[commit]
    for name, content in files.items():
        assert (tmp_path / "co" / name).read_text() == content
    assert not (tmp_path / "co" / ".git" / "shallow").exists() or got.hash in (tmp_path / "co/.git/shallow").read_text()


async def test_annotated_tag_and_commit_details(
    git_http: GitServer, history: tuple[Repo, dict[str, str]], tmp_path: Path
) -> None:
    repo, c = history
    got = await checkout(git_http.url(repo.name), GitRef(tag="v1.0.0"), None, tmp_path / "co")
    assert got.tag is not None
    assert got.tag.name == "v1.0.0"
    assert got.tag.message == "release 1.0.0\n"
    assert got.tag.target == c["first"]
    assert str(got.author) == "Test Author <author@example.com>"
    assert got.message == "first\n"
    assert got.signature is None
    light = await checkout(git_http.url(repo.name), GitRef(tag="v1.1.0"), None, tmp_path / "co2")
    assert light.tag is None
    assert light.tag_name == "v1.1.0"


async def test_fetch_is_shallow_and_carries_only_the_ref(
    git_http: GitServer, history: tuple[Repo, dict[str, str]], tmp_path: Path
) -> None:
    repo, c = history
    await checkout(git_http.url(repo.name), None, None, tmp_path / "co")
    shallow = (tmp_path / "co" / ".git" / "shallow").read_text().split()
    assert shallow == [c["second"]]
    # no tags, no other branches came along
    assert not list((tmp_path / "co" / ".git" / "refs" / "tags").iterdir())


async def test_resolve_is_a_cheap_no_op_check(
    git_http: GitServer, history: tuple[Repo, dict[str, str]], tmp_path: Path
) -> None:
    repo, _ = history
    url = git_http.url(repo.name)
    stored = (await checkout(url, None, None, tmp_path / "co")).revision
    fetches = git_http.fetches(repo.name)
    again = await resolve(url)
    assert fetches == 1
    assert again.revision == stored  # the caller skips checkout: nothing was fetched
    assert git_http.fetches(repo.name) == fetches
    new = repo.commit({"app.yaml": "v: 3\n"}, "third")
    repo.push()
    changed = await resolve(url)
    assert changed.revision == f"master@sha1:{new}" != stored


async def test_commit_ref_resolves_without_the_network() -> None:
    sha = "0" * 40
    resolved = await resolve("http://127.0.0.1:1/unreachable.git", GitRef(commit=sha))
    assert resolved.revision == f"sha1:{sha}"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (GitRef(branch="nope"), "branch 'nope' not found in {url}"),
        (GitRef(tag="v9.9.9"), "tag 'v9.9.9' not found in {url}"),
        (GitRef(semver=">=5"), "no tag in {url} matches semver range '>=5'"),
        (GitRef(name="refs/pull/2/head"), "ref 'refs/pull/2/head' not found in {url}"),
    ],
)
async def test_unknown_refs(
    git_http: GitServer, history: tuple[Repo, dict[str, str]], tmp_path: Path, ref: GitRef, message: str
) -> None:
    repo, _ = history
    url = git_http.url(repo.name)
    with pytest.raises(RefNotFound) as resolving:
        await resolve(url, ref)
    assert str(resolving.value) == message.format(url=url)
    if ref.semver:
        return
    with pytest.raises(RefNotFound) as fetching:
        await checkout(url, ref, None, tmp_path / "co")
    assert str(fetching.value) == message.format(url=url)


async def test_unknown_commit(git_http: GitServer, history: tuple[Repo, dict[str, str]], tmp_path: Path) -> None:
    repo, _ = history
    with pytest.raises(RefNotFound, match=r"commit '1{40}' not found in .*set spec.ref.branch"):
        await checkout(git_http.url(repo.name), GitRef(commit="1" * 40), None, tmp_path / "co")
    with pytest.raises(RefNotFound, match=r"commit '1{40}' \(on branch 'master'\) not found"):
        await checkout(git_http.url(repo.name), GitRef(branch="master", commit="1" * 40), None, tmp_path / "co2")
