"""What the controllers say on the bus, recorded for a test to read: every event on the topics it names."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from gitops_mesh.bus.consumer import Consumer, RecordMeta
from gitops_mesh.bus.envelope import Event
from gitops_mesh.bus.kafka import Producer
from gitops_mesh.bus.topics import Topic, Topics


@dataclass
class BusLog:
    """Every event on the given topics since the test started."""

    events: list[Event] = field(default_factory=list)

    def of(self, kind: str, name: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind and e.involved_object.name == name]

    async def record(self, event: Event, _: RecordMeta) -> None:
        self.events.append(event)


@contextlib.asynccontextmanager
async def recording(bootstrap: str, topics: Topics, group: str, which: Sequence[Topic]) -> AsyncIterator[BusLog]:
    bus = BusLog()
    producer = Producer(bootstrap=bootstrap)  # for dead letters only; started only if there are any
    consumer = Consumer(
        bootstrap=bootstrap,
        group_id=group,
        topics=list(which),
        names=topics,
        handler=bus.record,
        producer=producer,
        offset_reset="earliest",
    )
    await consumer.start()
    try:
        yield bus
    finally:
        await consumer.stop()
        await producer.close()
