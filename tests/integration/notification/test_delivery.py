"""Durable delivery against real sinks and Kafka: outages, order, rejections, Retry-After, budgets, dedupe, garbage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gitops_mesh.bus.topics import Topic
from gitops_mesh.kube import KubeClient
from tests.integration.conftest import eventually
from tests.integration.notification.conftest import Bus, Controller, applied, make_alert, make_provider, wait_for
from tests.support.sink import Received, Sink

pytestmark = pytest.mark.stack

Sinks = Callable[..., Awaitable[Sink]]
Factory = Callable[..., Awaitable[Controller]]


def seqs(sink: Sink) -> list[str]:
    """The ``seq`` metadata of the deliveries the sink accepted, in arrival order."""
    return [r.json()["metadata"]["seq"] for r in sink.ok()]


def down_until(t_up: list[float]) -> Callable[[Received, int], int]:
    """503 until ``time.monotonic() >= t_up[0]``, then 200."""

    def behaviour(_r: Received, _n: int) -> int:
        return 200 if time.monotonic() >= t_up[0] else 503

    return behaviour


async def setup_generic(kube: KubeClient, namespace: str, sink: Sink, name: str = "hook", **alert: Any) -> None:
    await make_provider(kube, namespace, name, type="generic", address=f"{sink.url}/{name}")
    await make_alert(kube, namespace, name, name, **alert)


async def publish_series(bus: Bus, namespace: str, n: int, name: str = "podinfo") -> None:
    for i in range(n):
        await bus.publish(
            Topic.APPLIED,
            applied(name, namespace, message=f"applied #{i}", revision=f"main@sha1:{i:040x}", metadata={"seq": str(i)}),
        )


async def test_sink_down_for_a_while_then_every_alert_arrives_in_order(
    kube: KubeClient, namespace: str, bus: Bus, sinks: Sinks, controller_factory: Factory
) -> None:
    t_up = [time.monotonic() + 6]
    sink = await sinks(down_until(t_up))
    await setup_generic(kube, namespace, sink)
    ctl = await controller_factory("--delivery-hold=60s")
    await publish_series(bus, namespace, 8)
    await wait_for(lambda: len(sink.ok()) >= 8, 60, "all 8 deliveries", ctl)
    await asyncio.sleep(1)
    assert seqs(sink) == [str(i) for i in range(8)]
    assert any(r.status == 503 for r in sink.requests)
    assert await ctl.metric("gitops_notification_deliveries_total", result="parked") == 0


async def test_long_outage_goes_through_the_retry_lane_in_order(
    kube: KubeClient, namespace: str, bus: Bus, sinks: Sinks, controller_factory: Factory
) -> None:
    t_up = [time.monotonic() + 1e9]
    sink = await sinks(down_until(t_up))
    other = await sinks()
    await setup_generic(kube, namespace, sink)
    await setup_generic(kube, namespace, other, name="healthy")
    ctl = await controller_factory("--delivery-hold=1s", "--delivery-max-backoff=2s")
    await publish_series(bus, namespace, 6)
    # The healthy provider is not held up by the failing one.
    await wait_for(lambda: len(other.ok()) >= 6, 30, "the healthy provider's deliveries", ctl)
    assert seqs(other) == [str(i) for i in range(6)]

    async def handed_over() -> bool:
        return await ctl.metric("gitops_notification_deliveries_total", result="handed_over") >= 6

    await eventually(handed_over, timeout=30)
    t_up[0] = time.monotonic()
    await wait_for(lambda: len(sink.ok()) >= 6, 60, "the retry lane's deliveries", ctl)
    await asyncio.sleep(1)
    assert seqs(sink) == [str(i) for i in range(6)]
    assert len(await bus.records(bus.retry_topic)) >= 6


async def test_a_400_is_not_retried_and_is_parked_with_an_event_on_the_alert(
    kube: KubeClient, namespace: str, bus: Bus, sinks: Sinks, controller_factory: Factory
) -> None:
    sink = await sinks(lambda _r, _n: 400)
    await setup_generic(kube, namespace, sink)
    ctl = await controller_factory()
    await bus.publish(Topic.APPLIED, applied("podinfo", namespace))
    await wait_for(lambda: len(sink.requests) >= 1, 30, "the attempt", ctl)

    async def parked() -> bool:
        return len(await bus.dead_letters()) >= 1

    await eventually(parked, timeout=30)
    await asyncio.sleep(2)
    assert len(sink.requests) == 1
    headers, envelope = (await bus.dead_letters())[0]
    assert headers["dlq-reason"] == "HTTP400"
    assert headers["dlq-alert"] == f"{namespace}/hook"
    assert headers["dlq-topic"] == bus.topics.name(Topic.APPLIED)
    assert envelope["type"] == "io.gitops-mesh.notification-retry.v1"
    assert envelope["data"]["message"] == "Applied revision: main@sha1:" + "a" * 40

    async def warned() -> bool:
        events = await kube.list("v1", "Event", namespace=namespace)
        return any(
            e["reason"] == "NotificationDispatchFailed" and e["involvedObject"]["kind"] == "Alert" for e in events.items
        )

    await eventually(warned, timeout=20)


async def test_retry_after_is_honoured(
    kube: KubeClient, namespace: str, bus: Bus, sinks: Sinks, controller_factory: Factory
) -> None:
    sink = await sinks(lambda _r, n: 429 if n == 0 else 200, retry_after="2")
    await setup_generic(kube, namespace, sink)
    ctl = await controller_factory()
    await bus.publish(Topic.APPLIED, applied("podinfo", namespace))
    await wait_for(lambda: len(sink.ok()) >= 1, 30, "the delivery", ctl)
    first, second = sink.requests[0], sink.requests[1]
    assert first.status == 429
    assert second.at - first.at >= 1.9
    assert first.headers["X-Gotk-Event-Id"] == second.headers["X-Gotk-Event-Id"]


async def test_retry_budget_exhausted_parks_the_delivery(
    kube: KubeClient, namespace: str, bus: Bus, sinks: Sinks, controller_factory: Factory
) -> None:
    sink = await sinks(lambda _r, _n: 503)
    await setup_generic(kube, namespace, sink)
    ctl = await controller_factory("--delivery-hold=1s", "--delivery-max-backoff=1s", "--delivery-retry-budget=4s")
    await bus.publish(Topic.APPLIED, applied("podinfo", namespace))

    async def parked() -> bool:
        return any(h["dlq-reason"] == "RetryBudgetExhausted" for h, _ in await bus.dead_letters())

    await eventually(parked, timeout=40)
    attempts = len(sink.requests)
    assert attempts >= 3
    await asyncio.sleep(3)
    assert len(sink.requests) == attempts
    assert await ctl.metric("gitops_notification_deliveries_total", result="parked") == 1


async def test_repeats_with_volatile_text_are_sent_once_per_interval(
    kube: KubeClient, namespace: str, bus: Bus, sinks: Sinks, controller_factory: Factory
) -> None:
    sink = await sinks()
    await setup_generic(kube, namespace, sink)
    ctl = await controller_factory()
    for took in ("2.08s", "3.1s", "850ms"):
        await bus.publish(Topic.APPLIED, applied("podinfo", namespace, message=f"Reconciliation finished in {took}"))
    await bus.publish(
        Topic.APPLIED,
        applied("podinfo", namespace, message="Reconciliation finished in 1s", revision="main@sha1:" + "b" * 40),
    )
    await bus.publish(Topic.APPLIED, applied("other", namespace, message="Reconciliation finished in 1s"))
    await wait_for(lambda: len(sink.ok()) >= 3, 30, "three distinct deliveries", ctl)
    await asyncio.sleep(2)
    got = [(r.json()["involvedObject"]["name"], r.json()["metadata"]["revision"][-1]) for r in sink.ok()]
    assert got == [("podinfo", "a"), ("podinfo", "b"), ("other", "a")]


async def test_garbage_and_unknown_kinds_hold_nothing_up(
    kube: KubeClient, namespace: str, bus: Bus, sinks: Sinks, controller_factory: Factory
) -> None:
    sink = await sinks()
    await setup_generic(kube, namespace, sink)
    ctl = await controller_factory()
    await bus.send_raw(Topic.APPLIED, b"\x00not json")
    await bus.publish(Topic.EVENTS, applied("x", namespace, kind="Unheard", api_version="example.com/v1"))
    await bus.publish(Topic.APPLIED, applied("podinfo", namespace))
    await wait_for(lambda: len(sink.ok()) >= 1, 30, "the valid event", ctl)
    dead = await bus.dead_letters()
    assert [h["dlq-reason"] for h, _ in dead] == ["NotJSON"]
    assert len(sink.requests) == 1


async def test_a_provider_with_a_bad_address_or_missing_secret(
    kube: KubeClient, namespace: str, bus: Bus, sinks: Sinks, controller_factory: Factory
) -> None:
    sink = await sinks()
    await make_provider(kube, namespace, "bad", type="generic", address="not-a-url")
    await make_alert(kube, namespace, "bad", "bad")
    await make_provider(kube, namespace, "nosecret", type="generic-hmac", address=sink.url, secretRef={"name": "later"})
    await make_alert(kube, namespace, "nosecret", "nosecret")
    await setup_generic(kube, namespace, sink)
    ctl = await controller_factory("--delivery-hold=1s", "--delivery-max-backoff=1s")
    await bus.publish(Topic.APPLIED, applied("podinfo", namespace))
    await wait_for(lambda: len(sink.ok()) >= 1, 30, "the good provider's delivery", ctl)

    async def parked_bad() -> bool:
        return any(h["dlq-reason"] == "InvalidProviderConfig" for h, _ in await bus.dead_letters())

    await eventually(parked_bad, timeout=20)
    # The missing Secret is waited for; once it exists the delivery goes out, signed.
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "later", "namespace": namespace},
            "stringData": {"token": "k"},
        }
    )
    await wait_for(lambda: any("X-Signature" in r.headers for r in sink.ok()), 40, "the signed delivery", ctl)
