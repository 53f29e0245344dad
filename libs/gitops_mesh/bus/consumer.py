"""Consuming events from Kafka into a handler: at-least-once, in order per partition, poison to the DLQ.

One fetch loop feeds one worker per assigned partition; a partition's offset is committed only once its
handler has finished (or the message has been dead-lettered), so a crash at any point means the message
is handled again, never lost. Handlers must therefore be idempotent (the event id helps).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from types import TracebackType
from typing import Literal, Self

from gitops_mesh.bus.envelope import EnvelopeError, Event, parse_event
from gitops_mesh.bus.kafka import (
    COMMIT_REFUSED,
    UNREACHABLE,
    ConsumerSession,
    Producer,
    ProducerSession,
    Record,
    TopicPartition,
)
from gitops_mesh.bus.lifecycle import bus_backoff, cancel_and_wait, describe, sleep_unless, supervise
from gitops_mesh.bus.topics import Topic, Topics
from gitops_mesh.errors import TransientError
from gitops_mesh.observability import metrics
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.timestamps import rfc3339

log = get_logger("gitops_mesh.bus.consumer")

#: Headers a dead-lettered message carries next to its original key, value and headers.
DLQ_REASON = "dlq-reason"
DLQ_DETAIL = "dlq-detail"
DLQ_TOPIC = "dlq-topic"
DLQ_PARTITION = "dlq-partition"
DLQ_OFFSET = "dlq-offset"
DLQ_GROUP = "dlq-group"
DLQ_TIME = "dlq-time"
#: The dead-letter reason for a handler that raised something other than a TransientError.
HANDLER_FAILED = "HandlerFailed"


@dataclass(frozen=True, slots=True)
class RecordMeta:
    """Where a message came from, for handlers that log or dedupe on it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...] = ()


#: ``async def handle(event, record_meta) -> None``; raise TransientError to have the message retried.
Handler = Callable[[Event, RecordMeta], Awaitable[None]]


@dataclass(eq=False)
class _Partition:
    tp: TopicPartition
    backlog: deque[Record] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    #: The offset to commit: one past the last message handled (or dead-lettered).
    done: int | None = None
    committed: int | None = None


