"""The bus's typed edge over aiokafka: the producer and consumer calls the bus makes, in our own types.

aiokafka ships no type information, so everything it hands back is ``Any`` to mypy; here it becomes
:class:`TopicPartition`, :class:`Record` and plain futures, and the rest of the runtime never touches an
aiokafka client. :class:`Producer` is the one producer a process shares (the Publisher, every Consumer's
dead-letter path, the notification controller's parking): idempotent, acks=all, started on first use,
renewed after a failed send, closed once by whoever opened it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, NamedTuple, Self

import aiokafka
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)

from gitops_mesh.bus.lifecycle import describe
from gitops_mesh.errors import BusUnavailable
from gitops_mesh.observability.logging import get_logger

log = get_logger("gitops_mesh.bus")

#: Errors meaning "Kafka is not there (yet)"; BusUnavailable is a send failed because its producer session
#: was renewed or closed under it. Anything else from aiokafka is a bug or a misconfiguration.
UNREACHABLE = (KafkaError, OSError, TimeoutError, BusUnavailable)
#: Errors no retry can fix: the message itself is wrong for Kafka.
POISON = (MessageSizeTooLargeError, RecordListTooLargeError, InvalidTopicError)
#: A commit refused because the group rebalanced under us: the new owner starts from the last commit.
COMMIT_REFUSED = (CommitFailedError, IllegalStateError)

Headers = Sequence[tuple[str, bytes]]


class TopicPartition(NamedTuple):
    """One partition of a topic (equal to, and hashed like, aiokafka's own)."""

    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed message, as it was on the topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...]


# ---- producing -------------------------------------------------------------------------------------------


