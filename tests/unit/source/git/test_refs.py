"""spec.ref precedence, ls-remote parsing, resolution and Flux revision strings (pure)."""

from __future__ import annotations

import pytest

from source_controller.git.errors import InvalidRef, RefNotFound
from source_controller.git.refs import (
    GitRef,
    RefChoice,
    RefKind,
    choose,
    ls_remote_patterns,
    parse_ls_remote,
    revision,
    select,
    valid_ref_name,
)

C1 = "a" * 40
C2 = "b" * 40
TAGOBJ = "c" * 40
URL = "https://git.example.com/org/repo.git"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (None, RefChoice(RefKind.BRANCH, "master")),
        (GitRef(), RefChoice(RefKind.BRANCH, "master")),
        (GitRef(branch="main"), RefChoice(RefKind.BRANCH, "main")),
        (GitRef(branch="main", tag="v1"), RefChoice(RefKind.TAG, "v1")),
        (GitRef(branch="main", tag="v1", semver="^1"), RefChoice(RefKind.SEMVER, "^1")),
        (GitRef(tag="v1", semver="^1", name="refs/pull/1/head"), RefChoice(RefKind.NAME, "refs/pull/1/head")),
        (GitRef(branch="main", name="refs/heads/x", commit=C1.upper()), RefChoice(RefKind.COMMIT, C1, "main")),
        (GitRef(commit=C1), RefChoice(RefKind.COMMIT, C1, None)),
    ],
)
def test_precedence_commit_name_semver_tag_branch(ref: GitRef | None, expected: RefChoice) -> None:
    assert choose(ref) == expected


def test_from_spec_reads_camel_case_and_ignores_empty_fields() -> None:
    assert GitRef.from_spec({"branch": "", "tag": "v2", "commit": None}) == GitRef(tag="v2")
    assert GitRef.from_spec(None) == GitRef()


@pytest.mark.parametrize(
    "ref",
    [
        GitRef(commit="abc123"),
        GitRef(commit="z" * 40),
        GitRef(semver=">= nonsense"),
        GitRef(semver="1.2.3 ||| 2"),
        GitRef(name="refs/heads/a..b"),
        GitRef(name="-upload-pack=evil"),
        GitRef(branch="feature/"),
        GitRef(tag="v1 2"),
        GitRef(branch="a~1"),
    ],
)
def test_invalid_refs_are_spec_errors(ref: GitRef) -> None:
    with pytest.raises(InvalidRef):
        choose(ref)


@pytest.mark.parametrize(
    ("name", "ok"),
    [("main", True), ("feature/x", True), ("refs/pull/420/head", True), (".hidden", False), ("x.lock", False),
     ("a//b", False), ("a@{1}", False), ("", False), ("HEAD", True), ("x:y", False)],
)  # fmt: skip
def test_valid_ref_name(name: str, ok: bool) -> None:
    assert valid_ref_name(name) is ok


@pytest.mark.parametrize(
    ("ref_name", "commit", "absolute", "expected"),
    [
        ("refs/heads/main", C1, False, f"main@sha1:{C1}"),
        ("refs/heads/feature/x", C1, False, f"feature/x@sha1:{C1}"),
        ("refs/tags/v1.0.0", C1, False, f"v1.0.0@sha1:{C1}"),
        (None, C1, False, f"sha1:{C1}"),
        ("refs/heads/main", C1, True, f"refs/heads/main@sha1:{C1}"),
        ("refs/pull/1/head", C1, True, f"refs/pull/1/head@sha1:{C1}"),
        ("HEAD", C1, False, f"sha1:{C1}"),
        ("refs/heads/main", "d" * 64, False, f"main@sha256:{'d' * 64}"),
    ],
)
def test_revision_strings_as_flux(ref_name: str | None, commit: str, absolute: bool, expected: str) -> None:
    assert revision(ref_name, commit, absolute=absolute) == expected


LS_REMOTE = f"""{C1}\tHEAD
{C1}\trefs/heads/master
{C2}\trefs/heads/feature/x
{TAGOBJ}\trefs/tags/v1.0.0
{C2}\trefs/tags/v1.0.0^{{}}
{C1}\trefs/tags/v1.1.0
{C2}\trefs/tags/v2.0.0-rc.1
{C1}\trefs/tags/not-a-version
{C2}\trefs/pull/7/head
warning: something unrelated
"""


def test_parse_ls_remote_peels_annotated_tags() -> None:
    refs = parse_ls_remote(LS_REMOTE)
    assert refs["refs/tags/v1.0.0"].target == TAGOBJ
    assert refs["refs/tags/v1.0.0"].commit == C2
    assert refs["refs/tags/v1.1.0"].commit == C1
    assert "refs/tags/v1.0.0^{}" not in refs
    assert len(refs) == 8


@pytest.mark.parametrize(
    ("ref", "revision_", "commit"),
    [
        (GitRef(), f"master@sha1:{C1}", C1),
        (GitRef(branch="feature/x"), f"feature/x@sha1:{C2}", C2),
        (GitRef(tag="v1.0.0"), f"v1.0.0@sha1:{C2}", C2),
        (GitRef(semver="^1.0"), f"v1.1.0@sha1:{C1}", C1),
        (GitRef(semver="~1.0.0"), f"v1.0.0@sha1:{C2}", C2),
        (GitRef(semver=">=2.0.0-0"), f"v2.0.0-rc.1@sha1:{C2}", C2),
        (GitRef(name="refs/pull/7/head"), f"refs/pull/7/head@sha1:{C2}", C2),
        (GitRef(name="refs/tags/v1.0.0"), f"refs/tags/v1.0.0@sha1:{C2}", C2),
        (GitRef(commit=C2), f"sha1:{C2}", C2),
        (GitRef(branch="feature/x", commit=C1), f"feature/x@sha1:{C1}", C1),
    ],
)
def test_select_resolves_each_ref_kind(ref: GitRef, revision_: str, commit: str) -> None:
    resolved = select(choose(ref), parse_ls_remote(LS_REMOTE), url=URL)
    assert (resolved.revision, resolved.commit) == (revision_, commit)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (GitRef(branch="nope"), f"branch 'nope' not found in {URL}"),
        (GitRef(tag="v9"), f"tag 'v9' not found in {URL}"),
        (GitRef(semver=">=3"), f"no tag in {URL} matches semver range '>=3'"),
        (GitRef(name="refs/pull/8/head"), f"ref 'refs/pull/8/head' not found in {URL}"),
    ],
)
def test_select_reports_what_is_missing(ref: GitRef, message: str) -> None:
    with pytest.raises(RefNotFound) as e:
        select(choose(ref), parse_ls_remote(LS_REMOTE), url=URL)
    assert str(e.value) == message
    assert e.value.reason == "GitOperationFailed"


def test_ls_remote_asks_only_for_what_it_needs() -> None:
    assert ls_remote_patterns(choose(GitRef(branch="main"))) == ["refs/heads/main", "refs/heads/main^{}"]
    assert ls_remote_patterns(choose(GitRef(tag="v1"))) == ["refs/tags/v1", "refs/tags/v1^{}"]
    assert ls_remote_patterns(choose(GitRef(semver="*"))) == ["refs/tags/*"]
    assert ls_remote_patterns(choose(GitRef(name="refs/pull/1/head")))[0] == "refs/pull/1/head"
