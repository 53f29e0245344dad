"""Kafka stopped and started again: publishing never fails, readiness says so meanwhile, and nothing is lost."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import REGISTRY

from gitops_mesh.bus.consumer import Consumer, RecordMeta
from gitops_mesh.bus.envelope import Event
from gitops_mesh.bus.kafka import Producer
from gitops_mesh.bus.producer import Publisher
from gitops_mesh.bus.topics import Topic, Topics
from tests.integration.bus.support import event, stack_kafka, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.timeout(100)]

PROCESSES = ("early", "doomed", "late")


async def test_events_published_while_kafka_is_stopped_are_delivered_after(
    kafka_bootstrap: str, bus_topics: Topics, unique: str
) -> None:
    topic = bus_topics.name(Topic.APPLIED)
    dropped_before = _dropped(topic)
    received: dict[str, list[int]] = {}

    async def handle(ev: Event, _: RecordMeta) -> None:
        received.setdefault(ev.involved_object.name, []).append(int(ev.metadata["seq"]))

    # One producer each: they stand for three processes (started before, during and shut down in the outage).
    producers = {name: Producer(bootstrap=kafka_bootstrap, client_id=name, request_timeout=2.0) for name in PROCESSES}

    def publisher(name: str) -> Publisher:
        return Publisher(producer=producers[name], topics=bus_topics, probe_interval=0.3, max_backoff=1.0)

    pub = publisher("early")
    doomed = publisher("doomed")
    late = publisher("late")
    consumer = Consumer(
        bootstrap=kafka_bootstrap,
        group_id=f"{unique}-group",
        topics=[Topic.APPLIED],
        names=bus_topics,
        handler=handle,
        producer=producers["early"],
        offset_reset="earliest",
        probe_interval=0.3,
        max_backoff=1.0,
    )
    await pub.start()
    await doomed.start()
    await consumer.start()
    try:
        pub.publish(Topic.APPLIED, event("before"))
        await wait_until(lambda: "before" in received, 30, "the event published before the outage")
        await wait_until(lambda: doomed.ready() is None, 10, "the second publisher connected")
        assert pub.ready() is None
        assert consumer.ready() is None

        await stack_kafka("stop")
        try:
            for seq in range(5):
                # Returns at once: a reconcile never waits for Kafka.
                assert pub.publish(Topic.APPLIED, event("during", seq=seq))
            assert doomed.publish(Topic.APPLIED, event("doomed"))
            # A process starting while Kafka is down starts too, and keeps trying in the background.
            await asyncio.wait_for(late.start(), 1)
            assert late.publish(Topic.APPLIED, event("late"))
            await wait_until(
                lambda: None not in (pub.ready(), late.ready(), doomed.ready(), consumer.ready()),
                15,
                "readiness to report Kafka down",
            )
            for p in (pub, late, doomed):
                assert "unreachable" in (p.ready() or "")
            assert "unreachable" in (consumer.ready() or "")
            assert REGISTRY.get_sample_value("gitops_bus_connected") == 0
            assert pub.buffered == 5

            # Shutting down while Kafka is away takes no longer than asked, and says what it could not send.
            t0 = time.monotonic()
            await doomed.close(timeout=0.5)
            await producers["doomed"].close()
            assert time.monotonic() - t0 < 6
            assert _dropped(topic) == dropped_before + 1
        finally:
            # Other engineers' tests need Kafka: always bring it back.
            await stack_kafka("start")

        await wait_until(lambda: pub.ready() is None and late.ready() is None, 30, "publishers ready")
        assert await pub.flush(30)
        assert await late.flush(30)
        # The same consumer, never restarted by the test, picks up where it was.
        await wait_until(
            lambda: received.get("during") == list(range(5)) and "late" in received,
            45,
            f"the events published during the outage (got {received})",
        )
        await wait_until(lambda: consumer.ready() is None, 15, "consumer ready")
        assert received["before"] == [0], "nothing handled twice: the offset committed before the outage held"
        assert _dropped(topic) == dropped_before + 1
    finally:
        await consumer.stop()
        for p in (pub, late, doomed):
            await p.close()
        for producer in producers.values():
            await producer.close()


def _dropped(topic: str) -> float:
    return REGISTRY.get_sample_value("gitops_bus_dropped_total", {"topic": topic}) or 0.0
