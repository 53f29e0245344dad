"""Receiver request validation per type (pure): signatures, tokens, event filters, ping; the webhook path."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from multidict import CIMultiDict

from gitops_mesh.errors import InvalidSpec
from notification_controller.receivers import (
    check_cdevent,
    check_hmac,
    matches_labels,
    receiver_secrets,
    validate,
    webhook_path,
)

TOKEN = "s3cr3t"
BODY = b'{"ref": "refs/heads/main"}'


def sig(algo: str, body: bytes = BODY, token: str = TOKEN) -> str:
    return f"{algo}=" + hmac.new(token.encode(), body, getattr(hashlib, algo)).hexdigest()


def test_webhook_path_is_flux_digest() -> None:
    expected = hashlib.sha256(b"tokreceiverns").hexdigest()
    assert webhook_path("tok", "receiver", "ns") == f"/hook/{expected}"


def test_matches_labels_selects_targets_as_kubernetes() -> None:
    target = {"metadata": {"name": "app", "labels": {"team": "a", "tier": "web"}}}
    assert matches_labels(target, {"team": "a"})
    assert matches_labels(target, {})
    assert not matches_labels(target, {"team": "b"})
    assert not matches_labels({"metadata": {"name": "bare"}}, {"team": "a"})
    # The apiserver refuses a List with this selector, so Flux reports the target as not annotated.
    with pytest.raises(InvalidSpec, match="a valid label"):
        matches_labels(target, {"team": "a b"})


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


# ---- cdevents -----------------------------------------------------------------------------------------


def cdevent(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "context": {
            "specversion": "0.4.1",
            "id": "271069a8-fc18-44f1-b38f-9d70a1695819",
            "source": "/event/source/123",
            "type": "dev.cdevents.change.merged.0.2.0",
            "timestamp": "2023-03-20T14:27:05.315384Z",
        },
        "subject": {
            "id": "mySubject123",
            "source": "/event/source/123",
            "type": "change",
            "content": {"repository": {"id": "cdevents/flux", "source": "my-git.example"}},
        },
    }
    for path, value in overrides.items():
        *parents, leaf = path.split("__")
        node = event
        for p in parents:
            node = node[p]
        if value is DROP:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return event


DROP = object()
CE = {"Ce-Type": "dev.cdevents.change.merged.0.2.0"}


def test_cdevent_valid_and_filtered_on_ce_type() -> None:
    body = json.dumps(cdevent()).encode()
    assert validate("cdevents", CIMultiDict(CE), body, TOKEN).act
    assert validate("cdevents", CIMultiDict(CE), body, "any-token", ["DEV.CDEVENTS.CHANGE.MERGED.0.2.0"]).act
    # Flux filters on the Ce-Type header, not on the body's context.type.
    hdrs = CIMultiDict({"ce-type": "cd.change.merged.v1"})
    assert validate("cdevents", hdrs, body, TOKEN, ["cd.change.merged.v1"]).act
    refused = validate("cdevents", hdrs, body, TOKEN, ["cd.environment.modified.v1"])
    assert not refused.valid
    assert refused.message == "the CDEvent 'cd.change.merged.v1' is not authorised"
    # No Ce-Type header: fine without a filter, refused with one.
    assert validate("cdevents", CIMultiDict(), body, TOKEN).act
    assert not validate("cdevents", CIMultiDict(), body, TOKEN, ["dev.cdevents.change.merged.0.2.0"]).valid


@pytest.mark.parametrize(
    "overrides",
    [
        {"context__type": "dev.cdevents.change.merged.0.3.0"},
        {"context__type": "dev.cdevents.pipelinerun.finished.0.2.0"},
        {"customData": {"k": "v"}, "customDataContentType": "application/json"},
        {"customData": "aGVsbG8="},
        {"subject__source": DROP, "subject__type": DROP},
        {"context__timestamp": "2023-03-20T14:27:05+01:00"},
        {"extra": 1, "context__chainId": "abc"},
    ],
)
def test_cdevent_accepts(overrides: dict[str, Any]) -> None:
    assert check_cdevent(json.dumps(cdevent(**overrides)).encode()) is None


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"subject": {}}', "'context'"),
        (cdevent(context__type="dev.cdevents.foo.bar.0.1.0"), "unknown event type"),
        (cdevent(context__type="dev.cdevents.change.merged.1.0.0"), "not compatible"),
        (cdevent(context__type="change.merged"), "cannot parse"),
        (cdevent(context__type=DROP), "cannot parse"),
        (cdevent(context__id=""), "context.id"),
        (cdevent(context__source=DROP), "context.source"),
        (cdevent(context__specversion=DROP), "context.specversion"),
        (cdevent(context__timestamp="yesterday"), "timestamp"),
        (cdevent(subject=DROP), "'subject'"),
        (cdevent(subject__id=""), "subject.id"),
        (cdevent(subject__content=DROP), "subject.content"),
        (cdevent(subject__type=7), "subject.type"),
        (cdevent(customData=3), "customData"),
    ],
)
def test_cdevent_refuses(body: bytes | dict[str, Any], why: str) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    problem = check_cdevent(raw)
    assert problem is not None
    assert why in problem, problem
    verdict = validate("cdevents", CIMultiDict(CE), raw, TOKEN)
    assert not verdict.valid
    assert verdict.message.startswith("unable to validate CDEvent event: ")


def test_a_receiver_is_indexed_under_its_token_secret() -> None:
    receiver = {"metadata": {"name": "r", "namespace": "apps"}, "spec": {"secretRef": {"name": "token"}}}
    assert receiver_secrets(receiver) == ["Secret/apps/token"]
    assert receiver_secrets({"metadata": {"name": "r", "namespace": "apps"}, "spec": {}}) == []
