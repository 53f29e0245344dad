"""status.history keeps the newest five distinct applies and counts repeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kustomize_controller.history import record, snapshot_digest

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_repeat_updates_the_same_entry_and_new_sets_go_first() -> None:
    d1 = snapshot_digest(["b_x__ConfigMap", "a_y__ConfigMap"], "main@sha1:1")
    assert d1 == snapshot_digest(["a_y__ConfigMap", "b_x__ConfigMap"], "main@sha1:1")
    h = record([], digest=d1, status="ReconciliationSucceeded", now=T0, duration=1.5, revision="main@sha1:1")
    h = record(
        h,
        digest=d1,
        status="ReconciliationSucceeded",
        now=T0 + timedelta(minutes=1),
        duration=0.2,
        revision="main@sha1:1",
    )
    assert len(h) == 1
    assert h[0]["totalReconciliations"] == 2
    assert h[0]["firstReconciled"] == "2026-01-01T00:00:00Z"
    assert h[0]["lastReconciled"] == "2026-01-01T00:01:00Z"
    assert h[0]["lastReconciledDuration"] == "0.200s"
    d2 = snapshot_digest(["a_y__ConfigMap"], "main@sha1:2")
    h = record(h, digest=d2, status="HealthCheckFailed", now=T0, duration=3, revision="main@sha1:2")
    assert [e["digest"] for e in h] == [d2, d1]
    assert h[0]["metadata"] == {"revision": "main@sha1:2"}


def test_at_most_five() -> None:
    h: list[dict[str, object]] = []
    for i in range(8):
        h = record(h, digest=f"sha256:{i}", status="ok", now=T0, duration=0, revision=str(i))
    assert [e["digest"] for e in h] == [f"sha256:{i}" for i in (7, 6, 5, 4, 3)]
