"""The source kinds' verdicts on status as data: their pure plans return these, their reconcilers apply them.

A :class:`StatusEdit` is what one step leaves on ``status`` (conditions to mark and delete, fields to write
and drop); :class:`Done` ends a reconcile with its :class:`~gitops_mesh.reconcile.result.Outcome`;
:class:`Failure` ends it with an error. The runner still writes the status once, after the reconcile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

from gitops_mesh.artifacts.errors import StorageError
from gitops_mesh.errors import GitopsMeshError, TransientError
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import Outcome

#: Flux's reason for a failed write to the artifact storage.
ARCHIVE_OPERATION_FAILED = "ArchiveOperationFailed"


@dataclass(frozen=True, slots=True)
class Mark:
    """A condition to set."""

    type: c.ConditionType
    reason: str
    message: str
    status: c.ConditionStatus = c.ConditionStatus.TRUE


@dataclass(frozen=True, slots=True)
class StatusEdit:
    """Conditions to delete then mark, status fields to drop then write."""

    marks: tuple[Mark, ...] = ()
    deletes: tuple[c.ConditionType, ...] = ()
    writes: Mapping[str, Any] = field(default_factory=dict)
    drops: tuple[str, ...] = ()

    @classmethod
    def failed(cls, type: c.ConditionType, error: GitopsMeshError) -> StatusEdit:
        """``type`` True with the error's reason and message (FetchFailed, BuildFailed, ...)."""
        return cls(marks=(Mark(type, error.reason, str(error)),))

    def mark(self, type: c.ConditionType) -> Mark | None:
        """The mark of ``type`` this edit makes, if any."""
        return next((m for m in self.marks if m.type == type), None)

    def apply(self, obj: KubeObject, *, now: datetime) -> None:
        status: dict[str, Any] = obj.setdefault("status", {})
        for key in self.drops:
            status.pop(key, None)
        status.update(self.writes)
        for type in self.deletes:
            c.delete(obj, type)
        for m in self.marks:
            cond: c.Condition = {
                "type": m.type,
                "status": m.status,
                "lastTransitionTime": "",
                "reason": m.reason,
                "message": m.message,
            }
            c.set_condition(obj, cond, now=now)


@dataclass(frozen=True, slots=True)
class Done:
    """The reconcile ends well: apply ``edit`` and return ``outcome``."""

    edit: StatusEdit
    outcome: Outcome

    def apply(self, obj: KubeObject, *, now: datetime) -> Outcome:
        self.edit.apply(obj, now=now)
        return self.outcome


@dataclass(frozen=True, slots=True)
class Failure:
    """The reconcile ends with ``error``, after ``edit`` records why."""

    edit: StatusEdit
    error: GitopsMeshError

    def apply(self, obj: KubeObject, *, now: datetime) -> GitopsMeshError:
        """Record the failure; the error to raise."""
        self.edit.apply(obj, now=now)
        return self.error

    def fail(self, obj: KubeObject, *, cause: BaseException, now: datetime) -> NoReturn:
        """Record the failure of a step that raised ``cause``, and raise the error (``cause`` itself, or
        chained to it)."""
        self.edit.apply(obj, now=now)
        if self.error is cause:
            raise cause
        raise self.error from cause


def storage_failed(what: str, error: OSError | StorageError) -> Failure:
    """Writing ``what`` (the artifact, the chart, the index) to storage failed: StorageOperationFailed, retried."""
    return Failure(
        StatusEdit(marks=(Mark(c.ConditionType.STORAGE_OPERATION_FAILED, ARCHIVE_OPERATION_FAILED, str(error)),)),
        TransientError(f"storing the {what} failed: {error}", reason=ARCHIVE_OPERATION_FAILED),
    )
