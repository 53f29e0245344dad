"""The result finaliser, pure: concludes a reconcile's outcome into kstatus conditions and a requeue decision.

Runs at the end of every reconcile, just before the one status patch. It follows Flux's controllers
(kustomize-controller ``finalizeStatus`` and fluxcd/pkg ``runtime/reconcile`` ``ResultFinalizer``):

=================  ==================================================  ==================================
outcome            conditions                                          decision
=================  ==================================================  ==================================
succeeded          Ready=True, no Reconciling, no Stalled              ``requeue_after`` (the interval)
transient error    Ready=False (kept if the reconcile set it False),   ``error``: a TransientError the
                   Reconciling's reason -> ProgressingWithRetry         workers requeue after its
                                                                       ``retry_after`` (the error's own,
                                                                       else the kind's retry interval),
                                                                       else with backoff
dependency wait    Ready=False/DependencyNotReady, as transient        ``requeue_after`` = ``retry_after``
                                                                       or ``--requeue-dependency``
terminal error     Stalled=True and Ready=False with its reason,       ``error`` (no retry until the spec
                   no Reconciling                                      changes)
suspended          untouched                                           nothing
=================  ==================================================  ==================================

Always: ``status.lastHandledReconcileAt`` echoes the ``reconcile.fluxcd.io/requestedAt`` annotation, and
``status.observedGeneration`` is set to the generation when the object ends Ready or Stalled (never on
a transient failure, so observers can tell "this spec has not been handled yet").

Any error that is not a :class:`TerminalError` is transient: an apiserver 404/403/422 that escaped a
reconcile (a Secret not there yet, RBAC not granted yet, a CRD not installed yet) is retried, as Flux
retries it. An outcome also names the bus events it announces (:class:`Announcement`); the runner
publishes them only once the status that records the same fact is written.

The finaliser mutates the object's ``status`` in place (the working copy the controller then patches);
it does no I/O and takes ``now`` from the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from gitops_mesh.bus.envelope import Artifact, EventKind, Severity
from gitops_mesh.errors import DependencyNotReady, GitopsMeshError, TerminalError, TransientError
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.conditions import ConditionType, Reason

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
DEFAULT_READY_MESSAGE = "Reconciliation succeeded"


def requested_at(obj: Mapping[str, Any]) -> str | None:
    """The token of the ``reconcile.fluxcd.io/requestedAt`` annotation (any string; not a time), if set."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(REQUESTED_AT)
    return value if isinstance(value, str) else None


def last_handled_reconcile_at(obj: Mapping[str, Any]) -> str | None:
    """``status.lastHandledReconcileAt``, if set."""
    value = (obj.get("status") or {}).get("lastHandledReconcileAt")
    return value if isinstance(value, str) else None


def reconcile_requested(obj: Mapping[str, Any]) -> bool:
    """True while a ``requestedAt`` token has not yet been echoed to ``lastHandledReconcileAt``."""
    token = requested_at(obj)
    return token is not None and token != last_handled_reconcile_at(obj)


class OutcomeKind(StrEnum):
    SUCCEEDED = "succeeded"
    TRANSIENT = "transient"
    DEPENDENCY_NOT_READY = "dependency_not_ready"
    TERMINAL = "terminal"
    SUSPENDED = "suspended"
    PROGRESSING = "progressing"


