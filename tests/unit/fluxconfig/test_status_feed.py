"""fluxconfig-controller status feed, its pure rules: what to patch, what to announce, when the cache is behind."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fluxconfig_controller.compliance import ComplianceState, ComplianceStatus
from fluxconfig_controller.status_feed import announcement, behind, status_change, status_changed
from gitops_mesh.bus.envelope import EventKind, ObjectRef, Severity, build_event, event_from_dict
from gitops_mesh.kube.objects import KubeObject

NOW = datetime(2026, 12, 3, 18, 0, 5, tzinfo=UTC)
SHA = "0ba6f0d30760d567de0bac86c8c4eec13ce1a590"


def summary(state: ComplianceState, **kw: Any) -> ComplianceStatus:
    statuses: list[Any] = kw.pop("statuses", [])
    return ComplianceStatus(compliance_state=state, statuses=statuses, **kw)


def test_nothing_new_writes_nothing() -> None:
    s = summary(ComplianceState.PENDING)
    before = {"complianceState": "Pending", "statuses": [], "statusUpdatedAt": "2026-12-03T17:00:00Z"}
    assert status_change(before, s, NOW) is None


def test_a_change_patches_only_what_changed_and_stamps_the_time() -> None:
    s = summary(
        ComplianceState.COMPLIANT,
        source_synced_commit_id=f"main/{SHA}",
        source_updated_at="2026-12-03T18:00:01Z",
    )
    before = {"complianceState": "Pending", "statuses": [], "provisioningState": "Succeeded"}
    assert status_change(before, s, NOW) == {
        "complianceState": "Compliant",
        "sourceSyncedCommitId": f"main/{SHA}",
        "sourceUpdatedAt": "2026-12-03T18:00:01Z",
        "statusUpdatedAt": "2026-12-03T18:00:05Z",
    }
    # A source that lost its artifact: the field goes (merge-patch null), the core's fields are never touched.
    gone = status_change({**before, "sourceSyncedCommitId": "x"}, summary(ComplianceState.PENDING), NOW)
    assert gone is not None
    assert gone["sourceSyncedCommitId"] is None
    assert "provisioningState" not in gone


def test_announces_only_a_change_to_compliant_or_non_compliant() -> None:
    ok = summary(
        ComplianceState.COMPLIANT,
        source_synced_commit_id=f"main/{SHA}",
        source_revision=f"main@sha1:{SHA}",
        counts={"Compliant": 3},
    )
    said = announcement({"complianceState": "Pending"}, ok)
    assert said is not None
    assert (said.kind, said.reason, said.severity) == (EventKind.APPLIED, "Compliant", Severity.INFO)
    assert said.message == f"all 3 managed objects are ready at main/{SHA}"
    assert said.revision == f"main@sha1:{SHA}"
    assert said.metadata == {"complianceState": "Compliant"}
    assert announcement({"complianceState": "Compliant"}, ok) is None, "no repeat (also after a restart)"

    bad = summary(ComplianceState.NON_COMPLIANT, error_message="Kustomization/ns/cfg-apps: build failed")
    said = announcement({"complianceState": "Compliant"}, bad)
    assert said is not None
    assert (said.kind, said.reason, said.severity) == (EventKind.FAILED, "NonCompliant", Severity.ERROR)
    assert said.message == "Kustomization/ns/cfg-apps: build failed"

    refused = summary(ComplianceState.NON_COMPLIANT, error_message="Invalid URL", refused=True)
    assert announcement({"complianceState": "Compliant"}, refused) is None, "the runner announced that one"
    assert announcement({"complianceState": "Compliant"}, summary(ComplianceState.PENDING)) is None
    assert announcement({}, summary(ComplianceState.SUSPENDED)) is None


def obj(ready: str | None = None, *, generation: int = 1, **status: Any) -> KubeObject:
    conds = [] if ready is None else [{"type": "Ready", "status": ready, "reason": "R", "message": ""}]
    return {
        "metadata": {"name": "k", "namespace": "ns", "generation": generation},
        "spec": {},
        "status": {"conditions": conds, **status},
    }


def test_status_changed_ignores_metadata_only_updates() -> None:
    a = obj("True")
    b = obj("True")
    b["metadata"]["annotations"] = {"x": "y"}
    assert not status_changed(b, a)
    assert status_changed(a, None)
    assert status_changed(obj("False"), a)
    assert status_changed(obj("True", generation=2), a)
    suspended = obj("True")
    suspended["spec"]["suspend"] = True
    assert status_changed(suspended, a)


def event(kind: EventKind, revision: str = "") -> Any:
    ref = ObjectRef("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "ns", "k")
    envelope = build_event(
        kind=kind,
        controller="kustomize-controller",
        instance="i",
        involved_object=ref,
        severity=Severity.INFO,
        reason="R",
        message="m",
        revision=revision,
    )
    return event_from_dict(envelope)


def test_behind_compares_the_event_with_the_cache() -> None:
    rev = f"main@sha1:{SHA}"
    assert behind(event(EventKind.APPLIED, rev), obj("True", lastAppliedRevision="main@sha1:old"))
    assert behind(event(EventKind.APPLIED, rev), obj("Unknown", lastAppliedRevision=rev))
    assert not behind(event(EventKind.APPLIED, rev), obj("True", lastAppliedRevision=rev))
    assert behind(event(EventKind.FAILED, rev), obj("True"))
    assert not behind(event(EventKind.FAILED, rev), obj("False"))
    assert behind(event(EventKind.ARTIFACT_READY, rev), obj("True", artifact={"revision": "main@sha1:old"}))
    assert not behind(event(EventKind.ARTIFACT_READY, rev), obj("True", artifact={"revision": rev}))
