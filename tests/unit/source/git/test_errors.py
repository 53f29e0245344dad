"""Classification of git's stderr into typed errors, raw object parsing, gpg status parsing (pure)."""

from __future__ import annotations

import pytest

from gitops_mesh.errors import GitopsMeshError, TransientError
from source_controller.git.errors import (
    AuthenticationFailed,
    CertificateInvalid,
    GitOperationFailed,
    HostKeyVerificationFailed,
    RefNotFound,
    RemoteUnreachable,
    RepositoryNotFound,
)
from source_controller.git.gitcli import classify, detail
from source_controller.git.objects import parse_commit, parse_tag, short_message
from source_controller.git.verify import VerifyMode, parse_status

URL = "https://h/r.git"

SAMPLES = [
    ("fatal: could not read Username for 'https://h': terminal prompts disabled", AuthenticationFailed, "AuthenticationFailed"),
    ("remote: HTTP Basic: Access denied\nfatal: Authentication failed for 'https://h/r.git/'", AuthenticationFailed, "AuthenticationFailed"),
    ("fatal: unable to access 'https://h/r.git/': The requested URL returned error: 403", AuthenticationFailed, "AuthenticationFailed"),
    ("git@h: Permission denied (publickey).\nfatal: Could not read from remote repository.", AuthenticationFailed, "AuthenticationFailed"),
    ("@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.", HostKeyVerificationFailed, "GitOperationFailed"),
    ("No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\nHost key verification failed.", HostKeyVerificationFailed, "GitOperationFailed"),
    ("fatal: unable to access 'https://h/r.git/': server certificate verification failed. CAfile: none CRLfile: none", CertificateInvalid, "GitOperationFailed"),
    ("fatal: unable to access 'https://h/r.git/': SSL certificate problem: unable to get local issuer certificate", CertificateInvalid, "GitOperationFailed"),
    ("fatal: unable to access 'http://127.0.0.1:1/r.git/': Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server", RemoteUnreachable, "GitOperationFailed"),
    ("ssh: connect to host 127.0.0.1 port 1: Connection refused\nfatal: Could not read from remote repository.", RemoteUnreachable, "GitOperationFailed"),
    ("fatal: unable to access 'https://nohost.invalid/r.git/': Could not resolve host: nohost.invalid", RemoteUnreachable, "GitOperationFailed"),
    ("fatal: repository 'https://h/nope.git/' not found", RepositoryNotFound, "GitOperationFailed"),
    ("fatal: '/srv/nope.git' does not appear to be a git repository", RepositoryNotFound, "GitOperationFailed"),
    ("fatal: couldn't find remote ref refs/heads/nope", RefNotFound, "GitOperationFailed"),
    ("fatal: remote error: upload-pack: not our ref 0123456789012345678901234567890123456789", RefNotFound, "GitOperationFailed"),
    ("fatal: something nobody expected", GitOperationFailed, "GitOperationFailed"),
]  # fmt: skip


@pytest.mark.parametrize(("stderr", "kind", "reason"), SAMPLES)
def test_classify(stderr: str, kind: type[GitopsMeshError], reason: str) -> None:
    error = classify(stderr, url=URL, action="fetching", has_credentials=True)
    assert type(error) is kind
    assert error.reason == reason
    assert isinstance(error, TransientError)
    assert str(error).startswith(f"fetching {URL}")


def test_auth_hint_depends_on_whether_credentials_were_given() -> None:
    stderr = "fatal: could not read Username for 'https://h': terminal prompts disabled"
    assert "rejected the credentials" in str(classify(stderr, url=URL, action="a", has_credentials=True))
    assert "requires authentication" in str(classify(stderr, url=URL, action="a", has_credentials=False))


def test_detail_is_one_bounded_line_without_hints() -> None:
    text = detail("hint: try this\nfatal: one\n\nerror: two\n" + "x" * 1000)
    assert not text.startswith("hint")
    assert "\n" not in text
    assert len(text) <= 401


SIGNED_COMMIT = (
    "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
    "parent 1111111111111111111111111111111111111111\n"
    "author Ann Author <ann@example.com> 1700000000 +0100\n"
    "committer Cid Committer <cid@example.com> 1700000001 +0000\n"
    "gpgsig -----BEGIN PGP SIGNATURE-----\n"
    " \n"
    " iHUEABYKAB0WIQ\n"
    " -----END PGP SIGNATURE-----\n"
    "\n"
    "Subject line that is rather long, longer than fifty characters in all\n"
    "\n"
    "Body.\n"
)


def test_parse_commit_with_signature() -> None:
    c = parse_commit(SIGNED_COMMIT)
    assert str(c.author) == "Ann Author <ann@example.com>"
    assert c.committer.when == "1700000001 +0000"
    assert c.signature == "-----BEGIN PGP SIGNATURE-----\n\niHUEABYKAB0WIQ\n-----END PGP SIGNATURE-----"
    assert c.message.startswith("Subject line")
    assert short_message(c.message) == "Subject line that is rather long, longer than fift..."
    assert parse_commit(SIGNED_COMMIT.replace("gpgsig", "x-other")).signature is None


def test_parse_tag_splits_inline_signature() -> None:
    raw = (
        "object 2222222222222222222222222222222222222222\ntype commit\ntag v1.0.0\n"
        "tagger Ann <ann@example.com> 1700000000 +0000\n\nRelease 1.0.0\n"
        "-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n"
    )
    t = parse_tag(raw, "3" * 40)
    assert (t.name, t.target, t.message) == ("v1.0.0", "2" * 40, "Release 1.0.0\n")
    assert t.signature is not None
    assert t.signature.startswith("-----BEGIN PGP SIGNATURE-----")
    assert parse_tag(raw.split("-----BEGIN")[0], "3" * 40).signature is None


FPR = "A" * 40
PRIMARY = "B" * 40


def test_parse_status_good_reports_primary_fingerprint() -> None:
    status = parse_status(
        "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 1234ABCD Trusted <t@example.com>\n"
        f"[GNUPG:] VALIDSIG {FPR} 2024-01-01 1700000000 0 4 0 22 10 00 {PRIMARY}\n[GNUPG:] TRUST_UNDEFINED 0 pgp\n"
    )
    assert status.good
    assert status.fingerprint == PRIMARY


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[GNUPG:] ERRSIG 99AA 22 10 00 1700000000 9 -\n[GNUPG:] NO_PUBKEY 99AA\n", "99AA, which is not among the trusted"),
        ("[GNUPG:] BADSIG 1234ABCD Trusted\n", "signature is bad"),
        (f"[GNUPG:] EXPKEYSIG 1234 T\n[GNUPG:] VALIDSIG {FPR} x x x x x x x x {PRIMARY}\n", "expired"),
        ("", None),
    ],
)  # fmt: skip
def test_parse_status_failures(text: str, problem: str | None) -> None:
    status = parse_status(text)
    assert not status.good
    if problem:
        assert status.problem is not None
        assert problem in status.problem


def test_verify_mode_parse() -> None:
    assert VerifyMode.parse("head") is VerifyMode.HEAD
    assert VerifyMode.parse(None) is VerifyMode.HEAD
    assert VerifyMode.parse("TagAndHEAD").tag
    assert VerifyMode.parse("TagAndHEAD").head
    assert VerifyMode.parse("Tag").tag
    assert not VerifyMode.parse("Tag").head