@dataclass(frozen=True, slots=True)
class Announcement:
    """A bus event about the reconciled object, published once the status recording it is written.

    Publishing first would let a consumer read the old status (and a failed status write would announce
    what never happened); the next reconcile, finding the status unchanged, announces it then.
    """

    kind: EventKind
    reason: str
    message: str
    revision: str = ""
    severity: Severity = Severity.INFO
    metadata: Mapping[str, str] = field(default_factory=dict)
    artifact: Artifact | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one reconcile ended with; build it with the class methods."""

    kind: OutcomeKind
    requeue_after: float | None = None
    reason: str = Reason.RECONCILIATION_SUCCEEDED
    message: str | None = None
    error: Exception | None = None
    announce: tuple[Announcement, ...] = ()

    @classmethod
    def succeeded(
        cls,
        *,
        requeue_after: float | None,
        message: str | None = None,
        reason: str = Reason.RECONCILIATION_SUCCEEDED,
        announce: Iterable[Announcement] = (),
    ) -> Outcome:
        """Success, next run after ``requeue_after`` seconds (None: only on events).

        With ``message`` Ready becomes True with it; without, a Ready=True the reconcile set is kept.
        """
        return cls(
            OutcomeKind.SUCCEEDED, requeue_after=requeue_after, reason=reason, message=message, announce=tuple(announce)
        )

    @classmethod
    def suspended(cls) -> Outcome:
        return cls(OutcomeKind.SUSPENDED)

    @classmethod
    def progressing(cls, message: str, *, requeue_after: float, reason: str = Reason.PROGRESSING) -> Outcome:
        """Work is under way and must be looked at again (a health check): Ready=Unknown, Reconciling=True.

        The next look is a timer, not a wait, so the worker is free meanwhile.
        """
        return cls(OutcomeKind.PROGRESSING, requeue_after=requeue_after, reason=reason, message=message)

    @classmethod
    def failed(cls, error: Exception) -> Outcome:
        """Classify an error by its class; anything not ours is treated as transient."""
        if isinstance(error, DependencyNotReady):
            kind = OutcomeKind.DEPENDENCY_NOT_READY
        elif isinstance(error, TerminalError):
            kind = OutcomeKind.TERMINAL
        else:
            kind = OutcomeKind.TRANSIENT
        reason = error.reason if isinstance(error, GitopsMeshError) else Reason.FAILED
        return cls(kind, reason=reason, message=str(error) or type(error).__name__, error=error)


@dataclass(frozen=True, slots=True)
class Conclusion:
    """The requeue decision: requeue after a delay, hand an error to the workers, or neither."""

    requeue_after: float | None
    error: Exception | None

    def result(self) -> float | None:
        """What a reconcile function returns to the workers: raises the error, else the requeue delay."""
        if self.error is not None:
            raise self.error
        return self.requeue_after


def progressing(
    obj: MutableMapping[str, Any],
    message: str,
    *,
    now: datetime,
    reason: str = Reason.PROGRESSING,
    drift: bool = False,
) -> None:
    """The progress mark before the work starts (Flux ``ProgressiveStatus``).

    Reconciling=True (and no Stalled); Ready becomes Unknown only when it is absent or already Unknown,
    or on ``drift``, so a healthy object does not flap to Unknown on every periodic run.
    """
    c.mark_reconciling(obj, reason, message, now=now)
    if drift or c.is_unknown(obj, ConditionType.READY):
        c.mark_unknown(obj, ConditionType.READY, reason, message, now=now)


def _retrying(obj: MutableMapping[str, Any], now: datetime) -> None:
    reconciling = c.get(obj, ConditionType.RECONCILING)
    if reconciling is not None and c.is_false(obj, ConditionType.READY):
        c.mark_reconciling(obj, Reason.PROGRESSING_WITH_RETRY, reconciling["message"], now=now)


def conclude(
    obj: MutableMapping[str, Any],
    outcome: Outcome,
    *,
    now: datetime,
    requeue_dependency: float = 30.0,
    retry_interval: float | None = None,
    ready_before: c.Condition | None = None,
) -> Conclusion:
    """Write the final conditions, observedGeneration and lastHandledReconcileAt; return the decision.

    ``ready_before`` is the Ready condition the object came in with: a Ready=False still equal to it is
    the previous cycle's verdict, not this reconcile's. ``retry_interval`` is when a failed object is
    tried again (Flux's ``spec.retryInterval`` for the kinds that have one); None leaves it to the
    work queue's backoff. An error's own ``retry_after`` wins over both.
    """
    kind, message = outcome.kind, outcome.message or ""
    decision = Conclusion(requeue_after=None, error=None)

    if kind is OutcomeKind.SUCCEEDED:
        c.delete(obj, ConditionType.STALLED)
        if outcome.message is not None:
            c.mark_true(obj, ConditionType.READY, outcome.reason, message, now=now)
        elif c.is_false(obj, ConditionType.READY):
            # A "success" that left Ready=False is a failure the reconcile forgot to raise (Flux turns the
            # Ready message into the error): retry rather than report Ready.
            err = TransientError(c.get_message(obj, ConditionType.READY), reason=c.get_reason(obj, ConditionType.READY))
            return conclude(
                obj,
                Outcome.failed(err),
                now=now,
                requeue_dependency=requeue_dependency,
                retry_interval=retry_interval,
                ready_before=None,
            )
        elif c.is_unknown(obj, ConditionType.READY):
            c.mark_true(obj, ConditionType.READY, outcome.reason, DEFAULT_READY_MESSAGE, now=now)
        c.delete(obj, ConditionType.RECONCILING)
        decision = Conclusion(requeue_after=outcome.requeue_after, error=None)

    elif kind is OutcomeKind.TRANSIENT:
        c.delete(obj, ConditionType.STALLED)
        # Keep a Ready=False the reconcile set itself: its reason (BuildFailed, ...) says more than ours. One
        # left from the last cycle (DependencyNotReady, say) must not hide this failure.
        if not (c.is_false(obj, ConditionType.READY) and _set_by_this_reconcile(obj, ready_before)):
            c.mark_false(obj, ConditionType.READY, outcome.reason, message, now=now)
        _retrying(obj, now)
        decision = Conclusion(requeue_after=None, error=_retryable(outcome, message, retry_interval))

    elif kind is OutcomeKind.DEPENDENCY_NOT_READY:
        c.delete(obj, ConditionType.STALLED)
        # DependencyNotReady unless the error names Flux's own reason for the wait (helm's SourceNotReady).
        c.mark_false(obj, ConditionType.READY, outcome.reason or Reason.DEPENDENCY_NOT_READY, message, now=now)
        _retrying(obj, now)
        retry_after = outcome.error.retry_after if isinstance(outcome.error, TransientError) else None
        decision = Conclusion(requeue_after=retry_after if retry_after is not None else requeue_dependency, error=None)

    elif kind is OutcomeKind.TERMINAL:
        c.mark_stalled(obj, outcome.reason, message, now=now)
        c.mark_false(obj, ConditionType.READY, outcome.reason, message, now=now)
        decision = Conclusion(requeue_after=None, error=outcome.error or TerminalError(message))

    elif kind is OutcomeKind.PROGRESSING:
        c.delete(obj, ConditionType.STALLED)
        c.mark_reconciling(obj, outcome.reason, message, now=now)
        c.mark_unknown(obj, ConditionType.READY, outcome.reason, message, now=now)
        decision = Conclusion(requeue_after=outcome.requeue_after, error=None)

    # SUSPENDED leaves the conditions as they are (Flux's controllers return before touching them).

    if c.is_true(obj, ConditionType.READY):
        c.delete(obj, ConditionType.RECONCILING)
    updates: dict[str, Any] = {}
    token = requested_at(obj)
    if token is not None:
        updates["lastHandledReconcileAt"] = token
    if c.is_stalled(obj) or c.is_ready(obj):
        updates["observedGeneration"] = c.generation_of(obj)
    if updates:
        status = obj.get("status")
        if not isinstance(status, MutableMapping):
            status = obj["status"] = {}
        status.update(updates)
    return decision


def _retryable(outcome: Outcome, message: str, retry_interval: float | None) -> TransientError:
    """The error the workers requeue: the reconcile's own when it is a TransientError with a delay of its
    own, else one carrying ``retry_interval`` (with the original as its cause, for the log)."""
    error = outcome.error
    if isinstance(error, TransientError) and (error.retry_after is not None or retry_interval is None):
        return error
    retry_after = error.retry_after if isinstance(error, TransientError) else None
    wrapped = TransientError(
        message, reason=outcome.reason, retry_after=retry_after if retry_after is not None else retry_interval
    )
    wrapped.__cause__ = error
    return wrapped


def _set_by_this_reconcile(obj: MutableMapping[str, Any], ready_before: c.Condition | None) -> bool:
    ready = c.get(obj, ConditionType.READY)
    if ready is None or ready_before is None:
        return ready is not None
    return not c.same_state(ready, ready_before)
