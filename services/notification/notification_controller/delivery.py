"""Durable delivery: every matched (event, Alert) reaches its Provider, or is parked with the reason.

Design
======

Two lanes, both fed by Kafka consumer groups, so nothing lives only in memory:

**Hot lane** — the handler of the ``notification-controller`` group (artifact-ready, applied, failed,
events). For each event it builds the deliveries (one per matching Alert) and awaits them all; the
shared Consumer commits the event's offset only when the handler returns, i.e. when every delivery is
*settled*: delivered, skipped (the Provider type does not take it, the Provider is suspended), parked on
the dead-letter topic, or handed over to the retry lane — each of the last two only once Kafka has
acknowledged the record. A crash at any point before that means the event is consumed again; deliveries
already settled in this process are remembered (by delivery id) and not sent twice, and the rate limiter
lets a redelivered event id through. Deliveries to different Providers run concurrently, so a slow
Provider does not hold up the others' deliveries of the same event; distinct partitions are handled
concurrently, so other objects' events keep flowing.

A delivery is attempted in the hot lane for at most ``hold`` seconds (retrying with exponential backoff,
honouring ``Retry-After``), then **handed over** to the retry topic (``<prefix>notification-retries``).
That bounds how long one failing Provider can hold a partition: a long outage costs each event at most
``hold`` once, and not even that afterwards — a Provider whose last attempt failed is *failing*, and its
new deliveries are handed over at once without an attempt, until an attempt succeeds again.

**Retry lane** — the ``notification-controller-retries`` group on the retry topic. A record carries the
original event, the Alert and Provider, the attempts so far, the time of the first failure and when it is
due (``not_before``). The handler waits until it is due (at most ``max_backoff``; holding that retry
partition meanwhile, which keeps the topic roughly in due order), resolves the Alert, Provider and
Secrets again (a fixed token or address takes effect), makes one attempt, and settles it: delivered;
rejected (parked); or failed again — re-published with the next backoff, or parked once ``budget`` seconds
have passed since the first failure. Re-publishing is acknowledged before the offset moves on.

**Order.** Deliveries to one Provider about one object (the *order key*) go out one at a time and in
event order: the hot lane serialises them with a FIFO lock per order key (and the Consumer hands one
partition's events over one by one). Once a key has a delivery in the retry lane, the key's later
deliveries follow it there (the *gate*), and the retry lane attempts only the oldest pending delivery of
a key (lowest ``seq``), re-publishing younger ones behind it. The gate is in memory: after a restart, or
with replicas sharing the retry topic, order between deliveries already in the retry lane is best effort
(each carries the event's timestamp and id). Gate entries whose record has not been seen for
``stale_after`` are dropped, so a record another replica took over cannot block a key forever.

**Give-up.** 4xx answers other than 408/429, an unusable Provider (unsupported type, bad address, missing
token, a CA that does not parse) and an Alert or Provider that no longer exists are not retried; like a
delivery whose retry budget ran out they are parked on ``<prefix>dlq`` with ``dlq-reason``/``dlq-detail``
headers, counted in ``gitops_notification_deliveries_total{result="parked"}``, logged, and reported as a
Warning Event on the Alert.

**Idempotency.** At-least-once means a receiver may see a delivery twice (a crash after the provider
answered, a hand-over that cancelled a request in flight). Every request carries ``X-Gotk-Event-Id``.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Protocol

from gitops_mesh.backoff import delay as jittered_delay
from gitops_mesh.bus.consumer import RecordMeta
from gitops_mesh.bus.envelope import Event
from gitops_mesh.errors import BusUnavailable
from gitops_mesh.observability import metrics
from gitops_mesh.observability.logging import get_logger
from notification_controller.providers import Request
from notification_controller.providers.base import redact_text
from notification_controller.records import Delivery, from_record, next_seq
from notification_controller.sending import Attempt, AttemptKind

log = get_logger(__name__)


class Resolver(Protocol):
    """Turns a delivery into a request with the Alert, Provider and Secrets as they are now."""

    async def resolve(self, d: Delivery) -> Request | Attempt:
        """The request to send, or an Attempt when resolving decided already (skip, reject, retry)."""
        ...

    def provider_type(self, d: Delivery) -> str:
        """The Provider's type for metric labels ("unknown" when it is gone)."""
        ...


class Sender(Protocol):
    async def send(self, request: Request) -> Attempt: ...


