"""The work queue between watch events and reconcile workers: deduped keys, one in flight per key, backoff.

Modelled on client-go's rate-limited delaying workqueue:

* a key waiting in the queue is queued once, however many times it is added ("dirty" set);
* a key handed out by :meth:`WorkQueue.get` is *in flight* until :meth:`WorkQueue.done`; adding it
  meanwhile marks it dirty, and ``done`` queues it again, once - so one key is never worked on twice
  at the same time, and no add made during a reconcile is lost;
* otherwise keys come out first in, first out;
* :meth:`WorkQueue.add_after` parks a key on a timer (the earliest deadline wins);
  :meth:`WorkQueue.add_rate_limited` does so with the key's exponential backoff (750 ms doubling to
  15 min, Flux's defaults), reset by :meth:`WorkQueue.forget`.

Two choices differ from client-go, both because every reconcile ends by deciding its own next requeue:
a key is never both queued and parked on a timer (``add`` cancels the timer; ``add_after`` of a queued
key does nothing), and ``get`` raises :class:`QueueShutDown` as soon as the queue is shut down instead
of draining it (what is left is found again by the informers' relist after a restart).

All methods must be called from the event loop's thread. Time comes from a :class:`Clock`: the loop's
by default, :class:`ManualClock` in tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, Protocol, TypeVar

from gitops_mesh import backoff
from gitops_mesh.observability import metrics

K = TypeVar("K", bound=Hashable)

MIN_RETRY_DELAY = 0.75
MAX_RETRY_DELAY = 900.0


class QueueShutDown(Exception):
    """Raised by :meth:`WorkQueue.get` once the queue is shut down."""


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic seconds and timers; the seam that lets tests move time by hand."""

    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


