"""One producer per process: the Publisher, a Consumer's dead letters and the notification parking share it."""

from __future__ import annotations

import contextlib
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from gitops_mesh.bus.consumer import DLQ_GROUP, DLQ_REASON, DLQ_TOPIC, HANDLER_FAILED, Consumer, RecordMeta
from gitops_mesh.bus.envelope import Event, encode, parse_event
from gitops_mesh.bus.kafka import Producer
from gitops_mesh.bus.producer import Publisher
from gitops_mesh.bus.topics import Topic, Topics, ensure_topics
from notification_controller.parking import DLQ_ALERT, Parking
from notification_controller.records import RETRY_TOPIC, Delivery, from_record
from tests.integration.bus.support import PARTITIONS, event, read_all, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.timeout(90)]


async def test_publisher_dead_letters_and_parking_go_out_on_one_producer(
    kafka_bootstrap: str, bus_topics: Topics, producer: Producer, unique: str
) -> None:
    retry_topic = f"{bus_topics.prefix}{RETRY_TOPIC}"
    dlq = bus_topics.name(Topic.DLQ)
    await ensure_topics(kafka_bootstrap, [retry_topic], partitions=PARTITIONS)
    handled: list[str] = []

    async def handle(ev: Event, _: RecordMeta) -> None:
        if ev.reason == "Boom":
            raise RuntimeError("the handler has a bug")
        handled.append(ev.involved_object.name)

    parking = Parking(producer=producer, retry_topic=retry_topic, dlq_topic=dlq, group=f"{unique}-nc")
    delivery = Delivery(
        event=parse_event(encode(event("alerted", seq=7))),
        alert="apps/on-call",
        provider="apps/slack",
        attempts=3,
        first_failure=time.time() - 60,
        last_error="503 Service Unavailable",
        not_before=time.time() + 30,
        seq=42,
    )
    try:
        async with (
            Publisher(producer=producer, topics=bus_topics) as pub,
            Consumer(
                bootstrap=kafka_bootstrap,
                group_id=f"{unique}-group",
                topics=[Topic.APPLIED],
                names=bus_topics,
                handler=handle,
                producer=producer,
                offset_reset="earliest",
            ) as consumer,
        ):
            assert pub.publish(Topic.APPLIED, event("fine", seq=1))
            assert pub.publish(Topic.APPLIED, event("buggy", seq=2, reason="Boom"))
            assert await pub.flush(20), "the publisher's events were acknowledged"
            # The hot lane's hand-over and give-up, each acknowledged before it returns.
            await parking.retry_later(delivery)
            await parking.dead_letter(
                delivery, reason="ProviderRejected", detail="400 Bad Request", source_topic=retry_topic
            )
            await wait_until(lambda: "fine" in handled, 30, "the good event handled")
            dead = await read_all(kafka_bootstrap, dlq, expect=2)
            assert consumer.ready() is None

        assert producer.sessions_started == 1, "publisher, dead letters and parking shared one aiokafka producer"

        by_reason = {dict(r.headers)[DLQ_REASON].decode(): r for r in dead}
        assert set(by_reason) == {HANDLER_FAILED, "ProviderRejected"}
        from_consumer = dict(by_reason[HANDLER_FAILED].headers)
        assert from_consumer[DLQ_TOPIC].decode() == bus_topics.name(Topic.APPLIED)
        assert from_consumer[DLQ_GROUP].decode() == f"{unique}-group"
        assert parse_event(by_reason[HANDLER_FAILED].value).involved_object.name == "buggy"
        parked = by_reason["ProviderRejected"]
        assert dict(parked.headers)[DLQ_ALERT] == b"apps/on-call"
        assert from_record(parse_event(parked.value)) == delivery, "a dead letter is replayable as it was"

        [retried] = await read_all(kafka_bootstrap, retry_topic, expect=1)
        assert from_record(parse_event(retried.value)) == delivery, "the retry lane gets the delivery intact"
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=5000)
        with contextlib.suppress(KafkaError, OSError, TimeoutError):
            await admin.start()
            await admin.delete_topics([retry_topic])
        await admin.close()


async def test_a_session_renewed_by_another_user_costs_the_publisher_nothing(
    kafka_bootstrap: str, bus_topics: Topics, producer: Producer
) -> None:
    topic = bus_topics.name(Topic.APPLIED)
    async with Publisher(producer=producer, topics=bus_topics) as pub:
        for seq in range(100):
            assert pub.publish(Topic.APPLIED, event("web", seq=seq))
        assert await pub.flush(20)
        for seq in range(100, 200):
            assert pub.publish(Topic.APPLIED, event("web", seq=seq))
        # As a dead-letter or parking write that failed would: the session is retired under the publisher,
        # failing whatever it had handed over and not yet seen acknowledged.
        await producer.renew(await producer.session())
        assert await pub.flush(30), f"{pub.buffered} events never acknowledged after the renewal"
        await wait_until(lambda: pub.ready() is None, 10, "publisher ready again")
    assert producer.sessions_started == 2

    records = await read_all(kafka_bootstrap, topic, expect=200)
    seqs = [int(parse_event(r.value).metadata["seq"]) for r in records]
    # At-least-once: a batch Kafka took just before the renewal may arrive twice; none is missing, and the
    # first arrival of each keeps the publishing order (one key, one partition).
    first_seen = list(dict.fromkeys(seqs))
    assert first_seen == list(range(200))