class Parker(Protocol):
    async def retry_later(self, d: Delivery) -> None: ...

    async def dead_letter(self, d: Delivery, *, reason: str, detail: str, source_topic: str) -> None: ...


class Reporter(Protocol):
    """Tells people about a delivery given up (a Warning Event on the Alert)."""

    async def parked(self, d: Delivery, reason: str, message: str) -> None: ...


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    #: How long the hot lane keeps trying before it hands a delivery over to the retry lane.
    hold: float = 30.0
    #: How long after its first failure a delivery is given up (parked on the DLQ).
    budget: float = 6 * 3600.0
    initial_backoff: float = 1.0
    max_backoff: float = 300.0
    #: Requests in flight per Provider.
    provider_concurrency: int = 4
    #: A retry-lane gate entry not seen for this long is dropped (its record moved to another replica).
    stale_after: float = 900.0


def backoff(settings: DeliverySettings, attempts: int, retry_after: float | None) -> float:
    """Seconds before the next attempt: ``Retry-After`` when given, else exponential with jitter; capped."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), settings.max_backoff)
    # ``attempts`` counts the failure just seen, so the first retry waits ``initial_backoff``.
    return jittered_delay(
        attempts - 1, initial=settings.initial_backoff, cap=settings.max_backoff, factor=2.0, jitter=(-0.2, 0.0)
    )


# ---- in-memory coordination ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    not_before: float
    seen: float


class RetryGate:
    """The retry lane's pending deliveries per order key (this process's view), oldest ``seq`` first."""

    def __init__(self, *, stale_after: float, clock: Callable[[], float] = time.time) -> None:
        self._stale_after = stale_after
        self._clock = clock
        self._keys: dict[str, dict[int, _Pending]] = {}

    def add(self, key: str, seq: int, not_before: float) -> None:
        now = self._clock()
        self._keys.setdefault(key, {})[seq] = _Pending(not_before, now)
        metrics.notification_retry_pending.set(self.size)

    def remove(self, key: str, seq: int) -> None:
        pending = self._keys.get(key)
        if pending is not None:
            pending.pop(seq, None)
            if not pending:
                del self._keys[key]
        metrics.notification_retry_pending.set(self.size)

    def head(self, key: str) -> tuple[int, _Pending] | None:
        """The oldest live pending delivery of ``key``; stale entries are dropped on the way."""
        pending = self._keys.get(key)
        if not pending:
            return None
        now = self._clock()
        for seq in sorted(pending):
            entry = pending[seq]
            if now - max(entry.seen, entry.not_before) > self._stale_after:
                log.warning("dropping a stale retry-lane entry", order_key=key, seq=seq)
                self.remove(key, seq)
                continue
            return seq, entry
        return None

    def blocked(self, key: str) -> bool:
        return self.head(key) is not None

    @property
    def size(self) -> int:
        return sum(len(v) for v in self._keys.values())


class ProviderHealth:
    """Providers whose last attempt failed: their new deliveries skip the hot lane."""

    def __init__(self) -> None:
        self._failing: set[str] = set()

    def failing(self, provider: str) -> bool:
        return provider in self._failing

    def record(self, provider: str, attempt: Attempt) -> None:
        if attempt.kind is AttemptKind.RETRY:
            if provider not in self._failing:
                log.warning("provider failing; new deliveries go to the retry lane", provider=provider)
            self._failing.add(provider)
        elif attempt.kind is AttemptKind.DELIVERED and provider in self._failing:
            log.info("provider answering again", provider=provider)
            self._failing.discard(provider)


class _Lane:
    """One Provider's bounded concurrency and per-order-key FIFO."""

    def __init__(self, concurrency: int) -> None:
        self.slots = asyncio.Semaphore(concurrency)
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def ordered(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class _Settled:
    """Delivery ids settled recently: a redelivered event does not send them again."""

    def __init__(self, max_size: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._max = max_size

    def add(self, delivery_id: str) -> None:
        self._ids[delivery_id] = None
        self._ids.move_to_end(delivery_id)
        while len(self._ids) > self._max:
            self._ids.popitem(last=False)

    def __contains__(self, delivery_id: object) -> bool:
        return delivery_id in self._ids


class _HandOver(Exception):
    """Internal: the hot lane gives this delivery to the retry lane."""

    def __init__(self, d: Delivery) -> None:
        super().__init__(d.id)
        self.delivery = d


# ---- the dispatcher ------------------------------------------------------------------------------------


@dataclass
class Dispatcher:
    """Runs the hot lane (:meth:`deliver`) and the retry lane (:meth:`retry`); see the module docstring."""

    resolver: Resolver
    sender: Sender
    parking: Parker
    reporter: Reporter
    settings: DeliverySettings = field(default_factory=DeliverySettings)
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    gate: RetryGate = field(init=False)
    health: ProviderHealth = field(default_factory=ProviderHealth)
    _lanes: dict[str, _Lane] = field(default_factory=dict)
    _settled: _Settled = field(default_factory=_Settled)

    def __post_init__(self) -> None:
        self.gate = RetryGate(stale_after=self.settings.stale_after, clock=self.clock)

    def _lane(self, provider: str) -> _Lane:
        lane = self._lanes.get(provider)
        if lane is None:
            lane = self._lanes[provider] = _Lane(self.settings.provider_concurrency)
        return lane

    # ---- hot lane ------------------------------------------------------------------------------------

    async def deliver(self, deliveries: Iterable[Delivery], *, source_topic: str) -> None:
        """Settle every delivery (concurrently); raises BusUnavailable if one could not be parked or handed
        over, after the others settled, so the event is consumed again (settled ones are not resent)."""
        todo = [d for d in deliveries if d.id not in self._settled]
        results = await asyncio.gather(*(self._hot(d, source_topic) for d in todo), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for e in errors:
            if not isinstance(e, Exception):
                raise e
        if errors:
            # A Kafka outage first (the Consumer retries it); anything else is a bug the Consumer reports.
            raise next((e for e in errors if isinstance(e, BusUnavailable)), errors[0])

    async def _hot(self, d: Delivery, source_topic: str) -> None:
        lane = self._lane(d.provider)
        ptype = self.resolver.provider_type(d)
        async with lane.ordered(d.order_key):
            if self.gate.blocked(d.order_key) or self.health.failing(d.provider):
                await self._hand_over(d, ptype, not_before=self.clock())
            else:
                deadline = self.monotonic() + self.settings.hold
                try:
                    await self._attempt_until_settled(d, lane, ptype, source_topic, deadline)
                except _HandOver as h:
                    await self._hand_over(h.delivery, ptype, not_before=h.delivery.not_before)
        self._settled.add(d.id)

    async def _attempt_until_settled(
        self, d: Delivery, lane: _Lane, ptype: str, source_topic: str, deadline: float
    ) -> None:
        while True:
            remaining = deadline - self.monotonic()
            if remaining <= 0:
                raise _HandOver(replace(d, not_before=self.clock()))
            try:
                async with asyncio.timeout(remaining):
                    attempt = await self._attempt(d, lane)
            except TimeoutError:
                # A request cancelled in flight may have arrived: the retry lane resends it (same event id).
                raise _HandOver(replace(d.failed("no answer within the hot lane's hold", now=self.clock()))) from None
            if attempt.kind is not AttemptKind.RETRY:
                await self._settle(d, attempt, ptype, source_topic)
                return
            d = d.failed(f"{attempt.reason}: {attempt.detail}", now=self.clock())
            metrics.notification_deliveries.labels(type=ptype, result="retried").inc()
            if self._budget_spent(d):
                await self._park(d, ptype, "RetryBudgetExhausted", d.last_error, source_topic)
                return
            delay = backoff(self.settings, d.attempts, attempt.retry_after)
            log.info(
                "delivery failed; retrying",
                delivery=d.id,
                provider=d.provider,
                reason=attempt.reason,
                detail=attempt.detail,
                attempts=d.attempts,
                retry_in=round(delay, 3),
            )
            if self.monotonic() + delay > deadline:
                raise _HandOver(replace(d, not_before=self.clock() + delay))
            await self.sleep(delay)

    async def _hand_over(self, d: Delivery, ptype: str, *, not_before: float) -> None:
        d = replace(d, not_before=not_before, seq=next_seq())
        # Gate first: a later delivery of this key waiting on the FIFO lock must see it.
        self.gate.add(d.order_key, d.seq, d.not_before)
        try:
            await self.parking.retry_later(d)
        except BusUnavailable:
            self.gate.remove(d.order_key, d.seq)
            raise
        metrics.notification_deliveries.labels(type=ptype, result="handed_over").inc()
        log.info(
            "delivery handed over to the retry lane",
            delivery=d.id,
            provider=d.provider,
            attempts=d.attempts,
            due_in=round(max(0.0, d.not_before - self.clock()), 3),
        )

    # ---- retry lane ----------------------------------------------------------------------------------

    async def retry(self, event: Event, meta: RecordMeta) -> None:
        """The retry topic's handler: one attempt when due, then settle or re-publish."""
        d = from_record(event)
        key = d.order_key
        # Known or not (a restart, another replica's hand-over), the record is pending and was just seen.
        self.gate.add(key, d.seq, d.not_before)
        head = self.gate.head(key)
        if head is not None and head[0] != d.seq:
            # Not this key's oldest pending delivery: go behind it again, due when it is.
            later = replace(d, not_before=max(d.not_before, head[1].not_before))
            await self.parking.retry_later(later)
            self.gate.add(key, d.seq, later.not_before)
            return
        wait = min(d.not_before - self.clock(), self.settings.max_backoff)
        if wait > 0:
            await self.sleep(wait)
        ptype = self.resolver.provider_type(d)
        lane = self._lane(d.provider)
        async with lane.ordered(key):
            attempt = await self._attempt(d, lane)
            if attempt.kind is not AttemptKind.RETRY:
                await self._settle(d, attempt, ptype, meta.topic)
                self.gate.remove(key, d.seq)
                return
            d = d.failed(f"{attempt.reason}: {attempt.detail}", now=self.clock())
            metrics.notification_deliveries.labels(type=ptype, result="retried").inc()
            if self._budget_spent(d):
                await self._park(d, ptype, "RetryBudgetExhausted", d.last_error, meta.topic)
                self.gate.remove(key, d.seq)
                return
            d = replace(d, not_before=self.clock() + backoff(self.settings, d.attempts, attempt.retry_after))
            await self.parking.retry_later(d)
            self.gate.add(key, d.seq, d.not_before)
            log.info(
                "delivery still failing; retrying later",
                delivery=d.id,
                provider=d.provider,
                reason=attempt.reason,
                attempts=d.attempts,
                due_in=round(d.not_before - self.clock(), 3),
            )

    # ---- shared --------------------------------------------------------------------------------------

    async def _attempt(self, d: Delivery, lane: _Lane) -> Attempt:
        resolved = await self.resolver.resolve(d)
        if isinstance(resolved, Attempt):
            attempt = resolved
        else:
            async with lane.slots:
                attempt = await self.sender.send(resolved)
        self.health.record(d.provider, attempt)
        metrics.notification_attempts.labels(type=self.resolver.provider_type(d), outcome=attempt.kind).inc()
        return attempt

    def _budget_spent(self, d: Delivery) -> bool:
        return d.first_failure is not None and self.clock() - d.first_failure >= self.settings.budget

    async def _settle(self, d: Delivery, attempt: Attempt, ptype: str, source_topic: str) -> None:
        if attempt.kind is AttemptKind.DELIVERED:
            metrics.notification_deliveries.labels(type=ptype, result="delivered").inc()
            metrics.notification_latency.labels(type=ptype).observe(max(0.0, self.clock() - d.event.time.timestamp()))
            log.debug("delivered", delivery=d.id, provider=d.provider, status=attempt.status, attempts=d.attempts + 1)
        elif attempt.kind is AttemptKind.SKIPPED:
            metrics.notification_deliveries.labels(type=ptype, result="skipped").inc()
            log.debug("delivery not applicable", delivery=d.id, provider=d.provider, why=attempt.detail)
        else:
            await self._park(d, ptype, attempt.reason, attempt.detail, source_topic)

    async def _park(self, d: Delivery, ptype: str, reason: str, detail: str, source_topic: str) -> None:
        # Attempts' details are redacted already; a record from the retry topic may predate that.
        detail = redact_text(detail)
        await self.parking.dead_letter(d, reason=reason, detail=detail, source_topic=source_topic)
        metrics.notification_deliveries.labels(type=ptype, result="parked").inc()
        log.error(
            "delivery given up; parked on the dead-letter topic",
            delivery=d.id,
            alert=d.alert,
            provider=d.provider,
            reason=reason,
            detail=detail,
            attempts=d.attempts,
        )
        await self.reporter.parked(d, reason, f"notification for {d.event.subject} not delivered: {reason}: {detail}")
