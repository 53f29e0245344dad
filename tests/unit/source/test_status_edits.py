"""The source kinds' status verdicts as data: applying them, and the storage failure rule they share."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gitops_mesh.artifacts.errors import StorageError
from gitops_mesh.errors import TransientError
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from source_controller.status_edits import Failure, Mark, StatusEdit, storage_failed

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T1 = datetime(2026, 1, 1, 12, 5, 0, tzinfo=UTC)


def obj() -> KubeObject:
    return {"metadata": {"name": "a", "namespace": "n", "generation": 3}, "spec": {}}


def test_apply_drops_then_writes_fields_deletes_then_marks_conditions() -> None:
    o = obj()
    o["status"] = {"url": "old", "observedIgnore": "x"}
    c.mark_true(o, c.ConditionType.FETCH_FAILED, "GitOperationFailed", "boom", now=T0)
    edit = StatusEdit(
        marks=(
            Mark(c.ConditionType.ARTIFACT_IN_STORAGE, "Succeeded", "stored"),
            Mark(c.ConditionType.SOURCE_VERIFIED, "InvalidCommitSignature", "bad", c.ConditionStatus.FALSE),
        ),
        deletes=(c.ConditionType.FETCH_FAILED,),
        writes={"url": "new"},
        drops=("observedIgnore",),
    )
    edit.apply(o, now=T1)
    assert o["status"]["url"] == "new"
    assert "observedIgnore" not in o["status"]
    assert not c.has(o, c.ConditionType.FETCH_FAILED)
    stored = c.get(o, c.ConditionType.ARTIFACT_IN_STORAGE)
    assert stored is not None
    assert (stored["status"], stored["reason"], stored["message"]) == ("True", "Succeeded", "stored")
    assert stored["observedGeneration"] == 3
    assert c.is_false(o, c.ConditionType.SOURCE_VERIFIED)
    assert c.get_reason(o, c.ConditionType.SOURCE_VERIFIED) == "InvalidCommitSignature"


def test_marking_the_same_verdict_again_keeps_its_transition_time() -> None:
    o = obj()
    edit = StatusEdit.failed(c.ConditionType.BUILD_FAILED, TransientError("helm failed", reason="ChartPackageError"))
    edit.apply(o, now=T0)
    edit.apply(o, now=T1)
    cond = c.get(o, c.ConditionType.BUILD_FAILED)
    assert cond is not None
    assert cond["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    assert (cond["reason"], cond["message"]) == ("ChartPackageError", "helm failed")
    assert edit.mark(c.ConditionType.BUILD_FAILED) == Mark(
        c.ConditionType.BUILD_FAILED, "ChartPackageError", "helm failed"
    )
    assert edit.mark(c.ConditionType.FETCH_FAILED) is None


def test_storage_failure_is_storage_operation_failed_and_retried() -> None:
    failure = storage_failed("index", StorageError("disk full"))
    o = obj()
    error = failure.apply(o, now=T0)
    assert isinstance(error, TransientError)
    assert str(error) == "storing the index failed: disk full"
    assert error.reason == "ArchiveOperationFailed"
    assert c.is_true(o, c.ConditionType.STORAGE_OPERATION_FAILED)
    assert c.get_reason(o, c.ConditionType.STORAGE_OPERATION_FAILED) == "ArchiveOperationFailed"
    assert c.get_message(o, c.ConditionType.STORAGE_OPERATION_FAILED) == "disk full"


def test_fail_raises_the_error_chained_to_its_cause_or_the_cause_itself() -> None:
    cause = OSError("no space left on device")
    o = obj()
    with pytest.raises(TransientError) as raised:
        storage_failed("chart", cause).fail(o, cause=cause, now=T0)
    assert raised.value.__cause__ is cause
    assert c.get_message(o, c.ConditionType.STORAGE_OPERATION_FAILED) == "no space left on device"

    same = TransientError("git failed", reason="GitOperationFailed")
    failure = Failure(StatusEdit.failed(c.ConditionType.FETCH_FAILED, same), same)
    with pytest.raises(TransientError) as raised:
        failure.fail(o, cause=same, now=T0)
    assert raised.value is same
    assert same.__cause__ is None
    assert c.get_reason(o, c.ConditionType.FETCH_FAILED) == "GitOperationFailed"
