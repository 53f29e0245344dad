"""Reconcile requests from the bus: skipped when the watch already brought the same request."""

from __future__ import annotations

import orjson

from gitops_mesh.bus.envelope import EventKind, ObjectRef, Severity, build_event, parse_event
from gitops_mesh.reconcile.result import REQUESTED_AT
from source_controller.requests import seen_by_watch

STAMP = "2026-11-25T18:30:00.123456789Z"


def repo(annotation: str | None) -> dict[str, object]:
    annotations = {REQUESTED_AT: annotation} if annotation else {}
    return {"metadata": {"namespace": "ns", "name": "repo", "annotations": annotations}}


def test_the_request_stamp_survives_the_bus() -> None:
    wire = build_event(
        kind=EventKind.RECONCILE_REQUESTED,
        controller="notification-controller",
        instance="nc-0",
        involved_object=ObjectRef("source.toolkit.fluxcd.io/v1", "GitRepository", "ns", "repo"),
        severity=Severity.INFO,
        reason="ReconcileRequested",
        message="reconcile requested by Receiver ns/hook",
        metadata={REQUESTED_AT: STAMP},
    )
    assert parse_event(orjson.dumps(wire)).metadata.get(REQUESTED_AT) == STAMP


def test_seen_by_watch() -> None:
    assert seen_by_watch(repo(STAMP), STAMP)
    assert not seen_by_watch(repo("2026-11-25T18:29:00Z"), STAMP), "the watch is behind: the bus wakes it"
    assert not seen_by_watch(repo(None), STAMP)
    assert not seen_by_watch(None, STAMP), "not in the cache yet"
    assert not seen_by_watch(repo(STAMP), None), "a request without a stamp always wakes"
