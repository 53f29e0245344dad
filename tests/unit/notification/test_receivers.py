"""Receiver request validation per type (pure): signatures, tokens, event filters, ping; the webhook path."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from multidict import CIMultiDict

from notification_controller.receivers import check_hmac, validate, webhook_path

TOKEN = "s3cr3t"
BODY = b'{"ref": "refs/heads/main"}'


def sig(algo: str, body: bytes = BODY, token: str = TOKEN) -> str:
    return f"{algo}=" + hmac.new(token.encode(), body, getattr(hashlib, algo)).hexdigest()


def test_webhook_path_is_flux_digest() -> None:
    expected = hashlib.sha256(b"tokreceiverns").hexdigest()
    assert webhook_path("tok", "receiver", "ns") == f"/hook/{expected}"


@pytest.mark.parametrize("algo", ["sha1", "sha256", "sha512"])
def test_check_hmac_algorithms(algo: str) -> None:
    assert check_hmac(sig(algo), BODY, TOKEN)
    assert check_hmac(sig(algo).upper().replace(algo.upper(), algo), BODY, TOKEN)
    assert not check_hmac(sig(algo), BODY + b" ", TOKEN)
    assert not check_hmac(sig(algo, token="other"), BODY, TOKEN)


@pytest.mark.parametrize("header", ["", "sha256", "md5=abc", "sha256=", "sha256=zz"])
def test_check_hmac_refuses_malformed(header: str) -> None:
    assert not check_hmac(header, BODY, TOKEN)


CASES = [
    ("generic", {}, [], True, True),
    ("generic-hmac", {"X-Signature": sig("sha256")}, [], True, True),
    ("generic-hmac", {"x-signature": sig("sha1")}, [], True, True),
    ("generic-hmac", {"X-Signature": sig("sha256", token="forged")}, [], False, False),
    ("generic-hmac", {}, [], False, False),
    ("github", {"X-Hub-Signature-256": sig("sha256"), "X-GitHub-Event": "push"}, [], True, True),
    ("github", {"X-Hub-Signature": sig("sha1"), "X-GitHub-Event": "push"}, ["Push"], True, True),
    ("github", {"X-Hub-Signature-256": sig("sha256"), "X-GitHub-Event": "ping"}, ["push"], True, False),
    ("github", {"X-Hub-Signature-256": sig("sha256"), "X-GitHub-Event": "issues"}, ["push"], False, False),
    ("github", {"X-Hub-Signature-256": sig("sha256", token="x"), "X-GitHub-Event": "push"}, [], False, False),
    ("github", {"X-Hub-Signature-256": sig("sha1"), "X-GitHub-Event": "push"}, [], False, False),
    ("github", {"X-GitHub-Event": "push"}, [], False, False),
    ("gitlab", {"X-Gitlab-Token": TOKEN, "X-Gitlab-Event": "Push Hook"}, ["push hook"], True, True),
    ("gitlab", {"X-Gitlab-Token": TOKEN, "X-Gitlab-Event": "Tag Push Hook"}, ["Push Hook"], False, False),
    ("gitlab", {"X-Gitlab-Token": "wrong", "X-Gitlab-Event": "Push Hook"}, [], False, False),
    ("bitbucket", {"X-Hub-Signature": sig("sha256"), "X-Event-Key": "repo:refs_changed"}, [], True, True),
    ("harbor", {"Authorization": TOKEN}, [], True, True),
    ("harbor", {"Authorization": "Bearer " + TOKEN}, [], False, False),
    ("quay", {}, [], False, False),
]


@pytest.mark.parametrize(
    ("rtype", "hdrs", "events", "valid", "act"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_validate(rtype: str, hdrs: dict[str, str], events: list[str], valid: bool, act: bool) -> None:
    verdict = validate(rtype, CIMultiDict(hdrs), BODY, TOKEN, events)
    assert (verdict.valid, verdict.act) == (valid, act), verdict.message
