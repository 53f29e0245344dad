"""guards: Flux's guard order (deleting, finalizer, suspended) and the controller's own preconditions."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_mesh.reconcile.guards import FINALIZER, Step, first_step, has_finalizer, is_deleting, is_suspended


def obj(*, deleting: bool = False, finalizers: list[str] | None = None, suspend: Any = None) -> dict[str, Any]:
    o: dict[str, Any] = {"metadata": {"name": "app", "namespace": "default", "generation": 1}, "spec": {}}
    if deleting:
        o["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    if finalizers is not None:
        o["metadata"]["finalizers"] = finalizers
    if suspend is not None:
        o["spec"]["suspend"] = suspend
    return o


@pytest.mark.parametrize(
    ("o", "step"),
    [
        (obj(), Step.ADD_FINALIZER),
        (obj(finalizers=[FINALIZER]), Step.RECONCILE),
        (obj(finalizers=["other.io/x"]), Step.ADD_FINALIZER),
        (obj(finalizers=[FINALIZER], suspend=True), Step.SUSPENDED),
        (obj(finalizers=[FINALIZER], suspend=False), Step.RECONCILE),
        (obj(suspend=True), Step.ADD_FINALIZER),  # finalizer first, even when suspended
        (obj(deleting=True, finalizers=[FINALIZER], suspend=True), Step.DELETING),  # deleting beats everything
        (obj(deleting=True), Step.DELETING),
    ],
)
def test_first_step_follows_flux_order(o: dict[str, Any], step: Step) -> None:
    assert first_step(o) is step


def test_a_controller_can_name_its_own_finalizer() -> None:
    o = obj(finalizers=["helm.toolkit.fluxcd.io/finalizer"])
    assert first_step(o) is Step.ADD_FINALIZER
    assert first_step(o, "helm.toolkit.fluxcd.io/finalizer") is Step.RECONCILE


def test_a_kind_without_a_finalizer_has_no_finalizer_step() -> None:
    # Flux's v1beta3 Alerts and Providers: nothing to clean up, so no finalizer is ever added.
    assert first_step(obj(), None) is Step.RECONCILE
    assert first_step(obj(finalizers=["other.io/x"]), None) is Step.RECONCILE
    assert first_step(obj(suspend=True), None) is Step.SUSPENDED
    assert first_step(obj(deleting=True, finalizers=["other.io/x"]), None) is Step.DELETING


def test_helpers() -> None:
    assert is_deleting(obj(deleting=True))
    assert not is_deleting(obj())
    assert has_finalizer(obj(finalizers=[FINALIZER]))
    assert not has_finalizer(obj())
    assert is_suspended(obj(suspend=True))
    assert not is_suspended(obj(suspend="true"))  # only the boolean the schema allows
    assert not is_suspended({"metadata": {}})
