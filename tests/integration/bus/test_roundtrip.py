"""Publish -> consume through the real Kafka: every event arrives, in order per object, committed after handling."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from gitops_mesh.bus.consumer import Consumer, RecordMeta
from gitops_mesh.bus.envelope import Event
from gitops_mesh.bus.kafka import Producer
from gitops_mesh.bus.producer import Publisher
from gitops_mesh.bus.topics import Topic, Topics
from tests.integration.bus.support import committed_offsets, end_offsets, event, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.timeout(60)]

OBJECTS = ("web", "api", "db", "cache", "queue")
PER_OBJECT = 20


async def test_round_trip_keeps_order_per_object_and_commits(
    kafka_bootstrap: str, bus_topics: Topics, producer: Producer, unique: str
) -> None:
    group = f"{unique}-group"
    seen: dict[str, list[int]] = defaultdict(list)
    metas: list[RecordMeta] = []
    ids: set[str] = set()

    async def handle(ev: Event, meta: RecordMeta) -> None:
        # A little latency so handlers on different partitions overlap, as they would in production.
        await asyncio.sleep(0.001)
        seen[ev.involved_object.name].append(int(ev.metadata["seq"]))
        metas.append(meta)
        ids.add(ev.id)

    async with Publisher(producer=producer, topics=bus_topics) as pub:
        assert await _eventually_ready(pub)
        # Interleaved across objects, so order per key is not an accident of sending one key at a time.
        for seq in range(PER_OBJECT):
            for name in OBJECTS:
                assert pub.publish(Topic.APPLIED, event(name, seq=seq))
        assert await pub.flush(20), f"{pub.buffered} events not acknowledged"
        assert pub.ready() is None

    consumer = Consumer(
        bootstrap=kafka_bootstrap,
        group_id=group,
        topics=[Topic.APPLIED],
        names=bus_topics,
        handler=handle,
        producer=producer,
        offset_reset="earliest",
    )
    async with consumer:
        total = len(OBJECTS) * PER_OBJECT
        await wait_until(lambda: len(ids) == total, 30, f"{total} events handled")
        assert consumer.ready() is None
    for name in OBJECTS:
        assert seen[name] == list(range(PER_OBJECT)), f"{name} out of order: {seen[name]}"
    # One object, one partition: the key is what the partitioner hashes.
    partitions_by_key: dict[bytes | None, set[int]] = defaultdict(set)
    for m in metas:
        partitions_by_key[m.key].add(m.partition)
    assert all(len(ps) == 1 for ps in partitions_by_key.values())
    assert {m.key for m in metas} == {f"Kustomization/apps/{n}".encode() for n in OBJECTS}

    topic = bus_topics.name(Topic.APPLIED)
    assert await committed_offsets(kafka_bootstrap, group) == {
        tp: end for tp, end in (await end_offsets(kafka_bootstrap, topic)).items() if end > 0
    }

    # A new member of the same group starts after the commits: nothing is handled twice.
    again: list[Event] = []

    async def record(ev: Event, _: RecordMeta) -> None:
        again.append(ev)

    async with (
        Consumer(
            bootstrap=kafka_bootstrap,
            group_id=group,
            topics=[Topic.APPLIED],
            names=bus_topics,
            handler=record,
            producer=producer,
            offset_reset="earliest",
        ) as second,
        Publisher(producer=producer, topics=bus_topics) as pub,
    ):
        await wait_until(lambda: second.ready() is None, 20, "second consumer joined")
        pub.publish(Topic.APPLIED, event("late", seq=99))
        await wait_until(lambda: len(again) >= 1, 20, "the late event")
        await asyncio.sleep(0.5)
    assert [e.involved_object.name for e in again] == ["late"]


async def test_offset_is_committed_only_after_the_handler_returns(
    kafka_bootstrap: str, bus_topics: Topics, producer: Producer, unique: str
) -> None:
    group = f"{unique}-group"
    entered = asyncio.Event()
    release = asyncio.Event()
    finished: list[RecordMeta] = []

    async def handle(_: Event, meta: RecordMeta) -> None:
        entered.set()
        await release.wait()
        finished.append(meta)

    async with Publisher(producer=producer, topics=bus_topics) as pub:
        pub.publish(Topic.APPLIED, event("slow"))
        assert await pub.flush(20)

    async with Consumer(
        bootstrap=kafka_bootstrap,
        group_id=group,
        topics=[Topic.APPLIED],
        names=bus_topics,
        handler=handle,
        producer=producer,
        offset_reset="earliest",
        poll_interval=0.05,
    ):
        await asyncio.wait_for(entered.wait(), 20)
        # Many poll-and-commit cycles pass while the handler is still busy.
        await asyncio.sleep(1.0)
        assert await committed_offsets(kafka_bootstrap, group) == {}
        release.set()
        await wait_until(lambda: bool(finished), 5, "handler to finish")
        meta = finished[0]
        await asyncio.sleep(0.5)
        committed = await committed_offsets(kafka_bootstrap, group)
        assert {(tp.partition, off) for tp, off in committed.items()} == {(meta.partition, meta.offset + 1)}


async def _eventually_ready(pub: Publisher, timeout: float = 10.0) -> bool:
    for _ in range(int(timeout / 0.05)):
        if pub.ready() is None:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_partitions_are_handled_concurrently_within_the_bound(
    kafka_bootstrap: str, bus_topics: Topics, producer: Producer, unique: str
) -> None:
    running = 0
    peak = 0
    per_partition_peak: dict[int, int] = defaultdict(int)
    per_partition_running: dict[int, int] = defaultdict(int)
    done: list[str] = []

    async def handle(ev: Event, meta: RecordMeta) -> None:
        nonlocal running, peak
        running += 1
        per_partition_running[meta.partition] += 1
        peak = max(peak, running)
        per_partition_peak[meta.partition] = max(
            per_partition_peak[meta.partition], per_partition_running[meta.partition]
        )
        await asyncio.sleep(0.2)
        running -= 1
        per_partition_running[meta.partition] -= 1
        done.append(ev.involved_object.name)

    names = [f"obj{i}" for i in range(12)]
    async with Publisher(producer=producer, topics=bus_topics) as pub:
        for name in names:
            pub.publish(Topic.APPLIED, event(name))
        assert await pub.flush(20)

    async with Consumer(
        bootstrap=kafka_bootstrap,
        group_id=f"{unique}-group",
        topics=[Topic.APPLIED],
        names=bus_topics,
        handler=handle,
        producer=producer,
        offset_reset="earliest",
        max_concurrency=2,
    ):
        await wait_until(lambda: len(done) == len(names), 30, "all events handled")
    assert sorted(done) == sorted(names)
    assert len(per_partition_peak) > 1, "12 keys should spread over more than one partition"
    assert peak == 2, "partitions run side by side, never more than max_concurrency at once"
    assert set(per_partition_peak.values()) == {1}, "one message at a time within a partition"