class Consumer:
    """A consumer-group member that hands each event to ``handler`` and commits after it returns.

    - Bytes that are not an envelope go to the DLQ with the reason; the consumer moves past them.
    - A handler raising ``TransientError`` is retried with backoff (``retry_after`` honoured); nothing
      behind it in that partition is handled meanwhile, and the partition is paused once its backlog fills.
    - A handler raising anything else is logged and the message goes to the DLQ.
    - Distinct partitions are handled concurrently, at most ``max_concurrency`` handlers at once.

    Dead letters go out through ``producer``, the process's shared one; the consumer never closes it.
    """

    def __init__(
        self,
        *,
        bootstrap: str,
        group_id: str,
        topics: Sequence[Topic | str],
        handler: Handler,
        producer: Producer,
        names: Topics | None = None,
        dlq_topic: str | None = None,
        client_id: str = "gitops-mesh",
        max_concurrency: int = 8,
        offset_reset: Literal["earliest", "latest"] = "latest",
        max_backlog: int = 200,
        poll_interval: float = 0.2,
        probe_interval: float = 5.0,
        session_timeout: float = 10.0,
        stop_grace: float = 5.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.group_id = group_id
        names = names or Topics()
        self.topics = [names.name(t) if isinstance(t, Topic) else t for t in topics]
        self.dlq_topic = dlq_topic or names.name(Topic.DLQ)
        self._handler = handler
        self._client_id = client_id
        self._slots = asyncio.Semaphore(max_concurrency)
        self._offset_reset = offset_reset
        self._max_backlog = max_backlog
        self._poll_ms = int(poll_interval * 1000)
        self._probe_interval = probe_interval
        self._session_timeout_ms = int(session_timeout * 1000)
        self._stop_grace = stop_grace
        self._max_backoff = max_backoff
        self._parts: dict[TopicPartition, _Partition] = {}
        self._dlq = _DeadLetters(producer, self.dlq_topic)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._joined = False
        self._reachable = True
        self._last_error = ""
        self._commit_task: asyncio.Task[None] | None = None
        self._commit_failing = False
        self._commit_timeout = max(probe_interval, 5.0)

    # ---- life cycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start consuming in the background; returns at once, and Kafka being down is not an error."""
        if self._task is None:
            self._task = supervise(f"bus-consumer-{self.group_id}", self._run, backoff=bus_backoff(self._max_backoff))

    async def stop(self, timeout: float = 15.0) -> None:
        """Stop fetching, let in-flight handlers finish (``stop_grace``), commit, leave the group."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        if not self._joined:
            # Still connecting or joining: there is nothing in flight to finish or commit.
            await cancel_and_wait(task)
            return
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            log.warning("consumer did not stop in time; cancelling", group=self.group_id)
            await cancel_and_wait(task)

    def ready(self) -> str | None:
        """A readiness check: None while the member is in its group and Kafka answers."""
        if self._task is None:
            return "consumer not started"
        if self._stopping.is_set():
            return "consumer stopping"
        if not self._joined:
            return f"joining consumer group {self.group_id}" + (f": {self._last_error}" if self._last_error else "")
        if not self._reachable:
            return f"kafka at {self.bootstrap} unreachable: {self._last_error}"
        return None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ---- one session = one aiokafka consumer ------------------------------------------------------------

    async def _run(self) -> None:
        backoff = bus_backoff(self._max_backoff)
        while not self._stopping.is_set():
            consumer = ConsumerSession(
                bootstrap=self.bootstrap,
                group_id=self.group_id,
                client_id=self._client_id,
                offset_reset=self._offset_reset,
                session_timeout_ms=self._session_timeout_ms,
                heartbeat_interval_ms=max(1000, self._session_timeout_ms // 4),
            )
            consumer.subscribe(self.topics, on_revoked=partial(self._revoke, consumer), on_assigned=self._assigned)
            try:
                # No timeout: after connecting, start() waits for the group to assign partitions, which
                # legitimately takes a session timeout when a crashed member is still registered.
                await consumer.start()
            except UNREACHABLE as e:
                self._last_error = describe(e)
                log.warning("cannot join consumer group yet", group=self.group_id, error=self._last_error)
                await consumer.stop()
                await sleep_unless(self._stopping, backoff.next())
                continue
            except BaseException:
                await consumer.stop()
                raise
            backoff.reset()
            try:
                await self._session(consumer)
            except UNREACHABLE as e:
                log.warning("consumer session lost; joining again", group=self.group_id, error=describe(e))
            finally:
                await self._teardown(consumer)
            await sleep_unless(self._stopping, backoff.next())

    async def _session(self, consumer: ConsumerSession) -> None:
        self._joined, self._reachable, self._last_error = True, True, ""
        log.info("consumer joined group", group=self.group_id, topics=self.topics)
        probe = asyncio.create_task(self._probe_loop(consumer), name=f"bus-consumer-probe-{self.group_id}")
        try:
            while not self._stopping.is_set():
                self._raise_if_a_worker_died()
                batch = await consumer.getmany(timeout_ms=self._poll_ms)
                assigned = consumer.assignment()
                for tp, records in batch.items():
                    if tp not in assigned:
                        continue
                    p = self._partition(tp)
                    p.backlog.extend(records)
                    p.wakeup.set()
                    if len(p.backlog) >= self._max_backlog:
                        consumer.pause(tp)
                for tp in consumer.paused():
                    q = self._parts.get(tp)
                    if q is None or len(q.backlog) < self._max_backlog // 2:
                        consumer.resume(tp)
                self._commit_in_background(consumer)
        finally:
            await cancel_and_wait(probe)

    async def _teardown(self, consumer: ConsumerSession) -> None:
        self._joined = False
        await self._stop_workers(list(self._parts.values()))
        await self._commit_now(consumer)
        self._parts.clear()
        await consumer.stop()
        log.info("consumer left group", group=self.group_id)

    async def _probe_loop(self, consumer: ConsumerSession) -> None:
        while True:
            await asyncio.sleep(self._probe_interval)
            try:
                await consumer.probe(self._probe_interval)
            except UNREACHABLE as e:
                if self._reachable:
                    log.warning("kafka unreachable", group=self.group_id, error=describe(e))
                self._reachable, self._last_error = False, describe(e)
            else:
                if not self._reachable:
                    log.info("kafka reachable again", group=self.group_id)
                self._reachable = True

    # ---- partitions ------------------------------------------------------------------------------------

    def _partition(self, tp: TopicPartition) -> _Partition:
        p = self._parts.get(tp)
        if p is None:
            p = self._parts[tp] = _Partition(tp)
        if p.task is None:
            p.task = asyncio.create_task(self._work(p), name=f"bus-consumer-{tp.topic}-{tp.partition}")
        return p

    def _raise_if_a_worker_died(self) -> None:
        for p in self._parts.values():
            if p.task is not None and p.task.done() and not p.task.cancelled():
                err = p.task.exception()
                if err is not None:
                    # The session restarts from the committed offsets, so nothing is skipped.
                    raise RuntimeError(f"worker for {p.tp.topic}[{p.tp.partition}] died") from err

    async def _stop_workers(self, parts: list[_Partition]) -> None:
        """Let each worker finish the message in hand (bounded by ``stop_grace``), then cancel; drop backlogs."""
        for p in parts:
            p.stop.set()
            p.wakeup.set()
        tasks = {p.task for p in parts if p.task is not None and not p.task.done()}
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self._stop_grace)
            for t in late:
                log.warning("handler did not finish in time; it will be handled again", task=t.get_name())
                await cancel_and_wait(t)
        for p in parts:
            p.backlog.clear()

    async def _revoke(self, consumer: ConsumerSession, revoked: set[TopicPartition]) -> None:
        """Finish and commit revoked partitions before the group hands them to another member."""
        parts = [p for tp in revoked if (p := self._parts.get(tp)) is not None]
        await self._stop_workers(parts)
        await self._commit_now(consumer, only=revoked)
        for tp in revoked:
            self._parts.pop(tp, None)

    def _assigned(self, assigned: set[TopicPartition]) -> None:
        log.info(
            "partitions assigned",
            group=self.group_id,
            partitions=sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned),
        )

    def _commit_in_background(self, consumer: ConsumerSession) -> None:
        """Start a commit unless one is running: a slow or unreachable coordinator must not stall fetching."""
        task = self._commit_task
        if task is not None and not task.done():
            return
        if task is not None and not task.cancelled() and (err := task.exception()) is not None:
            raise RuntimeError("committing offsets failed unexpectedly") from err
        if self._uncommitted():
            self._commit_task = asyncio.create_task(self._commit(consumer), name=f"bus-consumer-commit-{self.group_id}")

    def _uncommitted(self, only: set[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        return {
            tp: p.done
            for tp, p in self._parts.items()
            if p.done is not None and p.done != p.committed and (only is None or tp in only)
        }

    async def _commit(self, consumer: ConsumerSession, *, only: set[TopicPartition] | None = None) -> None:
        offsets = self._uncommitted(only)
        if not offsets:
            return
        try:
            await asyncio.wait_for(consumer.commit(offsets), self._commit_timeout)
        except COMMIT_REFUSED as e:
            # The group rebalanced under us: the new owner starts from the last commit (at-least-once).
            log.warning("commit refused after a rebalance", group=self.group_id, error=describe(e))
        except UNREACHABLE as e:
            # Once per outage: the offsets stay pending and the next poll tries again.
            if not self._commit_failing:
                log.warning("commit failed; retrying", group=self.group_id, error=describe(e))
            self._commit_failing = True
        else:
            if self._commit_failing:
                log.info("commits succeed again", group=self.group_id)
            self._commit_failing = False
            for tp, offset in offsets.items():
                if (p := self._parts.get(tp)) is not None:
                    p.committed = offset

    async def _commit_now(self, consumer: ConsumerSession, *, only: set[TopicPartition] | None = None) -> None:
        """Commit in the foreground (revocation, shutdown), after any background commit has finished."""
        task, self._commit_task = self._commit_task, None
        if task is not None:
            await asyncio.wait({task})
            if not task.cancelled() and (err := task.exception()) is not None:
                log.error("committing offsets failed unexpectedly", group=self.group_id, error=describe(err))
        await self._commit(consumer, only=only)

    # ---- handling --------------------------------------------------------------------------------------

    async def _work(self, p: _Partition) -> None:
        while not p.stop.is_set():
            if not p.backlog:
                p.wakeup.clear()
                await p.wakeup.wait()
                continue
            record = p.backlog[0]
            if not await self._handle(record, p):
                return
            if p.backlog and p.backlog[0] is record:
                p.backlog.popleft()
            p.done = record.offset + 1

    async def _handle(self, record: Record, p: _Partition) -> bool:
        """Handle one record to the end (ok or dead-lettered); False if given up because the partition stops."""
        meta = RecordMeta(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            timestamp_ms=record.timestamp_ms,
            headers=record.headers,
        )
        try:
            event = parse_event(record.value)
        except EnvelopeError as e:
            return await self._reject(record, e, p)

        backoff = bus_backoff(self._max_backoff)
        while True:
            try:
                async with self._slots:
                    await self._handler(event, meta)
            except TransientError as e:
                metrics.bus_consumed.labels(topic=record.topic, result="retried").inc()
                delay = e.retry_after if e.retry_after is not None else backoff.next()
                log.warning(
                    "handler failed transiently; retrying",
                    topic=record.topic,
                    offset=record.offset,
                    event_id=event.id,
                    error=str(e),
                    retry_in=round(delay, 3),
                )
                if await sleep_unless(p.stop, delay):
                    return False
                continue
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the handler is the boundary we supervise: a bug there must not stop the partition
                log.exception(
                    "handler failed; dead-lettering", topic=record.topic, offset=record.offset, event_id=event.id
                )
                return await self._dead_letter(record, HANDLER_FAILED, f"{type(e).__name__}: {e}", p)
            metrics.bus_consumed.labels(topic=record.topic, result="ok").inc()
            return True

    async def _reject(self, record: Record, e: EnvelopeError, p: _Partition) -> bool:
        log.error("not an envelope; dead-lettering", topic=record.topic, offset=record.offset, error=str(e))
        return await self._dead_letter(record, e.reason, str(e), p)

    async def _dead_letter(self, record: Record, reason: str, detail: str, p: _Partition) -> bool:
        headers = [
            *record.headers,
            (DLQ_REASON, reason.encode()),
            (DLQ_DETAIL, detail[:2000].encode()),
            (DLQ_TOPIC, record.topic.encode()),
            (DLQ_PARTITION, str(record.partition).encode()),
            (DLQ_OFFSET, str(record.offset).encode()),
            (DLQ_GROUP, self.group_id.encode()),
            (DLQ_TIME, rfc3339(datetime.now(UTC), "microseconds").encode()),
        ]
        backoff = bus_backoff(self._max_backoff)
        # The original bytes go as they came, so the message can be inspected and replayed as is.
        while not await self._dlq.send(record.key, record.value, headers):
            # Committing past a message the DLQ does not hold yet would lose it, so the partition waits.
            if await sleep_unless(p.stop, backoff.next()):
                return False
        metrics.bus_dlq.labels(topic=record.topic, reason=reason).inc()
        metrics.bus_consumed.labels(topic=record.topic, result="dead-lettered").inc()
        return True


class _DeadLetters:
    """The DLQ writer on the shared producer: a failed write renews the producer's session, as any failed send does."""

    def __init__(self, producer: Producer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def send(self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> bool:
        """True once Kafka acknowledged; False (logged) if it could not be written this time."""
        session: ProducerSession | None = None
        try:
            session = await self._producer.session()
            # aiokafka refuses a message with neither key nor value; an empty value keeps the record.
            ack = await session.send(self._topic, value if value is not None else b"", key=key, headers=headers)
            await ack
        except UNREACHABLE as e:
            metrics.bus_publish_errors.labels(topic=self._topic).inc()
            log.warning("cannot write to the dead-letter topic yet", topic=self._topic, error=describe(e))
            if session is not None:
                await self._producer.renew(session)
            return False
        metrics.bus_published.labels(topic=self._topic).inc()
        return True