class LoopClock:
    """The running event loop's clock and timers."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)


@dataclass(order=True)
class _ManualTimer:
    when: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when :meth:`advance` is called; due timers fire inside it, in deadline order."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._timers: list[_ManualTimer] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _ManualTimer(self._now + max(delay, 0.0), next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    def advance(self, seconds: float) -> None:
        target = self._now + seconds
        while self._timers and self._timers[0].when <= target:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, timer.when)
            timer.callback()
        self._now = target

    @property
    def pending(self) -> int:
        """Timers not yet fired nor cancelled."""
        return sum(not t.cancelled for t in self._timers)


class ExponentialBackoff(Generic[K]):
    """Per-key delay ``base * 2**failures`` capped at ``cap`` (client-go's item exponential failure limiter)."""

    def __init__(self, base: float = MIN_RETRY_DELAY, cap: float = MAX_RETRY_DELAY) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"need 0 < base <= cap, got base={base} cap={cap}")
        self.base = base
        self.cap = cap
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        """The delay before the next retry of ``key``; counts one more failure."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        # client-go's limiter has no jitter: the per-key doubling already spreads keys that failed at different times.
        return backoff.delay(n, initial=self.base, cap=self.cap, factor=2.0, jitter=backoff.NO_JITTER)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def retries(self, key: K) -> int:
        return self._failures.get(key, 0)


def jittered(interval: float, fraction: float = 0.1, *, rng: random.Random | None = None) -> float:
    """``interval`` moved by up to +/-``fraction`` of itself (Flux's ``--interval-jitter-percentage``, 10%).

    Spreads the periodic requeues of objects that share an interval. A fraction outside (0, 1) means no jitter.
    """
    if not 0 < fraction < 1:
        return interval
    return backoff.jittered(interval, (-fraction, fraction), rng=rng)


class WorkQueue(Generic[K]):
    """See the module docstring. ``name`` labels the ``workqueue_*`` metrics."""

    def __init__(self, name: str, *, clock: Clock | None = None, backoff: ExponentialBackoff[K] | None = None) -> None:
        self.name = name
        self._clock: Clock = clock or LoopClock()
        self._backoff: ExponentialBackoff[K] = backoff or ExponentialBackoff()
        self._queue: deque[K] = deque()
        self._dirty: dict[K, float] = {}  # key -> when it was added, for queue_duration
        self._processing: dict[K, float] = {}  # key -> when it was handed out, for work_duration
        self._waiting: dict[K, tuple[float, TimerHandle]] = {}  # key -> (deadline, timer)
        self._getters: deque[asyncio.Future[None]] = deque()
        self._shutting_down = False
        self._m_depth = metrics.workqueue_depth.labels(name=name)
        self._m_adds = metrics.workqueue_adds.labels(name=name)
        self._m_retries = metrics.workqueue_retries.labels(name=name)
        self._m_queue_duration = metrics.workqueue_queue_duration.labels(name=name)
        self._m_work_duration = metrics.workqueue_work_duration.labels(name=name)
        self._m_depth.set(0)

    # -- adding

    def add(self, key: K) -> None:
        """Queue ``key`` now (a no-op when already queued; re-queued after ``done`` when in flight)."""
        if self._shutting_down:
            return
        self._cancel_timer(key)
        if key in self._dirty:
            return
        self._dirty[key] = self._clock.now()
        self._m_adds.inc()
        self._m_depth.set(len(self._dirty))
        if key in self._processing:
            return
        self._queue.append(key)
        self._wake_one()

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds; an earlier pending deadline for it wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        if key in self._dirty:
            return
        deadline = self._clock.now() + delay
        current = self._waiting.get(key)
        if current is not None:
            if current[0] <= deadline:
                return
            current[1].cancel()
        handle = self._clock.call_later(delay, partial(self._fire, key, deadline))
        self._waiting[key] = (deadline, handle)

    def add_rate_limited(self, key: K) -> float:
        """Queue ``key`` after its next backoff delay; returns that delay."""
        delay = self._backoff.when(key)
        if self._shutting_down:
            return delay
        self._m_retries.inc()
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """Reset ``key``'s backoff (after a success)."""
        self._backoff.forget(key)

    def retries(self, key: K) -> int:
        """Failures counted for ``key`` since the last ``forget``."""
        return self._backoff.retries(key)

    # -- working

    async def get(self) -> K:
        """Wait for the next key and mark it in flight; raises :class:`QueueShutDown` once shut down."""
        loop = asyncio.get_running_loop()
        while True:
            if self._shutting_down:
                raise QueueShutDown(self.name)
            if self._queue:
                key = self._queue.popleft()
                now = self._clock.now()
                added = self._dirty.pop(key)
                self._processing[key] = now
                self._m_depth.set(len(self._dirty))
                self._m_queue_duration.observe(max(now - added, 0.0))
                return key
            waiter: asyncio.Future[None] = loop.create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    # This getter was woken for a key but is going away: pass the wake-up on, or the key
                    # could sit in the queue while other getters sleep.
                    self._wake_one()
                else:
                    self._discard_getter(waiter)
                raise

    def done(self, key: K) -> None:
        """``key``'s reconcile finished; queue it again if it was added meanwhile."""
        started = self._processing.pop(key, None)
        if started is None:
            return
        self._m_work_duration.observe(max(self._clock.now() - started, 0.0))
        if key in self._dirty and not self._shutting_down:
            self._queue.append(key)
            self._wake_one()

    def shutdown(self) -> None:
        """Stop: later adds are ignored, timers are cancelled, every ``get`` raises :class:`QueueShutDown`."""
        if self._shutting_down:
            return
        self._shutting_down = True
        for _, handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()
        self._queue.clear()
        self._dirty.clear()
        self._m_depth.set(0)
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # -- looking

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def __len__(self) -> int:
        """Keys ready to be handed out."""
        return len(self._queue)

    @property
    def depth(self) -> int:
        """Keys added and not yet handed out (queued, or waiting for their in-flight run to finish)."""
        return len(self._dirty)

    @property
    def in_flight(self) -> int:
        return len(self._processing)

    def deadline(self, key: K) -> float | None:
        """When ``key``'s pending delayed add fires (on the queue's clock), or None."""
        entry = self._waiting.get(key)
        return entry[0] if entry is not None else None

    # -- inside

    def _fire(self, key: K, deadline: float) -> None:
        entry = self._waiting.get(key)
        if entry is None or entry[0] != deadline:
            return  # superseded by an earlier deadline or an add
        del self._waiting[key]
        self.add(key)

    def _cancel_timer(self, key: K) -> None:
        entry = self._waiting.pop(key, None)
        if entry is not None:
            entry[1].cancel()

    def _wake_one(self) -> None:
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _discard_getter(self, waiter: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._getters.remove(waiter)