class ProducerSession:
    """One started aiokafka producer: one producer id, so one run of sequence numbers per partition."""

    def __init__(self, client: aiokafka.AIOKafkaProducer) -> None:
        self._client = client
        self._stopped = False

    async def start(self, timeout: float) -> None:
        """Connect and obtain a producer id; on failure (one of UNREACHABLE) the session is stopped again."""
        try:
            # Raises KafkaConnectionError at once when no broker answers; the timeout covers a broker that
            # accepts connections but cannot hand out a producer id yet.
            await asyncio.wait_for(self._client.start(), timeout)
        except BaseException:
            await self.stop()
            raise

    async def send(self, topic: str, value: bytes, *, key: bytes | None, headers: Headers) -> asyncio.Future[object]:
        """Hand one record to aiokafka; the future resolves once Kafka acknowledged it (acks=all).

        Raises (one of UNREACHABLE or POISON) when aiokafka will not take it; the future fails when Kafka
        did not take it after aiokafka's own retries, or when this session was stopped first.
        """
        if self._stopped:
            raise BusUnavailable("the producer session was renewed; send again")
        ack: asyncio.Future[object] = await self._client.send(topic, value, key=key, headers=list(headers))
        return ack

    async def probe(self, timeout: float) -> None:
        """Return once a broker answered a metadata request; raises one of UNREACHABLE otherwise."""
        await asyncio.wait_for(self._client.client.fetch_all_metadata(), timeout)

    @property
    def can_abort(self) -> bool:
        """Whether :meth:`stop` can fail what aiokafka still holds (see there); a test keeps this true."""
        return _accumulator(self._client) is not None

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop within ``timeout``, failing what aiokafka still holds with BusUnavailable.

        aiokafka's ``stop()`` first waits for every batch to be delivered, and an idempotent producer retries
        forever while the broker is down, so a plain ``stop()`` can hang (aio-libs/aiokafka#1101). aiokafka
        has no public abort: failing the batches in its accumulator is the bus's one reach into aiokafka's
        insides, which is why pyproject.toml pins aiokafka below 1.0. Whoever sent those records still
        holds them and learns from the failed futures that they must be sent again.
        """
        self._stopped = True
        accumulator = _accumulator(self._client)
        if accumulator is not None:
            accumulator.fail_all(BusUnavailable("producer stopped before Kafka acknowledged"))
        try:
            await asyncio.wait_for(self._client.stop(), timeout)
        except UNREACHABLE as e:
            log.warning("kafka producer did not stop cleanly", error=describe(e))


def _accumulator(
    client: aiokafka.AIOKafkaProducer,
) -> aiokafka.producer.message_accumulator.MessageAccumulator | None:
    return getattr(client, "_message_accumulator", None)


class Producer:
    """The process's one Kafka producer (idempotent, acks=all): started on first use, closed once.

    A send that failed after aiokafka's own retries leaves the session's sequence numbers in doubt, so its
    sender calls :meth:`renew` and the next :meth:`session` starts a new producer id. The other users of
    the retired session see their unacknowledged sends fail (BusUnavailable) and send them again, each in
    its own order, so sharing one session costs no ordering guarantee.
    """

    def __init__(
        self,
        *,
        bootstrap: str,
        client_id: str = "gitops-mesh",
        connect_timeout: float = 10.0,
        request_timeout: float = 30.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.bootstrap = bootstrap
        self._client_id = client_id
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._stop_timeout = stop_timeout
        self._current: ProducerSession | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        #: aiokafka producers started so far (one per session): what "one producer per process" counts.
        self.sessions_started = 0

    async def session(self) -> ProducerSession:
        """The current session, started now when there is none; raises one of UNREACHABLE if Kafka is not there."""
        async with self._lock:
            if self._closed:
                raise BusUnavailable("the bus producer is closed")
            if self._current is None:
                session = ProducerSession(
                    aiokafka.AIOKafkaProducer(
                        bootstrap_servers=self.bootstrap,
                        client_id=self._client_id,
                        enable_idempotence=True,
                        acks="all",
                        request_timeout_ms=int(self._request_timeout * 1000),
                        retry_backoff_ms=250,
                    )
                )
                await session.start(self._connect_timeout)
                self._current = session
                self.sessions_started += 1
            return self._current

    async def renew(self, session: ProducerSession) -> None:
        """Retire ``session`` after a failed send, unless someone did already; the next session() is new."""
        async with self._lock:
            if self._current is not session:
                return
            self._current = None
        await session.stop(self._stop_timeout)

    async def close(self) -> None:
        """Stop the session for good (bounded; what it still holds fails); later sessions are refused."""
        async with self._lock:
            self._closed = True
            session, self._current = self._current, None
        if session is not None:
            await session.stop(self._stop_timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


# ---- consuming -------------------------------------------------------------------------------------------

OnRevoked = Callable[[set[TopicPartition]], Awaitable[None]]
OnAssigned = Callable[[set[TopicPartition]], None]


class ConsumerSession:
    """One aiokafka consumer's membership of a group (offsets committed by hand), from start to stop."""

    def __init__(
        self,
        *,
        bootstrap: str,
        group_id: str,
        client_id: str,
        offset_reset: Literal["earliest", "latest"],
        session_timeout_ms: int,
        heartbeat_interval_ms: int,
    ) -> None:
        self._client = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset=offset_reset,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
        )

    def subscribe(self, topics: Sequence[str], *, on_revoked: OnRevoked, on_assigned: OnAssigned) -> None:
        """Join ``topics`` as a group member; ``on_revoked`` finishes partitions before another member gets them."""
        self._client.subscribe(list(topics), listener=_Rebalance(on_revoked, on_assigned))

    async def start(self) -> None:
        await self._client.start()

    async def getmany(self, timeout_ms: int) -> dict[TopicPartition, list[Record]]:
        batch = await self._client.getmany(timeout_ms=timeout_ms)
        return {_ours(tp): [_record(r) for r in records] for tp, records in batch.items()}

    def assignment(self) -> set[TopicPartition]:
        return {_ours(tp) for tp in self._client.assignment()}

    def pause(self, tp: TopicPartition) -> None:
        self._client.pause(_theirs(tp))

    def resume(self, tp: TopicPartition) -> None:
        self._client.resume(_theirs(tp))

    def paused(self) -> set[TopicPartition]:
        return {_ours(tp) for tp in self._client.paused()}

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        await self._client.commit({_theirs(tp): offset for tp, offset in offsets.items()})

    async def probe(self, timeout: float) -> None:
        """Return once a broker answered a metadata request; raises one of UNREACHABLE otherwise."""
        await asyncio.wait_for(self._client.topics(), timeout)

    async def stop(self, timeout: float = 10.0) -> None:
        """Leave the group and close; a broker that is gone must not hang our shutdown."""
        try:
            await asyncio.wait_for(self._client.stop(), timeout)
        except UNREACHABLE as e:
            log.warning("kafka consumer did not stop cleanly", error=describe(e))


class _Rebalance(aiokafka.ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_revoked: OnRevoked, on_assigned: OnAssigned) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked: Iterable[aiokafka.TopicPartition]) -> None:
        await self._on_revoked({_ours(tp) for tp in revoked})

    async def on_partitions_assigned(self, assigned: Iterable[aiokafka.TopicPartition]) -> None:
        self._on_assigned({_ours(tp) for tp in assigned})


def _ours(tp: aiokafka.TopicPartition) -> TopicPartition:
    return TopicPartition(tp.topic, tp.partition)


def _theirs(tp: TopicPartition) -> aiokafka.TopicPartition:
    # aiokafka checks isinstance against its own class, so an equal tuple is not enough.
    return aiokafka.TopicPartition(tp.topic, tp.partition)


def _record(r: aiokafka.ConsumerRecord) -> Record:
    return Record(
        topic=r.topic,
        partition=r.partition,
        offset=r.offset,
        key=r.key,
        value=r.value,
        timestamp_ms=r.timestamp,
        headers=tuple(r.headers or ()),
    )
