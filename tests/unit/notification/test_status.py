"""Ready on Alerts and Providers: the spec-level problems, and the conditions the runner concludes from them."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from gitops_mesh.errors import InvalidSpec, TransientError
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import conclude, progressing
from notification_controller.status import (
    AlertReconciler,
    ProviderReconciler,
    alert_problem,
    provider_problem,
    provider_ref,
)
from tests.unit.notification.support import alert_object, provider_object

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"type": "generic", "address": "https://h/x"}, None),
        ({"type": "slack", "secretRef": {"name": "s"}}, None),
        ({"type": "github", "address": "git@github.com:a/b.git", "secretRef": {"name": "s"}}, None),
        ({"type": "telegram", "address": "https://h/x"}, "InvalidProviderConfig"),
        ({"type": "github", "address": "https://github.com/a/b"}, "InvalidProviderConfig"),
        ({"type": "generic"}, "InvalidProviderConfig"),
        ({"type": "generic", "address": "hooks.example.com/x"}, "InvalidProviderConfig"),
    ],
)
def test_provider_problem(spec: dict[str, Any], reason: str | None) -> None:
    problem = provider_problem(provider_object(**spec))
    assert (problem[0] if problem else None) == reason


def test_alert_problem() -> None:
    assert alert_problem(alert_object(), provider_exists=True) is None
    assert alert_problem(alert_object(), provider_exists=False) == (
        "ProviderNotFound",
        "Provider 'apps/p' does not exist",
    )
    bad = alert_problem(alert_object(exclusionList=["(x"]), provider_exists=True)
    assert bad is not None
    assert bad[0] == "InvalidConfig"
    assert "'(x'" in bad[1]


class Providers:
    """The Provider cache the AlertReconciler reads (an Informer in the controller)."""

    def __init__(self, *objs: KubeObject) -> None:
        self.objs = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}

    def get(self, namespace: str | None, name: str) -> KubeObject | None:
        return self.objs.get((namespace or "", name))


async def settle(reconciler: AlertReconciler | ProviderReconciler, obj: KubeObject, *, now: datetime = NOW) -> Any:
    """What the runner does around a reconciler: the progress mark on a new generation, then conclude."""
    if c.generation_of(obj) != (obj.get("status") or {}).get("observedGeneration"):
        progressing(obj, "reconciliation in progress", now=now)
    return conclude(obj, await reconciler.reconcile(obj), now=now)


def ready(obj: KubeObject) -> tuple[str, str, str]:
    cond = c.get(obj, "Ready")
    assert cond is not None
    return cond["status"], cond["reason"], cond["message"]


def at_generation(obj: KubeObject, generation: int) -> KubeObject:
    obj["metadata"]["generation"] = generation
    return obj


async def test_a_usable_provider_is_ready_at_its_generation() -> None:
    obj = at_generation(provider_object(address="https://hooks.example.com/x"), 3)
    assert (await settle(ProviderReconciler(), obj)).result() is None  # no timer: changes bring the next look
    assert ready(obj) == ("True", "Succeeded", "Initialized")
    assert obj["status"]["observedGeneration"] == 3
    assert c.get(obj, "Reconciling") is None
    assert not c.is_stalled(obj)
    before = copy.deepcopy(obj["status"])
    await settle(ProviderReconciler(), obj, now=datetime(2027, 1, 1, tzinfo=UTC))
    assert obj["status"] == before  # nothing to patch on a re-run


async def test_a_provider_spec_problem_stalls_until_edited() -> None:
    obj = at_generation(provider_object(type="telegram", address="https://h/x"), 2)
    decision = await settle(ProviderReconciler(), obj)
    with pytest.raises(InvalidSpec):
        decision.result()
    status, reason, message = ready(obj)
    assert (status, reason) == ("False", "InvalidProviderConfig")
    assert message == "provider type 'telegram' is not supported by this controller"
    assert c.is_stalled(obj)
    assert obj["status"]["observedGeneration"] == 2


async def test_an_alert_without_its_provider_is_retried_not_stalled_and_ready_once_it_exists() -> None:
    obj = at_generation(alert_object(), 4)
    decision = await settle(AlertReconciler(Providers()), obj)
    with pytest.raises(TransientError):
        decision.result()  # the workers retry it; the Provider's arrival wakes it sooner
    assert ready(obj) == ("False", "ProviderNotFound", "Provider 'apps/p' does not exist")
    assert not c.is_stalled(obj)
    assert obj["status"]["observedGeneration"] == 4  # the verdict on this generation is in

    assert (await settle(AlertReconciler(Providers(provider_object())), obj)).result() is None
    assert ready(obj) == ("True", "Succeeded", "Initialized")
    assert c.get(obj, "Reconciling") is None


async def test_an_alert_spec_problem_stalls_even_with_its_provider() -> None:
    obj = at_generation(alert_object(exclusionList=["(x"]), 1)
    decision = await settle(AlertReconciler(Providers(provider_object())), obj)
    with pytest.raises(InvalidSpec):
        decision.result()
    assert ready(obj)[1] == "InvalidConfig"
    assert c.is_stalled(obj)
    assert obj["status"]["observedGeneration"] == 1


def test_an_alert_is_indexed_under_the_provider_it_names() -> None:
    assert provider_ref(alert_object(providerRef={"name": "slack"})) == ["Provider/apps/slack"]
    assert provider_ref(alert_object(providerRef={})) == []
