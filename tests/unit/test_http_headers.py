"""Retry-After, read once for every client: delta-seconds, HTTP dates, and what is not a delay."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gitops_mesh.http_headers import header_problem, is_field_name, is_field_value, parse_retry_after

NOW = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("value", "seconds"), [("120", 120.0), ("0", 0.0), (" 7 ", 7.0), ("007", 7.0)])
def test_delta_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value) == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("Thu, 01 Jan 2026 00:00:30 GMT", 30.0),  # IMF-fixdate, RFC 9110's preferred form
        ("Thursday, 01-Jan-26 00:01:00 GMT", 60.0),  # obsolete RFC 850 form, still to be accepted
        ("Thu Jan  1 00:00:05 2026", 5.0),  # asctime form
        ("Thu, 01 Jan 2026 00:00:10 -0000", 10.0),  # "no zone information": taken as GMT
        ("Wed, 31 Dec 2025 00:00:00 GMT", 0.0),  # already past: retry now, never a negative delay
    ],
)
def test_http_dates_are_relative_to_now(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_an_http_date_without_now_is_relative_to_the_clock() -> None:
    far = parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT")
    assert far is not None
    assert far > 365 * 24 * 3600


@pytest.mark.parametrize("value", [None, "", "soon", "1.5", "-1", "inf", "nan", "1e3", "²"])
def test_anything_else_is_no_delay(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


@pytest.mark.parametrize("name", ["X-Api-Key", "Authorization", "gotk-component", "x!#$%&'*+.^_`|~1"])
def test_field_names_that_are_tokens(name: str) -> None:
    assert is_field_name(name)
    assert header_problem(name, "v") is None


@pytest.mark.parametrize("name", ["", "X Api", "X:Y", "X-Api\r\nEvil", "Ünïcode", "a\x00", "(x)", "x\t"])
def test_field_names_that_are_not_tokens(name: str) -> None:
    assert not is_field_name(name)
    assert header_problem(name, "v") == f"header name {name!r} is not an RFC 9110 token"


@pytest.mark.parametrize("value", ["", "Bearer abc", "a\tb", " padded ", "ünïcode", "~!@#$%^&*()"])
def test_field_values_that_can_be_sent(value: str) -> None:
    assert is_field_value(value)


@pytest.mark.parametrize("value", ["a\r\nX-Evil: 1", "a\nb", "a\rb", "nul\x00", "bell\x07", "del\x7f", "lone\ud800"])
def test_field_values_with_controls_are_refused_without_echoing_them(value: str) -> None:
    assert not is_field_value(value)
    problem = header_problem("X-Token", value)
    assert problem is not None
    assert "X-Token" in problem
    assert value not in problem
