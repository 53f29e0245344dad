"""Guard clauses, pure: which step a reconcile takes first, in Flux's order, before any real work.

Flux's controllers check, in this order: deleting -> finalizer -> suspended -> source ready ->
dependencies. The first three are the same for every kind and are decided here from the object alone
(:func:`first_step`). The last two need other objects, so each controller passes its own
:data:`Precondition` functions, awaited in order by :func:`check_preconditions` once the step is
``RECONCILE``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from enum import StrEnum
from typing import Any

from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.conditions import ConditionType

FINALIZER = "finalizers.fluxcd.io"


class Step(StrEnum):
    DELETING = "deleting"  # deletionTimestamp set: clean up, then remove the finalizer
    ADD_FINALIZER = "add_finalizer"  # patch the finalizer in before anything can be created
    SUSPENDED = "suspended"  # spec.suspend: do nothing until resumed
    RECONCILE = "reconcile"


#: A controller's own guard (source ready, dependsOn): returns when satisfied, raises
#: :class:`~gitops_mesh.errors.DependencyNotReady` to wait (without holding a worker) or a
#: :class:`~gitops_mesh.errors.TerminalError` when no retry can satisfy it.
Precondition = Callable[[Mapping[str, Any]], Awaitable[None]]


def is_deleting(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def has_finalizer(obj: Mapping[str, Any], finalizer: str = FINALIZER) -> bool:
    return finalizer in ((obj.get("metadata") or {}).get("finalizers") or ())


def is_suspended(obj: Mapping[str, Any]) -> bool:
    return (obj.get("spec") or {}).get("suspend") is True


def first_step(obj: Mapping[str, Any], finalizer: str = FINALIZER) -> Step:
    """The first applicable guard; ``RECONCILE`` when none applies."""
    if is_deleting(obj):
        return Step.DELETING
    # Before anything is created, so a delete racing the first reconcile cannot orphan what it creates.
    if not has_finalizer(obj, finalizer):
        return Step.ADD_FINALIZER
    if is_suspended(obj):
        return Step.SUSPENDED
    return Step.RECONCILE


def add_finalizer(obj: MutableMapping[str, Any], finalizer: str = FINALIZER) -> bool:
    """Append ``finalizer`` to ``metadata.finalizers``; True when it was missing."""
    meta = obj.setdefault("metadata", {})
    finalizers = meta.get("finalizers") or []
    if finalizer in finalizers:
        return False
    meta["finalizers"] = [*finalizers, finalizer]
    return True


def remove_finalizer(obj: MutableMapping[str, Any], finalizer: str = FINALIZER) -> bool:
    """Drop ``finalizer`` from ``metadata.finalizers``; True when it was there."""
    meta = obj.get("metadata") or {}
    finalizers = meta.get("finalizers") or []
    if finalizer not in finalizers:
        return False
    meta["finalizers"] = [f for f in finalizers if f != finalizer]
    return True


def dependency_ready(dep: Mapping[str, Any]) -> bool:
    """Flux's readiness of a dependency: its current generation was handled and it is Ready=True."""
    status = dep.get("status") or {}
    return status.get("observedGeneration") == c.generation_of(dep) and c.is_true(dep, ConditionType.READY)


async def check_preconditions(obj: Mapping[str, Any], preconditions: Iterable[Precondition]) -> None:
    """Await the controller's guards in order; the first that raises stops the reconcile."""
    for check in preconditions:
        await check(obj)
