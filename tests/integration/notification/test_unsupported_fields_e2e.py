"""Fields the notification-controller does not implement, against the real controller, apiserver and Kafka: a
Receiver with ``resourceFilter`` and a Provider with ``serviceAccountName`` are Stalled saying so, the Receiver
requests nothing, and nothing is delivered through the Provider (its deliveries are parked with the reason)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from gitops_mesh.bus.topics import Topic
from gitops_mesh.kube import KubeClient
from gitops_mesh.reconcile import conditions as c
from tests.integration.conftest import eventually
from tests.integration.notification.conftest import (
    API,
    Bus,
    Controller,
    applied,
    make_alert,
    make_provider,
    make_secret,
    wait_for,
)
from tests.integration.notification.test_receivers_e2e import (
    RECEIVER_API,
    TOKEN,
    make_receiver,
    make_repo,
    post,
    requested_at,
    wait_ready,
)
from tests.support.sink import Sink

pytestmark = pytest.mark.stack

Sinks = Callable[..., Awaitable[Sink]]
Factory = Callable[..., Awaitable[Controller]]


async def stalled_for(kube: KubeClient, api: str, kind: str, namespace: str, name: str, words: str) -> bool:
    obj = await kube.get(api, kind, name, namespace=namespace)
    return (
        c.is_false(obj, "Ready")
        and c.get_reason(obj, "Ready") == "UnsupportedField"
        and words in c.get_message(obj, "Ready")
        and c.is_stalled(obj)
    )


async def warnings(kube: KubeClient, namespace: str, name: str) -> list[str]:
    events = await kube.list("v1", "Event", namespace=namespace)
    return [
        str(e.get("message"))
        for e in events.items
        if e["reason"] == "UnsupportedField" and e["involvedObject"]["name"] == name and e["type"] == "Warning"
    ]


async def test_a_receiver_with_a_resource_filter_is_refused_and_requests_nothing(
    kube: KubeClient, namespace: str, controller_factory: Factory
) -> None:
    await make_secret(kube, namespace, "token", {"token": TOKEN})
    await make_repo(kube, namespace, "app")
    filtered = await make_receiver(kube, namespace, "filtered", "generic", resourceFilter="res.metadata.name == 'x'")
    plain = await make_receiver(kube, namespace, "plain", "generic")
    ctl = await controller_factory()
    await wait_ready(kube, namespace, "plain")

    words = "spec.resourceFilter is not supported by this controller"
    await eventually(lambda: stalled_for(kube, RECEIVER_API, "Receiver", namespace, "filtered", words), timeout=20)
    receiver = await kube.get(RECEIVER_API, "Receiver", "filtered", namespace=namespace)
    assert "webhookPath" not in receiver["status"]  # never given a path: its webhook does not exist
    await eventually(lambda: _any(warnings(kube, namespace, "filtered")), timeout=20)
    assert any(words in line.get("error", "") for line in ctl.log_lines()), ctl.tail()

    assert await post(ctl.receiver_port, filtered) == (404, "Not Found")
    assert await requested_at(kube, namespace, "app") is None  # nothing was asked to reconcile
    assert (await post(ctl.receiver_port, plain))[0] == 200  # the same request to a Receiver without it acts
    await eventually(lambda: _is_set(requested_at(kube, namespace, "app")), timeout=10)


async def test_a_provider_with_a_service_account_is_refused_and_delivers_nothing(
    kube: KubeClient, namespace: str, bus: Bus, sinks: Sinks, controller_factory: Factory
) -> None:
    sink = await sinks()
    await make_provider(
        kube, namespace, "identity", type="generic", address=f"{sink.url}/identity", serviceAccountName="sa"
    )
    await make_alert(kube, namespace, "identity", "identity")
    await make_provider(kube, namespace, "good", type="generic", address=f"{sink.url}/good")
    await make_alert(kube, namespace, "good", "good")
    ctl = await controller_factory("--delivery-hold=2s")

    words = "spec.serviceAccountName is not supported by this controller"
    await eventually(lambda: stalled_for(kube, API, "Provider", namespace, "identity", words), timeout=20)
    await eventually(lambda: _any(warnings(kube, namespace, "identity")), timeout=20)

    await bus.publish(Topic.APPLIED, applied("podinfo", namespace))
    await wait_for(lambda: any(r.path == "/good" for r in sink.ok()), 30, "the good provider's delivery", ctl)

    async def parked() -> bool:
        return any(h.get("dlq-provider") == f"{namespace}/identity" for h, _ in await bus.dead_letters())

    await eventually(parked, timeout=30)
    [header] = [h for h, _ in await bus.dead_letters() if h.get("dlq-provider") == f"{namespace}/identity"]
    assert header["dlq-reason"] == "UnsupportedField"
    assert words in header["dlq-detail"]
    assert [r.path for r in sink.requests] == ["/good"]


async def _any(messages: Awaitable[list[str]]) -> bool:
    return bool(await messages)


async def _is_set(value: Awaitable[str | None]) -> bool:
    return await value is not None
