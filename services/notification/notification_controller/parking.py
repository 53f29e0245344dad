"""Writing deliveries to the retry topic and the dead-letter topic, waiting for Kafka's acknowledgement.

Unlike the shared Publisher (fire-and-forget from reconciles), the caller here must know the record is
durable before it lets the consumer commit the event's offset: ``send`` returns only after acks=all, and
raises BusUnavailable (transient: the consumer retries the event) when Kafka cannot take it. The records
go out through the process's one shared producer, as the Publisher's and the consumers' dead letters do.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from gitops_mesh.bus.consumer import (
    DLQ_DETAIL,
    DLQ_GROUP,
    DLQ_REASON,
    DLQ_TIME,
    DLQ_TOPIC,
)
from gitops_mesh.bus.envelope import CONTENT_TYPE_HEADER
from gitops_mesh.bus.kafka import UNREACHABLE, Producer, ProducerSession
from gitops_mesh.bus.lifecycle import describe
from gitops_mesh.errors import BusUnavailable
from gitops_mesh.observability import metrics
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.timestamps import rfc3339
from notification_controller.records import Delivery, to_record

log = get_logger(__name__)

#: Extra DLQ headers naming the Alert and Provider of a parked delivery.
DLQ_ALERT = "dlq-alert"
DLQ_PROVIDER = "dlq-provider"


class Parking:
    """Writes to the retry and dead-letter topics on the shared producer, waiting for each acknowledgement."""

    def __init__(
        self, *, producer: Producer, retry_topic: str, dlq_topic: str, group: str, timeout: float = 30.0
    ) -> None:
        self.retry_topic = retry_topic
        self.dlq_topic = dlq_topic
        self._producer = producer
        self._group = group
        self._timeout = timeout

    async def retry_later(self, d: Delivery) -> None:
        """Put ``d`` on the retry topic (its ``not_before`` says when it is due)."""
        key, value = to_record(d)
        await self._send(self.retry_topic, key, value, [CONTENT_TYPE_HEADER])

    async def dead_letter(self, d: Delivery, *, reason: str, detail: str, source_topic: str) -> None:
        """Give ``d`` up: the DLQ keeps it (replayable onto the retry topic) with the reason."""
        key, value = to_record(d)
        headers = [
            CONTENT_TYPE_HEADER,
            (DLQ_REASON, reason.encode()),
            (DLQ_DETAIL, detail[:2000].encode()),
            (DLQ_TOPIC, source_topic.encode()),
            (DLQ_GROUP, self._group.encode()),
            (DLQ_TIME, rfc3339(datetime.now(UTC), "microseconds").encode()),
            (DLQ_ALERT, d.alert.encode()),
            (DLQ_PROVIDER, d.provider.encode()),
        ]
        await self._send(self.dlq_topic, key, value, headers)
        metrics.bus_dlq.labels(topic=source_topic, reason=reason).inc()

    async def _send(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        session: ProducerSession | None = None
        try:
            session = await self._producer.session()
            ack = await session.send(topic, value, key=key, headers=headers)
            await asyncio.wait_for(ack, self._timeout)
        except UNREACHABLE as e:
            metrics.bus_publish_errors.labels(topic=topic).inc()
            # Not acknowledged in time: the session may be wedged, so the next write starts a fresh one.
            if session is not None:
                await self._producer.renew(session)
            raise BusUnavailable(
                f"cannot write to {topic} via kafka at {self._producer.bootstrap}: {describe(e)}"
            ) from e
        metrics.bus_published.labels(topic=topic).inc()
