"""Status conditions on Kubernetes JSON, pure: the one place every controller sets, reads and deletes them.

Semantics follow fluxcd/pkg ``runtime/conditions`` (setter.go, getter.go):

* ``lastTransitionTime`` is kept unless the condition's *status, reason or message* changes (Flux's rule,
  stricter than apimachinery's ``SetStatusCondition``, which only looks at status); it is stamped with
  ``now`` truncated to the second, in UTC.
* ``observedGeneration`` is always stamped with the object's generation.
* After every set, conditions are sorted as Flux sorts them: ``Stalled``, ``Reconciling``, ``Ready``,
  then every other type in lexicographic order.
* Unlike Flux (where it is a convention), negative-polarity types (``Stalled``, ``Reconciling``,
  ``FetchFailed``, ...) are only ever present while True: marking one False or Unknown deletes it.

A *target* is either a conditions list (mutated in place) or an object dict (its
``status.conditions`` is created when missing). Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, NotRequired, TypedDict, cast

from gitops_mesh.timestamps import rfc3339


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(TypedDict):
    """``metav1.Condition`` as JSON."""

    type: str
    status: str
    observedGeneration: NotRequired[int]
    lastTransitionTime: str
    reason: str
    message: str


class ConditionType(StrEnum):
    """Condition types of the Flux APIs (shared ones and source-controller's)."""

    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    HEALTHY = "Healthy"
    ARTIFACT_IN_STORAGE = "ArtifactInStorage"
    ARTIFACT_OUTDATED = "ArtifactOutdated"
    SOURCE_VERIFIED = "SourceVerified"
    FETCH_FAILED = "FetchFailed"
    BUILD_FAILED = "BuildFailed"
    STORAGE_OPERATION_FAILED = "StorageOperationFailed"


class Reason(StrEnum):
    """Reasons of the Flux APIs (fluxcd/pkg apis/meta and the controllers' shared ones)."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    PROGRESSING = "Progressing"
    PROGRESSING_WITH_RETRY = "ProgressingWithRetry"
    SUSPENDED = "Suspended"
    DEPENDENCY_NOT_READY = "DependencyNotReady"
    ARTIFACT_FAILED = "ArtifactFailed"
    BUILD_FAILED = "BuildFailed"
    HEALTH_CHECK_FAILED = "HealthCheckFailed"
    HEALTH_CHECK_CANCELED = "HealthCheckCanceled"
    PRUNE_FAILED = "PruneFailed"
    RECONCILIATION_SUCCEEDED = "ReconciliationSucceeded"
    RECONCILIATION_FAILED = "ReconciliationFailed"
    INVALID_CEL_EXPRESSION = "InvalidCELExpression"
    FEATURE_GATE_DISABLED = "FeatureGateDisabled"
    ACCESS_DENIED = "AccessDenied"


#: "Abnormal-true" types (kstatus): present only while True.
NEGATIVE_POLARITY: frozenset[str] = frozenset(
    {
        ConditionType.STALLED,
        ConditionType.RECONCILING,
        ConditionType.ARTIFACT_OUTDATED,
        ConditionType.FETCH_FAILED,
        ConditionType.BUILD_FAILED,
        ConditionType.STORAGE_OPERATION_FAILED,
    }
)

# Flux's conditionWeights: these go first, in this order, so `kubectl get -o yaml` shows the summary on top.
_WEIGHTS: dict[str, int] = {ConditionType.STALLED: 0, ConditionType.RECONCILING: 1, ConditionType.READY: 2}

Target = list[Condition] | MutableMapping[str, Any]
View = Sequence[Condition] | Mapping[str, Any]


def format_time(now: datetime) -> str:
    """RFC 3339 in UTC truncated to the second, as metav1.Time serialises (naive datetimes are taken as UTC)."""
    return rfc3339(now)


def generation_of(obj: Mapping[str, Any]) -> int:
    """``metadata.generation`` (0 when absent)."""
    meta = obj.get("metadata") or {}
    return int(meta.get("generation") or 0)


def conditions_of(target: View) -> Sequence[Condition]:
    """The conditions of a list or an object, for reading (never creates anything)."""
    if isinstance(target, Sequence):
        return target
    status = target.get("status")
    if not isinstance(status, Mapping):
        return []
    conds = status.get("conditions")
    return cast(Sequence[Condition], conds) if isinstance(conds, list) else []


def _writable(target: Target) -> list[Condition]:
    if isinstance(target, list):
        return target
    status = target.get("status")
    if not isinstance(status, MutableMapping):
        status = target["status"] = {}
    conds = status.get("conditions")
    if not isinstance(conds, list):
        conds = status["conditions"] = []
    return cast(list[Condition], conds)


def _generation(target: Target | View, generation: int | None) -> int:
    if generation is not None:
        return generation
    if isinstance(target, Mapping):
        return generation_of(target)
    raise TypeError("generation= is required when the target is a bare conditions list")


def _order(cond: Condition) -> tuple[int, str]:
    t = cond["type"]
    weight = _WEIGHTS.get(t)
    return (weight, "") if weight is not None else (len(_WEIGHTS), t)


def sort_conditions(conds: list[Condition]) -> None:
    """Sort in place in Flux's order: Stalled, Reconciling, Ready, then the rest by type."""
    conds.sort(key=_order)


def same_state(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """The same verdict: type, status, reason and message (times and generation aside)."""
    return all(a.get(k) == b.get(k) for k in ("type", "status", "reason", "message"))


def set_condition(target: Target, condition: Condition, *, now: datetime, generation: int | None = None) -> None:
    """Set ``condition`` by type (Flux's ``conditions.Set``), then sort; see the module docstring for the rules."""
    gen = _generation(target, generation)
    ctype = str(condition["type"])
    if ctype in NEGATIVE_POLARITY and condition["status"] != ConditionStatus.TRUE:
        delete(target, ctype)
        return
    new: Condition = {
        "type": ctype,
        "status": str(condition["status"]),
        "observedGeneration": gen,
        "lastTransitionTime": condition.get("lastTransitionTime") or "",
        "reason": str(condition["reason"]),
        "message": str(condition["message"]),
    }
    conds = _writable(target)
    for i, existing in enumerate(conds):
        if existing.get("type") != ctype:
            continue
        if same_state(existing, new):
            new["lastTransitionTime"] = existing.get("lastTransitionTime") or format_time(now)
        else:
            new["lastTransitionTime"] = format_time(now)
        conds[i] = new
        break
    else:
        # A caller-provided time survives on first insertion, as in Flux (used when mirroring a condition).
        new["lastTransitionTime"] = new["lastTransitionTime"] or format_time(now)
        conds.append(new)
    sort_conditions(conds)


def _mark(
    target: Target,
    ctype: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> None:
    cond: Condition = {"type": ctype, "status": status, "lastTransitionTime": "", "reason": reason, "message": message}
    set_condition(target, cond, now=now, generation=generation)


def mark_true(
    target: Target, type: str, reason: str, message: str = "", *, now: datetime, generation: int | None = None
) -> None:
    """Set ``type`` to True. ``generation`` defaults to the object's ``metadata.generation``."""
    _mark(target, type, ConditionStatus.TRUE, reason, message, now, generation)


def mark_false(
    target: Target, type: str, reason: str, message: str = "", *, now: datetime, generation: int | None = None
) -> None:
    """Set ``type`` to False (deletes it when it has negative polarity)."""
    _mark(target, type, ConditionStatus.FALSE, reason, message, now, generation)


def mark_unknown(
    target: Target, type: str, reason: str, message: str = "", *, now: datetime, generation: int | None = None
) -> None:
    """Set ``type`` to Unknown (deletes it when it has negative polarity)."""
    _mark(target, type, ConditionStatus.UNKNOWN, reason, message, now, generation)


def mark_reconciling(
    target: Target, reason: str, message: str = "", *, now: datetime, generation: int | None = None
) -> None:
    """Reconciling=True and no Stalled: the start of a reconcile (Flux ``MarkReconciling``)."""
    delete(target, ConditionType.STALLED)
    mark_true(target, ConditionType.RECONCILING, reason, message, now=now, generation=generation)


def mark_stalled(
    target: Target, reason: str, message: str = "", *, now: datetime, generation: int | None = None
) -> None:
    """Stalled=True and no Reconciling: retrying cannot help (Flux ``MarkStalled``)."""
    delete(target, ConditionType.RECONCILING)
    mark_true(target, ConditionType.STALLED, reason, message, now=now, generation=generation)


def delete(target: Target, type: str) -> bool:
    """Remove the condition of ``type``; True when there was one."""
    if isinstance(target, list):
        conds = target
    else:
        view = conditions_of(target)
        if not view:
            return False
        conds = _writable(target)
    before = len(conds)
    conds[:] = [c for c in conds if c.get("type") != type]
    return len(conds) != before


def get(target: View, type: str) -> Condition | None:
    """The condition of ``type``, or None."""
    for cond in conditions_of(target):
        if cond.get("type") == type:
            return cond
    return None


def has(target: View, type: str) -> bool:
    return get(target, type) is not None


def is_true(target: View, type: str) -> bool:
    cond = get(target, type)
    return cond is not None and cond.get("status") == ConditionStatus.TRUE


def is_false(target: View, type: str) -> bool:
    cond = get(target, type)
    return cond is not None and cond.get("status") == ConditionStatus.FALSE


def is_unknown(target: View, type: str) -> bool:
    """True when the condition is Unknown *or absent* (Flux's ``IsUnknown``)."""
    cond = get(target, type)
    return cond is None or cond.get("status") == ConditionStatus.UNKNOWN


def get_reason(target: View, type: str) -> str:
    cond = get(target, type)
    return cond.get("reason", "") if cond is not None else ""


def get_message(target: View, type: str) -> str:
    cond = get(target, type)
    return cond.get("message", "") if cond is not None else ""


def is_stalled(target: View) -> bool:
    return is_true(target, ConditionType.STALLED)


def is_reconciling(target: View) -> bool:
    return is_true(target, ConditionType.RECONCILING)


def is_ready(target: View) -> bool:
    """Ready=True and neither Stalled nor Reconciling (kstatus "Current")."""
    return is_true(target, ConditionType.READY) and not is_stalled(target) and not is_reconciling(target)
