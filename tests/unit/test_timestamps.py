"""The one RFC 3339 formatter: each precision, truncation, time zones, and the forms it replaced, byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_mesh.timestamps import Precision, rfc3339

T = datetime(2025, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)


@pytest.mark.parametrize(
    ("precision", "expected"),
    [
        ("seconds", "2025-01-02T03:04:05Z"),
        ("milliseconds", "2025-01-02T03:04:05.678Z"),
        ("microseconds", "2025-01-02T03:04:05.678901Z"),
    ],
)
def test_precisions(precision: Precision, expected: str) -> None:
    assert rfc3339(T, precision) == expected


def test_truncates_never_rounds() -> None:
    late = datetime(2025, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    assert rfc3339(late) == "2025-12-31T23:59:59Z"
    assert rfc3339(late, "milliseconds") == "2025-12-31T23:59:59.999Z"


def test_whole_seconds_keep_their_fraction_digits() -> None:
    whole = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert rfc3339(whole, "milliseconds") == "2025-01-02T03:04:05.000Z"
    assert rfc3339(whole, "microseconds") == "2025-01-02T03:04:05.000000Z"


def test_other_zones_are_converted_and_naive_is_utc() -> None:
    cet = timezone(timedelta(hours=2))
    assert rfc3339(datetime(2026, 1, 1, 1, 30, tzinfo=cet)) == "2025-12-31T23:30:00Z"
    assert rfc3339(datetime(2024, 5, 6, 7, 8, 9)) == "2024-05-06T07:08:09Z"


aware = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]),
)


@given(aware)
def test_byte_identical_to_the_formats_it_replaced(t: datetime) -> None:
    utc = t.astimezone(UTC)
    # metav1.Time (conditions, Events, lastUpdateTime, history: callers pass UTC), MicroTime (Leases).
    assert rfc3339(utc) == utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert rfc3339(t, "microseconds") == utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # The bus envelope's CloudEvents time and Flux-payload timestamp.
    assert rfc3339(t, "milliseconds") == utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert rfc3339(t) == utc.isoformat(timespec="seconds").replace("+00:00", "Z")
