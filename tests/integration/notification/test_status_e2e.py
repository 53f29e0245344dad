"""Ready on Alerts and Providers, written by the controller against the real apiserver."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from gitops_mesh.kube import KubeClient
from gitops_mesh.reconcile import conditions as c
from tests.integration.conftest import eventually
from tests.integration.notification.conftest import API, Controller, make_alert, make_provider

pytestmark = pytest.mark.stack


async def test_ready_conditions(
    kube: KubeClient, namespace: str, controller_factory: Callable[..., Awaitable[Controller]]
) -> None:
    await make_provider(kube, namespace, "unsupported", type="telegram", address="https://example.com/x")
    await make_alert(kube, namespace, "orphan", "later")
    await make_alert(kube, namespace, "bad-regex", "unsupported", exclusionList=["(unclosed"])
    await controller_factory()

    async def condition(kind: str, name: str, status: str, reason: str) -> bool:
        obj = await kube.get(API, kind, name, namespace=namespace)
        ready = c.get(obj, "Ready")
        gen_ok = obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
        return ready is not None and (ready["status"], ready["reason"]) == (status, reason) and gen_ok

    await eventually(lambda: condition("Provider", "unsupported", "False", "InvalidProviderConfig"), timeout=20)
    await eventually(lambda: condition("Alert", "orphan", "False", "ProviderNotFound"), timeout=20)
    await eventually(lambda: condition("Alert", "bad-regex", "False", "InvalidConfig"), timeout=20)
    await make_provider(kube, namespace, "later", type="generic", address="https://example.com/hook")
    await eventually(lambda: condition("Provider", "later", "True", "Succeeded"), timeout=20)
    await eventually(lambda: condition("Alert", "orphan", "True", "Succeeded"), timeout=20)

    # Alerts and Providers carry no finalizer (Flux v1beta3 has none); a deletion needs no controller.
    for kind, name in (("Alert", "orphan"), ("Provider", "later")):
        assert not (await kube.get(API, kind, name, namespace=namespace))["metadata"].get("finalizers")
    stalled = await kube.get(API, "Provider", "unsupported", namespace=namespace)
    assert c.is_stalled(stalled)  # a spec problem waits for an edit
    # A Ready Alert has no timer: only the Provider's deletion can tell it that the Provider is gone.
    await kube.delete(API, "Provider", "later", namespace=namespace)
    await eventually(lambda: condition("Alert", "orphan", "False", "ProviderNotFound"), timeout=10)
    orphan = await kube.get(API, "Alert", "orphan", namespace=namespace)
    assert not c.is_stalled(orphan)  # the Provider may come back: retried, not stalled
