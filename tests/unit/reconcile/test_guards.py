"""guards: Flux's guard order (deleting, finalizer, suspended) and the controller's own preconditions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from gitops_mesh.errors import DependencyNotReady, InvalidSpec
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.guards import (
    FINALIZER,
    Precondition,
    Step,
    add_finalizer,
    check_preconditions,
    dependency_ready,
    first_step,
    has_finalizer,
    is_deleting,
    is_suspended,
    remove_finalizer,
)


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


def test_helpers() -> None:
    assert is_deleting(obj(deleting=True))
    assert not is_deleting(obj())
    assert has_finalizer(obj(finalizers=[FINALIZER]))
    assert not has_finalizer(obj())
    assert is_suspended(obj(suspend=True))
    assert not is_suspended(obj(suspend="true"))  # only the boolean the schema allows
    assert not is_suspended({"metadata": {}})


def test_add_and_remove_finalizer() -> None:
    o = obj(finalizers=["other.io/x"])
    assert add_finalizer(o)
    assert not add_finalizer(o)
    assert o["metadata"]["finalizers"] == ["other.io/x", FINALIZER]
    assert remove_finalizer(o)
    assert not remove_finalizer(o)
    assert o["metadata"]["finalizers"] == ["other.io/x"]
    bare: dict[str, Any] = {}
    assert add_finalizer(bare)
    assert bare == {"metadata": {"finalizers": [FINALIZER]}}


def test_dependency_ready_needs_the_current_generation_handled_and_ready() -> None:
    dep = obj()
    assert not dependency_ready(dep)
    c.mark_true(dep, "Ready", "ReconciliationSucceeded", now=datetime(2024, 1, 1, tzinfo=UTC))
    assert not dependency_ready(dep)  # no observedGeneration yet
    dep["status"]["observedGeneration"] = 1
    assert dependency_ready(dep)
    dep["metadata"]["generation"] = 2
    assert not dependency_ready(dep)  # spec changed, not handled yet


async def test_preconditions_run_in_order_and_stop_at_the_first_failure() -> None:
    seen: list[str] = []

    def named(name: str, error: Exception | None = None) -> Precondition:
        async def check(o: Mapping[str, Any]) -> None:
            seen.append(name)
            if error is not None:
                raise error

        return check

    await check_preconditions(obj(), [named("source"), named("dependsOn")])
    assert seen == ["source", "dependsOn"]

    seen.clear()
    with pytest.raises(DependencyNotReady):
        await check_preconditions(obj(), [named("source", DependencyNotReady("no artifact")), named("dependsOn")])
    assert seen == ["source"]

    seen.clear()
    with pytest.raises(InvalidSpec):
        await check_preconditions(obj(), [named("source"), named("dependsOn", InvalidSpec("cross-namespace"))])
    assert seen == ["source", "dependsOn"]
