"""A publisher whose sender is stuck (Kafka up, topic missing): readiness flags the backlog, the buffer stays bounded."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import REGISTRY

from gitops_mesh.bus.kafka import Producer
from gitops_mesh.bus.producer import Publisher
from gitops_mesh.bus.topics import Topics
from tests.integration.bus.support import event, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.timeout(60)]


def _dropped(topic: str) -> float:
    return REGISTRY.get_sample_value("gitops_bus_dropped_total", {"topic": topic}) or 0.0


async def test_backlog_shows_in_readiness_and_overflow_is_counted(kafka_bootstrap: str, unique: str) -> None:
    # The broker does not auto-create topics, so the sender cannot hand anything over.
    missing = f"{unique}.never-created"
    before = _dropped(missing)
    producer = Producer(bootstrap=kafka_bootstrap, request_timeout=1.0)
    pub = Publisher(producer=producer, topics=Topics(f"{unique}."), buffer_size=4, high_water=0.5)
    await pub.start()
    try:
        await wait_until(lambda: pub.ready() is None, 20, "publisher connected")
        t0 = time.monotonic()
        accepted = [pub.publish(missing, event(f"o{i}")) for i in range(6)]
        assert time.monotonic() - t0 < 0.1, "publish() must not wait for Kafka"
        assert accepted == [True, True, True, True, False, False]
        assert _dropped(missing) == before + 2
        reason = pub.ready()
        assert reason is not None
        assert "4 events waiting for kafka" in reason
        await asyncio.sleep(1.5)
        assert pub.buffered == 4, "nothing is dropped while retrying"
    finally:
        t0 = time.monotonic()
        await pub.close(timeout=1.0)
        await producer.close()
        assert time.monotonic() - t0 < 8, "close() is bounded by its timeout even when Kafka takes nothing"
    assert _dropped(missing) == before + 6
