"""A message Kafka refuses as too large is dropped and counted on its own; its batch-mates still arrive, in order."""

from __future__ import annotations

import contextlib

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from prometheus_client import REGISTRY

from gitops_mesh.bus.envelope import parse_event
from gitops_mesh.bus.kafka import Producer
from gitops_mesh.bus.producer import Publisher
from gitops_mesh.bus.topics import Topic, Topics
from tests.integration.bus.support import PARTITIONS, event, read_all

pytestmark = [pytest.mark.stack, pytest.mark.timeout(60)]


def _dropped(topic: str) -> float:
    return REGISTRY.get_sample_value("gitops_bus_dropped_total", {"topic": topic}) or 0.0


async def test_only_the_oversized_event_is_dropped(kafka_bootstrap: str, producer: Producer, unique: str) -> None:
    topics = Topics(f"{unique}.")
    topic = topics.name(Topic.EVENTS)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        # Smaller than the client's own limit, so only the broker can refuse: the case aiokafka cannot
        # attribute to one message when the refused batch held several.
        await admin.create_topics(
            [
                NewTopic(
                    topic, num_partitions=PARTITIONS, replication_factor=1, topic_configs={"max.message.bytes": "4096"}
                )
            ]
        )
        before = _dropped(topic)
        async with Publisher(producer=producer, topics=topics, max_backoff=0.5) as pub:
            for seq in range(8):
                ev = event("web", seq=seq)
                if seq == 3:
                    ev["data"]["metadata"]["padding"] = "x" * 8000
                assert pub.publish(Topic.EVENTS, ev)
            assert await pub.flush(30), f"{pub.buffered} events still buffered"
            assert pub.ready() is None
        assert _dropped(topic) == before + 1

        records = await read_all(kafka_bootstrap, topic, expect=7)
        assert [int(parse_event(r.value).metadata["seq"]) for r in records] == [0, 1, 2, 4, 5, 6, 7]
    finally:
        with contextlib.suppress(KafkaError):
            await admin.delete_topics([topic])
        await admin.close()
