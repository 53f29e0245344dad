"""OpenPGP verification of real signed commits and tags with generated keys."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.repos import Repo, Signer, git
from source_controller.git import (
    GitRef,
    InvalidVerificationMode,
    SignatureVerificationFailed,
    VerifyMode,
    checkout,
    verify,
)
from tests.support.gpg import export_public

Keys = tuple[Signer, Signer]


@pytest.fixture
def signed(make_repo: Callable[..., Repo], gpg_keys: Keys) -> Repo:
    """master: signed by the trusted key; tags: v1 signed (trusted), v2 annotated unsigned, v3 lightweight,
    v4 signed by the stranger; branch stranger: a commit signed by the stranger; branch unsigned."""
    trusted, stranger = gpg_keys
    repo = make_repo()
    repo.commit({"a.yaml": "a: 1\n"}, "signed", signer=trusted)
    repo.tag("v1", signer=trusted)
    repo.tag("v2", message="not signed")
    repo.tag("v3")
    repo.tag("v4", signer=stranger)
    repo.branch("stranger")
    repo.commit({"b.yaml": "b: 1\n"}, "by a stranger", signer=stranger)
    repo.branch("unsigned")
    repo.commit({"c.yaml": "c: 1\n"}, "unsigned")
    repo.switch("master")
    repo.push()
    return repo


def keys_of(*signers: Signer) -> dict[str, bytes]:
    return {f"author{i}.asc": export_public(s) for i, s in enumerate(signers)}


async def test_signed_head(git_http: GitServer, signed: Repo, gpg_keys: Keys, tmp_path: Path) -> None:
    trusted, stranger = gpg_keys
    commit = await checkout(git_http.url(signed.name), None, None, tmp_path / "co")
    assert commit.signature is not None
    result = await verify(tmp_path / "co", commit, VerifyMode.HEAD, keys_of(stranger, trusted))
    assert result.commit_fingerprint == trusted.fingerprint
    assert result.message == f"verified signature of\n\t- commit '{commit.hash}' with key '{trusted.fingerprint}'"


async def test_signed_tag_and_head(git_http: GitServer, signed: Repo, gpg_keys: Keys, tmp_path: Path) -> None:
    trusted, _ = gpg_keys
    commit = await checkout(git_http.url(signed.name), GitRef(tag="v1"), None, tmp_path / "co")
    result = await verify(tmp_path / "co", commit, VerifyMode.TAG_AND_HEAD, keys_of(trusted))
    assert result.tag_fingerprint == result.commit_fingerprint == trusted.fingerprint
    assert "tag 'v1'" in result.message


@pytest.mark.parametrize(
    ("ref", "mode", "reason", "message"),
    [
        (GitRef(branch="unsigned"), VerifyMode.HEAD, "InvalidCommitSignature", "the commit is not signed"),
        (GitRef(branch="stranger"), VerifyMode.HEAD, "InvalidCommitSignature", "not among the trusted public keys"),
        (GitRef(tag="v4"), VerifyMode.TAG, "InvalidTagSignature", "not among the trusted public keys"),
        (GitRef(tag="v2"), VerifyMode.TAG, "InvalidGitObject", "tag 'v2' since it is not signed"),
        (GitRef(tag="v3"), VerifyMode.TAG, "InvalidGitObject", "tag 'v3' since it is not signed"),
    ],
)
async def test_verification_failures(
    git_http: GitServer,
    signed: Repo,
    gpg_keys: Keys,
    tmp_path: Path,
    ref: GitRef,
    mode: VerifyMode,
    reason: str,
    message: str,
) -> None:
    trusted, _ = gpg_keys
    commit = await checkout(git_http.url(signed.name), ref, None, tmp_path / "co")
    with pytest.raises(SignatureVerificationFailed) as e:
        await verify(tmp_path / "co", commit, mode, keys_of(trusted))
    assert e.value.reason == reason
    assert message in str(e.value)


async def test_tampered_commit_has_a_bad_signature(
    git_http: GitServer, signed: Repo, gpg_keys: Keys, tmp_path: Path
) -> None:
    trusted, _ = gpg_keys
    raw = git("cat-file", "commit", "master", cwd=signed.bare) + "\n"
    forged = git("hash-object", "-t", "commit", "-w", "--stdin", cwd=signed.bare, input=raw.replace("signed", "forged"))
    signed.update_ref("refs/heads/forged", forged)
    commit = await checkout(git_http.url(signed.name), GitRef(branch="forged"), None, tmp_path / "co")
    with pytest.raises(SignatureVerificationFailed, match="signature is bad"):
        await verify(tmp_path / "co", commit, VerifyMode.HEAD, keys_of(trusted))


async def test_tag_mode_needs_a_tag_ref(git_http: GitServer, signed: Repo, gpg_keys: Keys, tmp_path: Path) -> None:
    commit = await checkout(git_http.url(signed.name), None, None, tmp_path / "co")
    with pytest.raises(InvalidVerificationMode):
        await verify(tmp_path / "co", commit, VerifyMode.TAG, keys_of(gpg_keys[0]))


async def test_secret_without_keys(git_http: GitServer, signed: Repo, tmp_path: Path) -> None:
    commit = await checkout(git_http.url(signed.name), None, None, tmp_path / "co")
    with pytest.raises(SignatureVerificationFailed, match="no armored OpenPGP public key"):
        await verify(tmp_path / "co", commit, VerifyMode.HEAD, {"junk": b"not a key"})
