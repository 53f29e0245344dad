"""Lease record transitions for leader election, without an apiserver."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gitops_mesh.kube.leases import LeaderElector, held_by_other, micro_time, next_spec, released_spec

T0 = datetime(2025, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
T1 = datetime(2025, 1, 2, 3, 4, 7, tzinfo=UTC)


def test_micro_time_has_six_fraction_digits() -> None:
    assert micro_time(T0) == "2025-01-02T03:04:05.600000Z"


def test_create_then_renew_keeps_acquire_time_and_transitions() -> None:
    created = next_spec(None, "a", 15, T0)
    assert created == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "acquireTime": "2025-01-02T03:04:05.600000Z",
        "renewTime": "2025-01-02T03:04:05.600000Z",
        "leaseTransitions": 0,
    }
    renewed = next_spec(created, "a", 15, T1)
    assert renewed["acquireTime"] == created["acquireTime"]
    assert renewed["renewTime"] == "2025-01-02T03:04:07.000000Z"
    assert renewed["leaseTransitions"] == 0


def test_takeover_counts_a_transition() -> None:
    held = next_spec(None, "a", 15, T0)
    taken = next_spec(held, "b", 15, T1)
    assert taken["holderIdentity"] == "b"
    assert taken["acquireTime"] == taken["renewTime"]
    assert taken["leaseTransitions"] == 1


def test_released_lease_is_free_for_anyone() -> None:
    released = released_spec(next_spec(None, "a", 15, T0), T1)
    assert released["holderIdentity"] == ""
    assert released["leaseDurationSeconds"] == 1
    assert not held_by_other(released, "b")
    assert held_by_other(next_spec(None, "a", 15, T0), "b")
    assert not held_by_other(next_spec(None, "a", 15, T0), "a")


def test_timings_must_nest() -> None:
    with pytest.raises(ValueError, match="lease_duration"):
        LeaderElector(None, "ns", "lease", "a", lease_duration=5, renew_deadline=10, retry_period=2)  # type: ignore[arg-type]
