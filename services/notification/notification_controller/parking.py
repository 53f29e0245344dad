"""Writing deliveries to the retry topic and the dead-letter topic, waiting for Kafka's acknowledgement.

Unlike the shared Publisher (fire-and-forget from reconciles), the caller here must know the record is
durable before it lets the consumer commit the event's offset: ``send`` returns only after acks=all, and
raises BusUnavailable (transient: the consumer retries the event) when Kafka cannot take it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from gitops_mesh.bus.consumer import (
    DLQ_DETAIL,
    DLQ_GROUP,
    DLQ_REASON,
    DLQ_TIME,
    DLQ_TOPIC,
)
from gitops_mesh.bus.envelope import CONTENT_TYPE_HEADER
from gitops_mesh.bus.lifecycle import UNREACHABLE, describe, stop_producer
from gitops_mesh.errors import BusUnavailable
from gitops_mesh.observability import metrics
from gitops_mesh.observability.logging import get_logger
from notification_controller.records import Delivery, to_record

log = get_logger(__name__)

#: Extra DLQ headers naming the Alert and Provider of a parked delivery.
DLQ_ALERT = "dlq-alert"
DLQ_PROVIDER = "dlq-provider"


class Parking:
    """One idempotent producer for the retry and dead-letter topics, started on first use."""

    def __init__(
        self, *, bootstrap: str, retry_topic: str, dlq_topic: str, group: str, client_id: str, timeout: float = 30.0
    ) -> None:
        self.bootstrap = bootstrap
        self.retry_topic = retry_topic
        self.dlq_topic = dlq_topic
        self._group = group
        self._client_id = client_id
        self._timeout = timeout
        self._producer: Any = None
        self._lock = asyncio.Lock()

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
            (DLQ_TIME, datetime.now(UTC).isoformat().encode()),
            (DLQ_ALERT, d.alert.encode()),
            (DLQ_PROVIDER, d.provider.encode()),
        ]
        await self._send(self.dlq_topic, key, value, headers)
        metrics.bus_dlq.labels(topic=source_topic, reason=reason).inc()

    async def _send(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        async with self._lock:
            producer = await self._producer_locked()
        try:
            fut = await producer.send(topic, value, key=key, headers=headers)
            await asyncio.wait_for(fut, self._timeout)
        except UNREACHABLE as e:
            metrics.bus_publish_errors.labels(topic=topic).inc()
            async with self._lock:
                if self._producer is producer:
                    self._producer = None
                    await stop_producer(producer)
            raise BusUnavailable(f"cannot write to {topic}: {describe(e)}") from e
        metrics.bus_published.labels(topic=topic).inc()

    async def _producer_locked(self) -> Any:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, client_id=self._client_id, enable_idempotence=True, acks="all"
            )
            try:
                await asyncio.wait_for(producer.start(), self._timeout)
            except UNREACHABLE as e:
                await stop_producer(producer)
                raise BusUnavailable(f"kafka at {self.bootstrap} unreachable: {describe(e)}") from e
            except BaseException:
                await stop_producer(producer)
                raise
            self._producer = producer
        return self._producer

    async def close(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            await stop_producer(producer)
