"""The controller SIGKILLed mid-delivery and restarted: nothing is lost, in the hot lane or in the retry lane."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import pytest

from gitops_mesh.kube import KubeClient
from tests.integration.notification.conftest import Bus, Controller, wait_for
from tests.integration.notification.test_delivery import down_until, publish_series, seqs, setup_generic
from tests.support.sink import Sink

pytestmark = pytest.mark.stack

Sinks = Callable[..., Awaitable[Sink]]
Factory = Callable[..., Awaitable[Controller]]


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(("--delivery-hold=5m",), id="killed in the hot lane"),
        pytest.param(
            ("--delivery-hold=1s", "--delivery-max-backoff=1s"), id="killed with deliveries in the retry lane"
        ),
    ],
)
async def test_sigkill_mid_delivery_then_restart_loses_nothing(
    kube: KubeClient, namespace: str, bus: Bus, sinks: Sinks, controller_factory: Factory, flags: tuple[str, ...]
) -> None:
    t_up = [time.monotonic() + 1e9]
    sink = await sinks(down_until(t_up))
    await setup_generic(kube, namespace, sink)
    ctl = await controller_factory(*flags)
    await publish_series(bus, namespace, 5)
    await wait_for(lambda: len(sink.requests) >= 3, 30, "failing attempts", ctl)
    ctl.kill()
    before = len(sink.requests)
    t_up[0] = time.monotonic()
    ctl.start()
    await ctl.ready()
    await wait_for(lambda: {"0", "1", "2", "3", "4"} <= set(seqs(sink)), 60, "every delivery after the restart", ctl)
    assert len(sink.requests) > before
    # At-least-once: a repeat is possible, and carries the same idempotency key as the original.
    by_seq: dict[str, set[str]] = {}
    for r in sink.ok():
        by_seq.setdefault(r.json()["metadata"]["seq"], set()).add(r.headers["X-Gotk-Event-Id"])
    assert all(len(ids) == 1 for ids in by_seq.values())
