"""Dedupe: volatile text out of the key, Flux's key fields in, one delivery per key per interval."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notification_controller.dedupe import RateLimiter, dedupe_key, normalize_message
from tests.unit.notification.support import make_event


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Reconciliation finished in 2.08s, next run in 10m0s", "Reconciliation finished in 3.5s, next run in 10m0s"),
        ("Health check passed in 1m30s", "Health check passed in 45.123ms"),
        ("took 2h0m0s", "took 1.5µs"),
        ("failed at 2024-01-02T15:04:05Z: timeout", "failed at 2025-11-12T01:02:03.456+02:00: timeout"),
        ("last seen 2024-01-02 15:04:05 +0000 UTC", "last seen 2026-12-31 23:59:59 +0000 UTC"),
        ("(retrying in 30s)", "(retrying in 5s)"),
        ("timeout=15s", "timeout=1m"),
    ],
)
def test_volatile_text_does_not_change_the_key(a: str, b: str) -> None:
    assert normalize_message(a) == normalize_message(b)
    assert dedupe_key(make_event(message=a), alert="ns/a") == dedupe_key(make_event(message=b), alert="ns/a")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("stored artifact for commit 'abc1234'", "stored artifact for commit 'def5678'"),
        ("Deployment/apps/podinfo-7d9f8c6b5 not ready", "Deployment/apps/podinfo-5c6d7e8f9 not ready"),
        ("scaled app-1s", "scaled app-2s"),
        ("image v2m", "image v3m"),
        ("Applied revision: main@sha1:aaaa", "Applied revision: main@sha1:bbbb"),
        ("3 objects pruned", "4 objects pruned"),
    ],
)
def test_meaningful_text_changes_the_key(a: str, b: str) -> None:
    assert dedupe_key(make_event(message=a), alert="ns/a") != dedupe_key(make_event(message=b), alert="ns/a")


def test_key_fields() -> None:
    base = dedupe_key(make_event(), alert="ns/a", provider="ns/p")
    assert base == dedupe_key(
        make_event(event_id="other-id", severity=make_event().severity), alert="ns/a", provider="ns/p"
    )
    for changed in (
        dedupe_key(make_event(name="other"), alert="ns/a", provider="ns/p"),
        dedupe_key(make_event(namespace="other"), alert="ns/a", provider="ns/p"),
        dedupe_key(make_event(kind="HelmRelease"), alert="ns/a", provider="ns/p"),
        dedupe_key(make_event(revision="main@sha1:1"), alert="ns/a", provider="ns/p"),
        dedupe_key(make_event(metadata={"originRevision": "x"}), alert="ns/a", provider="ns/p"),
        dedupe_key(make_event(metadata={"kustomize.toolkit.fluxcd.io/token": "t"}), alert="ns/a", provider="ns/p"),
        dedupe_key(make_event(), alert="ns/b", provider="ns/p"),
        dedupe_key(make_event(), alert="ns/a", provider="ns/q"),
    ):
        assert changed != base
    # Reason and severity are not part of Flux's key; neither is unrelated metadata.
    assert dedupe_key(make_event(reason="Other", metadata={"x": "y"}), alert="ns/a", provider="ns/p") == base


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_once_per_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(300, clock=clock)
    assert limiter.allow("k", "e1")
    clock.now += 10
    assert not limiter.allow("k", "e2")
    assert limiter.allow("other", "e3")
    clock.now += 289
    assert not limiter.allow("k", "e4")
    clock.now += 1
    assert limiter.allow("k", "e5")
    assert limiter.snapshot()["k"] == "e5"


def test_rate_limiter_lets_a_redelivered_event_through() -> None:
    clock = Clock()
    limiter = RateLimiter(300, clock=clock)
    assert limiter.allow("k", "e1")
    clock.now += 5
    assert limiter.allow("k", "e1")
    assert not limiter.allow("k", "e2")
    limiter.forget("k", "e1")
    assert limiter.allow("k", "e2")


def test_rate_limiter_expires_and_bounds_memory() -> None:
    clock = Clock()
    limiter = RateLimiter(60, clock=clock, max_keys=3)
    for i in range(5):
        assert limiter.allow(f"k{i}", f"e{i}")
    assert len(limiter) == 3
    clock.now += 61
    assert limiter.allow("new", "e9")
    assert len(limiter) == 1
    disabled = RateLimiter(0)
    assert disabled.allow("k", "a")
    assert disabled.allow("k", "b")


@given(st.floats(min_value=0.001, max_value=10_000, allow_nan=False), st.sampled_from(["ms", "s", "m", "h"]))
def test_any_duration_is_volatile(value: float, unit: str) -> None:
    assert normalize_message(f"done in {value:.3f}{unit}.") == "done in <duration>."
