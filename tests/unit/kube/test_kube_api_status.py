"""apiserver responses → our error tree, without an apiserver."""

from __future__ import annotations

import orjson
import pytest

from gitops_mesh.errors import (
    ApiError,
    Conflict,
    Forbidden,
    GitopsMeshError,
    Gone,
    Invalid,
    KubeUnavailable,
    NotFound,
    TerminalError,
    TransientError,
)
from gitops_mesh.kube.api_status import AlreadyExists, error_from_response, error_from_status


def status(code: int, reason: str, message: str, **details: object) -> bytes:
    return orjson.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
            "details": details,
        }
    )


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (404, "NotFound", NotFound),
        (409, "Conflict", Conflict),
        (409, "AlreadyExists", AlreadyExists),
        (410, "Expired", Gone),
        (401, "Unauthorized", Forbidden),
        (403, "Forbidden", Forbidden),
        (400, "BadRequest", Invalid),
        (422, "Invalid", Invalid),
        (429, "TooManyRequests", KubeUnavailable),
        (500, "InternalError", KubeUnavailable),
        (503, "ServiceUnavailable", KubeUnavailable),
        (504, "Timeout", KubeUnavailable),
        (415, "UnsupportedMediaType", Invalid),
    ],
)
def test_codes_map_to_the_tree(code: int, reason: str, expected: type[GitopsMeshError]) -> None:
    err = error_from_response(code, status(code, reason, f"{reason} happened"))
    assert type(err) is expected
    assert str(err) == f"{reason} happened"


def test_classification_follows_the_tree() -> None:
    assert isinstance(error_from_status(409, None), TransientError)
    assert isinstance(error_from_status(410, None), TransientError)
    # What the apiserver refused is neutral: the caller decides whether it is worth a retry.
    for code in (400, 401, 403, 404, 405, 413, 422):
        error = error_from_status(code, None)
        assert isinstance(error, ApiError)
        assert error.code == code
        assert not isinstance(error, TransientError | TerminalError)


def test_invalid_message_names_the_field() -> None:
    message = 'ConfigMap "x" is invalid: metadata.name: Invalid value: "X": a lowercase RFC 1123 subdomain ...'
    err = error_from_response(422, status(422, "Invalid", message))
    assert isinstance(err, Invalid)
    assert "metadata.name" in str(err)


def test_retry_after_from_header_or_details() -> None:
    err = error_from_response(429, status(429, "TooManyRequests", "slow down", retryAfterSeconds=3), "7")
    assert isinstance(err, KubeUnavailable)
    assert err.retry_after == 7.0
    err = error_from_response(503, status(503, "ServiceUnavailable", "later", retryAfterSeconds=2))
    assert isinstance(err, KubeUnavailable)
    assert err.retry_after == 2.0
    err = error_from_response(500, status(500, "InternalError", "boom"))
    assert isinstance(err, KubeUnavailable)
    assert err.retry_after is None


def test_retry_after_header_may_be_a_date_and_an_unreadable_one_falls_back_to_details() -> None:
    # A date already past (a proxy's clock, or just slow delivery) means "retry now".
    err = error_from_response(503, b"", "Wed, 21 Oct 2015 07:28:00 GMT")
    assert isinstance(err, KubeUnavailable)
    assert err.retry_after == 0.0
    err = error_from_response(429, status(429, "TooManyRequests", "slow down", retryAfterSeconds=4), "soon")
    assert isinstance(err, KubeUnavailable)
    assert err.retry_after == 4.0


def test_non_status_bodies_still_map() -> None:
    err = error_from_response(502, b"<html>bad gateway</html>")
    assert isinstance(err, KubeUnavailable)
    assert "bad gateway" in str(err)
    assert str(error_from_response(404, b"")) == "HTTP 404"
