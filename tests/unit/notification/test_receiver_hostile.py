"""Receivers against hostile callers (pure): replayed generic-hmac requests, deeply nested CDEvents."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from notification_controller.receivers import check_cdevent, validate
from notification_controller.replay import SeenSignatures, timestamp_problem

TOKEN = "s3cr3t"
BODY = b'{"ref": "refs/heads/main"}'
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
WINDOW = 300.0


def signed(stamp: str, body: bytes = BODY, token: str = TOKEN) -> dict[str, str]:
    """The headers the notification README tells a sender to compute: HMAC-SHA256 over ``<timestamp>.<body>``."""
    digest = hmac.new(token.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Signature": f"sha256={digest}", "X-Signature-Timestamp": stamp}


def check(headers: dict[str, str], body: bytes = BODY, window: float = WINDOW) -> tuple[bool, str]:
    verdict = validate("generic-hmac", headers, body, TOKEN, replay_window=window, now=NOW)
    return verdict.valid, verdict.message


def test_a_signed_timestamp_within_the_window_is_accepted() -> None:
    assert check(signed(str(int(NOW)))) == (True, "")
    assert check(signed(str(int(NOW - WINDOW))))[0]
    assert check(signed(str(int(NOW + 60))))[0]  # a sender's clock a little ahead


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        # A captured request from an hour ago: correctly signed, but too old.
        (signed(str(int(NOW - 3600))), "more than 300s away from now"),
        # The old timestamp swapped for a fresh one: the signature no longer matches.
        ({**signed(str(int(NOW - 3600))), "X-Signature-Timestamp": str(int(NOW))}, "unable to validate HMAC"),
        # Flux's body-only signature: refused once the window is on.
        ({"X-Signature": "sha256=" + hmac.new(TOKEN.encode(), BODY, hashlib.sha256).hexdigest()}, "HMAC"),
        (signed("1.5e9"), "not a Unix time in seconds"),
        (signed("9" * 13), "not a Unix time in seconds"),
    ],
)
def test_replays_and_unsigned_timestamps_are_refused(headers: dict[str, str], why: str) -> None:
    valid, message = check(headers)
    assert not valid
    assert why in message


def test_the_timestamp_cannot_be_moved_into_the_body() -> None:
    # Were the header optional, "<ts>.<body>" sent as the body would carry a valid body-only signature.
    stamp = str(int(NOW))
    headers = signed(stamp)
    smuggled = {"X-Signature": headers["X-Signature"]}
    assert not check(smuggled, body=stamp.encode() + b"." + BODY)[0]


def test_off_by_default_as_flux() -> None:
    flux = {"X-Signature": "sha256=" + hmac.new(TOKEN.encode(), BODY, hashlib.sha256).hexdigest()}
    assert validate("generic-hmac", flux, BODY, TOKEN).valid
    assert check(flux, window=0)[0]


def test_timestamp_problem_names_what_is_missing() -> None:
    assert timestamp_problem(None, now=NOW, window=WINDOW) == "missing X-Signature-Timestamp header"
    assert timestamp_problem("", now=NOW, window=WINDOW) == "missing X-Signature-Timestamp header"
    assert timestamp_problem("١٢٣", now=NOW, window=WINDOW) == "X-Signature-Timestamp is not a Unix time in seconds"


def test_a_signature_is_accepted_once_within_the_window() -> None:
    seen = SeenSignatures(WINDOW, max_entries=3)
    assert seen.first_time("sha256=AA", now=NOW)
    assert not seen.first_time("SHA256=aa ", now=NOW + 10)  # the same signature, spelled otherwise
    assert seen.first_time("sha256=aa", now=NOW + WINDOW + 1)  # forgotten once the timestamp check refuses it
    for i in range(5):
        assert seen.first_time(f"sha256={i}", now=NOW + WINDOW + 2)
    assert len(seen) <= 3  # bounded


@pytest.mark.parametrize("body", [b"[" * 200_000, b'{"a":' * 100_000, b"[" * 2000 + b"]" * 2000])
def test_a_deeply_nested_cdevent_is_a_refusal_not_a_crash(body: bytes) -> None:
    problem = check_cdevent(body)
    assert problem is not None
    assert problem.startswith("the body is not JSON")
    verdict = validate("cdevents", {"Ce-Type": "x"}, body, "")
    assert not verdict.valid
