"""Poison on a topic: garbage and failing handlers land in ``<prefix>dlq`` with a reason; the consumer moves on."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from gitops_mesh.bus.consumer import DLQ_DETAIL, DLQ_OFFSET, DLQ_REASON, DLQ_TOPIC, HANDLER_FAILED, Consumer, RecordMeta
from gitops_mesh.bus.envelope import Event, encode
from gitops_mesh.bus.kafka import Producer
from gitops_mesh.bus.topics import Topic, Topics
from gitops_mesh.errors import TransientError
from tests.integration.bus.support import committed_offsets, end_offsets, event, read_all, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.timeout(60)]

KEY = b"Kustomization/apps/web"


async def test_poison_goes_to_the_dlq_and_the_consumer_moves_on(
    kafka_bootstrap: str, bus_topics: Topics, producer: Producer, unique: str
) -> None:
    topic = bus_topics.name(Topic.APPLIED)
    wrong_version = dict(event("web", seq=1))
    wrong_version["specversion"] = "0.3"
    # All under one key, so one partition, so "moves on" means: past the poison to what follows it.
    sent: list[tuple[str, bytes]] = [
        ("garbage", b"\x00\x01 definitely not json"),
        ("ok-1", encode(event("web", seq=1))),
        ("wrong-version", orjson.dumps(wrong_version)),
        ("boom", encode(event("web", seq=2, reason="Boom"))),
        ("flaky", encode(event("web", seq=3, reason="Flaky"))),
        ("ok-2", encode(event("web", seq=4))),
    ]
    # Written with aiokafka itself: our own Publisher could not put garbage on a topic.
    raw = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await raw.start()
    try:
        for _, value in sent:
            await raw.send_and_wait(topic, value, key=KEY)
    finally:
        await raw.stop()

    handled: list[int] = []
    flaky_attempts = 0

    async def handle(ev: Event, _: RecordMeta) -> None:
        nonlocal flaky_attempts
        if ev.reason == "Boom":
            raise RuntimeError("the handler has a bug")
        if ev.reason == "Flaky":
            flaky_attempts += 1
            if flaky_attempts < 3:
                raise TransientError("apiserver busy", retry_after=0.1)
        handled.append(int(ev.metadata["seq"]))

    group = f"{unique}-group"
    async with Consumer(
        bootstrap=kafka_bootstrap,
        group_id=group,
        topics=[Topic.APPLIED],
        names=bus_topics,
        handler=handle,
        producer=producer,
        offset_reset="earliest",
    ) as consumer:
        await wait_until(lambda: 4 in handled, 30, "the message behind the poison to be handled")
        assert consumer.ready() is None
        await asyncio.sleep(0.5)

    assert handled == [1, 3, 4], "valid events in order, the transient one retried until it passed"
    assert flaky_attempts == 3

    dead = await read_all(kafka_bootstrap, bus_topics.name(Topic.DLQ), expect=3)
    assert len(dead) == 3
    by_offset = {int(dict(r.headers)[DLQ_OFFSET]): r for r in dead}
    assert sorted(by_offset) == [0, 2, 3]
    reasons = {off: dict(r.headers)[DLQ_REASON].decode() for off, r in by_offset.items()}
    assert reasons == {0: "NotJSON", 2: "UnsupportedSpecVersion", 3: HANDLER_FAILED}
    for off, record in by_offset.items():
        headers = dict(record.headers)
        assert record.value == sent[off][1], "the original bytes are kept as they were"
        assert record.key == KEY
        assert headers[DLQ_TOPIC].decode() == topic
    assert b"RuntimeError: the handler has a bug" in dict(by_offset[3].headers)[DLQ_DETAIL]
    assert b"specversion" in dict(by_offset[2].headers)[DLQ_DETAIL]

    # Committed past everything, poison included: a restart would not see any of it again.
    ends = await end_offsets(kafka_bootstrap, topic)
    assert await committed_offsets(kafka_bootstrap, group) == {tp: end for tp, end in ends.items() if end > 0}
