"""A consumer process for the SIGKILL test: notes each event it is handed in a file, then hangs in the handler."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from gitops_mesh.bus.consumer import Consumer, RecordMeta
from gitops_mesh.bus.envelope import Event
from gitops_mesh.bus.kafka import Producer
from gitops_mesh.bus.topics import Topic, Topics


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--record", type=Path, required=True)
    a = p.parse_args()

    async def handle(event: Event, meta: RecordMeta) -> None:
        with a.record.open("a") as f:
            f.write(f"{event.id} {meta.partition} {meta.offset}\n")
            f.flush()
            # The test reads this file right before SIGKILL: it must be on disk, not in a buffer.
            os.fsync(f.fileno())
        await asyncio.sleep(3600)

    consumer = Consumer(
        bootstrap=a.bootstrap,
        group_id=a.group,
        topics=[Topic.APPLIED],
        names=Topics(a.prefix),
        handler=handle,
        producer=Producer(bootstrap=a.bootstrap),  # dead letters only; this process is SIGKILLed, never closed
        offset_reset="earliest",
        # The broker's minimum: the group notices the killed member as soon as it can.
        session_timeout=6.0,
    )
    await consumer.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
