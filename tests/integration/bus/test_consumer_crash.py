"""A consumer killed with SIGKILL in the middle of a handler: the message is handled again (at-least-once)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from gitops_mesh.bus.consumer import Consumer, RecordMeta
from gitops_mesh.bus.envelope import Event
from gitops_mesh.bus.kafka import Producer
from gitops_mesh.bus.producer import Publisher
from gitops_mesh.bus.topics import Topic, Topics
from tests.integration.bus.support import committed_offsets, event, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.timeout(90)]

SCRIPT = Path(__file__).with_name("sigkill_consumer.py")


async def test_message_in_a_killed_handler_is_handled_again(
    kafka_bootstrap: str, bus_topics: Topics, producer: Producer, unique: str, tmp_path: Path
) -> None:
    group = f"{unique}-group"
    ev = event("crashy")
    async with Publisher(producer=producer, topics=bus_topics) as pub:
        pub.publish(Topic.APPLIED, ev)
        assert await pub.flush(20)

    record = tmp_path / "received.txt"
    log_path = tmp_path / "consumer.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            "--bootstrap",
            kafka_bootstrap,
            "--prefix",
            bus_topics.prefix,
            "--group",
            group,
            "--record",
            str(record),
            stdout=log_file,
            stderr=log_file,
        )
        try:
            await wait_until(
                lambda: (record.exists() and record.read_text().strip() != "") or proc.returncode is not None,
                30,
                "the subprocess to start handling",
            )
            assert proc.returncode is None, f"consumer process exited: {log_path.read_text()[-3000:]}"
            first_id, partition, offset = record.read_text().split()
            assert first_id == ev["id"]
            proc.send_signal(signal.SIGKILL)
            assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    assert await committed_offsets(kafka_bootstrap, group) == {}, "nothing may be committed for an unfinished handler"

    handled: list[tuple[str, RecordMeta]] = []

    async def handle(e: Event, meta: RecordMeta) -> None:
        handled.append((e.id, meta))

    async with Consumer(
        bootstrap=kafka_bootstrap,
        group_id=group,
        topics=[Topic.APPLIED],
        names=bus_topics,
        handler=handle,
        producer=producer,
        offset_reset="earliest",
    ):
        # Includes the group waiting out the killed member's session.
        await wait_until(lambda: bool(handled), 45, "the message to be handled again")
        await asyncio.sleep(0.5)
    [(again_id, meta)] = handled
    assert again_id == ev["id"]
    assert (meta.partition, meta.offset) == (int(partition), int(offset))
    committed = await committed_offsets(kafka_bootstrap, group)
    assert {(tp.partition, o) for tp, o in committed.items()} == {(meta.partition, meta.offset + 1)}
