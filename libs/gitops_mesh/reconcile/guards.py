"""Guard clauses, pure: which step a reconcile takes first, in Flux's order, before any real work.

Flux's controllers check, in this order: deleting -> finalizer -> suspended -> source ready ->
dependencies. The first three are the same for every kind and are decided here from the object alone
(:func:`first_step`). The last two need other objects: each reconciler checks them against the caches
(the one readiness rule is :func:`gitops_mesh.watches.is_ready_at_generation`), and the runtime's watches
wake it when they change.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

FINALIZER = "finalizers.fluxcd.io"


class Step(StrEnum):
    DELETING = "deleting"  # deletionTimestamp set: clean up, then remove the finalizer
    ADD_FINALIZER = "add_finalizer"  # patch the finalizer in before anything can be created
    SUSPENDED = "suspended"  # spec.suspend: do nothing until resumed
    RECONCILE = "reconcile"


def is_deleting(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def has_finalizer(obj: Mapping[str, Any], finalizer: str = FINALIZER) -> bool:
    return finalizer in ((obj.get("metadata") or {}).get("finalizers") or ())


def is_suspended(obj: Mapping[str, Any]) -> bool:
    return (obj.get("spec") or {}).get("suspend") is True


def first_step(obj: Mapping[str, Any], finalizer: str | None = FINALIZER) -> Step:
    """The first applicable guard; ``RECONCILE`` when none applies.

    ``finalizer`` None is a kind that owns nothing to clean up (Flux's v1beta3 Alerts and Providers carry
    no finalizer): there is no finalizer step.
    """
    if is_deleting(obj):
        return Step.DELETING
    # Before anything is created, so a delete racing the first reconcile cannot orphan what it creates.
    if finalizer is not None and not has_finalizer(obj, finalizer):
        return Step.ADD_FINALIZER
    if is_suspended(obj):
        return Step.SUSPENDED
    return Step.RECONCILE
