"""Publishing events to Kafka from reconciles: a bounded buffer in front of the process's shared producer.

``publish()`` never waits on Kafka. A supervised sender task drains the buffer in order, and keeps
retrying (reconnecting with backoff) while Kafka is down. When the buffer is full the event is dropped,
counted in ``gitops_bus_dropped_total`` and logged: that is acceptable because the Kubernetes API is the
source of truth, every controller converges on its interval without the bus, and readiness already
reports the backlog (high-water mark) before the buffer fills.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from gitops_mesh.backoff import Backoff
from gitops_mesh.bus.envelope import CONTENT_TYPE_HEADER, CloudEvent, encode, message_key
from gitops_mesh.bus.kafka import POISON, UNREACHABLE, Producer, ProducerSession
from gitops_mesh.bus.lifecycle import bus_backoff, describe, supervise
from gitops_mesh.bus.topics import Topic, Topics
from gitops_mesh.observability import metrics
from gitops_mesh.observability.logging import get_logger

log = get_logger("gitops_mesh.bus.producer")

_DROP_LOG_INTERVAL = 10.0


@dataclass(frozen=True, slots=True)
class _Message:
    topic: str
    key: bytes
    value: bytes


class _SessionBroken(Exception):
    """A send failed after aiokafka's own retries; this session's sequence numbers can no longer be trusted."""

    def __init__(self, session: ProducerSession, failures: str) -> None:
        super().__init__(failures)
        self.session = session


class Publisher:
    """Non-blocking, ordered (per key), at-least-once publishing of CloudEvents.

    Order per key holds because messages leave the buffer in order, the idempotent producer retries
    retriable errors forever within one session, and a session in which any send failed is replaced
    (new producer id) before the failed message and everything behind it are sent again. The session
    is the shared ``producer``'s, which the publisher uses but never closes.
    """

    def __init__(
        self,
        *,
        producer: Producer,
        topics: Topics | None = None,
        buffer_size: int = 10_000,
        high_water: float = 0.8,
        max_in_flight: int = 500,
        probe_interval: float = 5.0,
        max_backoff: float = 10.0,
    ) -> None:
        if buffer_size < 1 or not 0 < high_water <= 1:
            raise ValueError("buffer_size must be >= 1 and high_water in (0, 1]")
        self._producer = producer
        self.bootstrap = producer.bootstrap
        self.topics = topics or Topics()
        self._buffer_size = buffer_size
        self._high_water = max(1, int(buffer_size * high_water))
        self._max_in_flight = max_in_flight
        self._probe_interval = probe_interval
        self._max_backoff = max_backoff
        #: The session the last window went out in; a different one means a (re)connect happened.
        self._session_in_use: ProducerSession | None = None
        # Everything not yet acknowledged, oldest first; the first ``max_in_flight`` may be with aiokafka.
        self._buffer: deque[_Message] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._connected = False
        self._last_error = "not connected yet"
        self._dropped_unlogged = 0
        self._last_drop_log = 0.0
        #: How many messages at the head of the buffer to send singly (see _pump).
        self._suspects = 0

    # ---- the caller's side ---------------------------------------------------------------------------

    def publish(self, topic: Topic | str, event: CloudEvent, *, key: bytes | None = None) -> bool:
        """Queue ``event`` for ``topic`` (a ``Topic`` gets this publisher's prefix); never waits.

        Returns False when the event was dropped (buffer full or publisher closed); that is counted and
        logged here, so callers need not handle it. The key defaults to the involved object's.
        """
        name = self.topics.name(topic) if isinstance(topic, Topic) else topic
        if key is None:
            obj = event["data"]["involvedObject"]
            key = message_key(obj["kind"], obj["namespace"], obj["name"])
        value = encode(event)
        if self._closing or len(self._buffer) >= self._buffer_size:
            self._drop(name, "publisher closed" if self._closing else "buffer full", 1)
            return False
        self._buffer.append(_Message(name, key, value))
        metrics.bus_buffered.inc()
        self._wakeup.set()
        return True

    @property
    def buffered(self) -> int:
        """Events not yet acknowledged by Kafka."""
        return len(self._buffer)

    @property
    def connected(self) -> bool:
        return self._connected

    def ready(self) -> str | None:
        """A readiness check: None, or why events are not flowing to Kafka."""
        if self._task is None:
            return "publisher not started"
        if self._closing:
            return "publisher closing"
        if not self._connected:
            return f"kafka at {self.bootstrap} unreachable: {self._last_error}"
        if len(self._buffer) >= self._high_water:
            return (
                f"{len(self._buffer)} events waiting for kafka (high-water {self._high_water} of {self._buffer_size})"
            )
        return None

    # ---- life cycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the sender; returns at once, and Kafka being down is not an error (it keeps trying)."""
        if self._task is None:
            self._task = supervise("bus-publisher", self._run, backoff=bus_backoff(self._max_backoff))

    async def flush(self, timeout: float) -> bool:
        """Wait until everything buffered so far is acknowledged; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while self._buffer:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def close(self, timeout: float = 10.0) -> None:
        """Deliver what is buffered (for at most ``timeout`` seconds), then stop; the rest is counted as dropped."""
        self._closing = True
        self._wakeup.set()
        task, self._task = self._task, None
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                task.cancel()
                # The sender holds nothing to clean up (the shared producer is closed by its owner).
                await asyncio.wait({task})
        if self._buffer:
            by_topic: dict[str, int] = {}
            for m in self._buffer:
                by_topic[m.topic] = by_topic.get(m.topic, 0) + 1
            for topic, n in by_topic.items():
                self._drop(topic, "shutdown before kafka acknowledged", n, force_log=True)
            metrics.bus_buffered.dec(len(self._buffer))
            self._buffer.clear()
        self._set_connected(False, "publisher closed")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ---- the sender task -----------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = bus_backoff(self._max_backoff)
        # Connect at once, not at the first event: readiness should say whether Kafka is there.
        await self._session(backoff)
        while True:
            try:
                await self._pump(backoff)
                return
            except _SessionBroken as e:
                log.warning("renewing the kafka producer session after a failed send", error=str(e))
                await self._producer.renew(e.session)
            await asyncio.sleep(backoff.next())

    async def _session(self, backoff: Backoff) -> ProducerSession:
        """The shared producer's session, waiting with ``backoff`` while Kafka is not there."""
        first_attempt = True
        while True:
            try:
                session = await self._producer.session()
            except UNREACHABLE as e:
                if first_attempt:
                    log.warning("cannot connect to kafka yet; retrying", bootstrap=self.bootstrap, error=describe(e))
                first_attempt = False
                self._set_connected(False, describe(e))
                await asyncio.sleep(backoff.next())
                continue
            if session is not self._session_in_use:
                self._session_in_use = session
                self._set_connected(True)
            return session

    async def _pump(self, backoff: Backoff) -> None:
        """Send the buffer in windows until closing with nothing left; raises _SessionBroken."""
        while True:
            if not self._buffer:
                if self._closing:
                    return
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self._probe_interval)
                except TimeoutError:
                    await self._probe(await self._session(backoff))
                continue
            session = await self._session(backoff)
            # After Kafka rejected a batch as too large, the messages in it go one by one, so only the one
            # that is really too large is dropped, not the batch-mates it happened to travel with.
            window = list(itertools.islice(self._buffer, 1 if self._suspects else self._max_in_flight))
            if self._suspects:
                self._suspects -= 1
            futures: dict[int, asyncio.Future[object]] = {}
            rejected: list[tuple[int, BaseException]] = []
            stalled: tuple[int, BaseException] | None = None
            for i, msg in enumerate(window):
                try:
                    futures[i] = await session.send(msg.topic, msg.value, key=msg.key, headers=[CONTENT_TYPE_HEADER])
                except POISON as e:
                    rejected.append((i, e))
                except UNREACHABLE as e:
                    # Nothing behind this message is handed over, so order holds when it is tried again.
                    stalled = (i, e)
                    break
            await self._await_acks(session, list(futures.values()))

            keep: list[_Message] = []
            failed: list[str] = []
            for i, msg in enumerate(window):
                fut = futures.get(i)
                if fut is None:
                    if stalled is not None and i >= stalled[0]:
                        keep.append(msg)
                    continue
                err = fut.exception()
                if err is None:
                    metrics.bus_published.labels(topic=msg.topic).inc()
                elif isinstance(err, POISON) and len(window) == 1:
                    rejected.append((i, err))
                else:
                    if isinstance(err, POISON):
                        self._suspects = max(self._suspects, i + 1)
                    metrics.bus_publish_errors.labels(topic=msg.topic).inc()
                    failed.append(f"{msg.topic}: {describe(err)}")
                    keep.append(msg)
            for _ in window:
                self._buffer.popleft()
            self._buffer.extendleft(reversed(keep))
            metrics.bus_buffered.dec(len(window) - len(keep))
            for i, err in rejected:
                log.error(
                    "kafka can never accept this event", topic=window[i].topic, key=window[i].key, error=describe(err)
                )
                self._drop(window[i].topic, "rejected by kafka", 1, force_log=True)
            if len(futures) > len(failed):
                self._set_connected(True)
                backoff.reset()
            if failed:
                raise _SessionBroken(session, "; ".join(failed[:3]))
            if stalled is not None:
                metrics.bus_publish_errors.labels(topic=window[stalled[0]].topic).inc()
                log.warning(
                    "cannot hand events to kafka; retrying", error=describe(stalled[1]), buffered=len(self._buffer)
                )
                await asyncio.sleep(backoff.next())

    async def _await_acks(self, session: ProducerSession, futures: list[asyncio.Future[object]]) -> None:
        """Wait for every future; while they are slow, find out whether Kafka answers at all (readiness)."""
        pending = set(futures)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=self._probe_interval)
            if pending:
                await self._probe(session)

    async def _probe(self, session: ProducerSession) -> None:
        try:
            await session.probe(self._probe_interval)
        except UNREACHABLE as e:
            self._set_connected(False, describe(e))
        else:
            self._set_connected(True)

    # ---- state -----------------------------------------------------------------------------------------

    def _set_connected(self, connected: bool, error: str = "") -> None:
        if connected != self._connected:
            if connected:
                log.info("kafka reachable", bootstrap=self.bootstrap, buffered=len(self._buffer))
            elif not self._closing:
                log.warning("kafka unreachable", bootstrap=self.bootstrap, error=error, buffered=len(self._buffer))
        self._connected = connected
        if error:
            self._last_error = error
        metrics.bus_connected.set(1 if connected else 0)

    def _drop(self, topic: str, why: str, n: int, *, force_log: bool = False) -> None:
        metrics.bus_dropped.labels(topic=topic).inc(n)
        now = time.monotonic()
        # One line per interval, not per event: a full buffer during an outage would flood the logs.
        if force_log or now - self._last_drop_log >= _DROP_LOG_INTERVAL:
            log.error(
                "events dropped; controllers will converge from the Kubernetes API on their interval",
                topic=topic,
                why=why,
                dropped=n,
                dropped_unlogged_before=self._dropped_unlogged,
                buffered=len(self._buffer),
            )
            self._dropped_unlogged = 0
            self._last_drop_log = now
        else:
            self._dropped_unlogged += n
