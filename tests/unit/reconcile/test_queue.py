"""queue: dedupe, one in flight per key, FIFO, delayed adds, per-key backoff, shutdown, metrics."""

from __future__ import annotations

import asyncio
import random

import pytest
from prometheus_client import REGISTRY

from gitops_mesh.reconcile.queue import (
    ExponentialBackoff,
    ManualClock,
    QueueShutDown,
    WorkQueue,
    jittered,
)


def sample(metric: str, queue: WorkQueue[str]) -> float:
    return REGISTRY.get_sample_value(metric, {"name": queue.name}) or 0.0


async def ready(queue: WorkQueue[str]) -> list[str]:
    """Every key the queue hands out right now, marked done at once."""
    out = []
    while len(queue):
        key = await queue.get()
        queue.done(key)
        out.append(key)
    return out


# -- backoff and jitter (pure)


def test_backoff_doubles_from_750ms_to_a_15_minute_cap() -> None:
    b: ExponentialBackoff[str] = ExponentialBackoff()
    delays = [b.when("k") for _ in range(14)]
    assert delays[:5] == [0.75, 1.5, 3.0, 6.0, 12.0]
    assert delays[10] == 768.0
    assert delays[11:] == [900.0, 900.0, 900.0]
    assert b.retries("k") == 14


def test_backoff_is_per_key_and_reset_by_forget() -> None:
    b: ExponentialBackoff[str] = ExponentialBackoff()
    b.when("a")
    b.when("a")
    assert b.when("b") == 0.75
    b.forget("a")
    assert b.retries("a") == 0
    assert b.when("a") == 0.75


def test_backoff_never_overflows() -> None:
    b: ExponentialBackoff[str] = ExponentialBackoff(base=0.001, cap=10.0)
    for _ in range(5000):
        delay = b.when("k")
    assert delay == 10.0


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="base"):
        ExponentialBackoff(base=0)
    with pytest.raises(ValueError, match="base"):
        ExponentialBackoff(base=2, cap=1)


def test_jitter_stays_within_the_fraction_on_both_sides() -> None:
    rng = random.Random(7)
    values = [jittered(300.0, rng=rng) for _ in range(2000)]
    assert all(270.0 <= v <= 330.0 for v in values)
    assert min(values) < 290.0
    assert max(values) > 310.0
    assert jittered(300.0, 0) == 300.0
    assert jittered(300.0, 1.0) == 300.0
    assert jittered(60.0, 0.5, rng=random.Random(1)) == jittered(60.0, 0.5, rng=random.Random(1))


# -- the queue


async def test_fifo_and_dedupe(unique: str) -> None:
    q: WorkQueue[str] = WorkQueue(unique)
    for key in ("a", "b", "a", "c", "b", "a"):
        q.add(key)
    assert len(q) == 3
    assert q.depth == 3
    assert await ready(q) == ["a", "b", "c"]
    assert sample("workqueue_adds_total", q) == 3  # repeated adds of a waiting key are not adds
    assert sample("workqueue_depth", q) == 0


async def test_a_key_in_flight_is_not_handed_out_again_until_done(unique: str) -> None:
    q: WorkQueue[str] = WorkQueue(unique)
    q.add("a")
    assert await q.get() == "a"
    q.add("a")
    q.add("a")
    assert len(q) == 0  # waiting for the in-flight run
    assert q.depth == 1
    other = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not other.done()
    q.done("a")
    assert await asyncio.wait_for(other, 5) == "a"  # re-queued once
    q.done("a")
    assert len(q) == 0
    assert q.in_flight == 0


async def test_done_without_a_new_add_does_not_requeue(unique: str) -> None:
    q: WorkQueue[str] = WorkQueue(unique)
    q.add("a")
    key = await q.get()
    q.done(key)
    q.done(key)  # a second done is harmless
    assert len(q) == 0
    assert q.depth == 0


async def test_get_waits_for_an_add(unique: str) -> None:
    q: WorkQueue[str] = WorkQueue(unique)
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    q.add("x")
    assert await asyncio.wait_for(getter, 5) == "x"


async def test_a_cancelled_getter_does_not_swallow_a_key(unique: str) -> None:
    q: WorkQueue[str] = WorkQueue(unique)
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    q.add("k")  # wakes `first`...
    first.cancel()  # ...which goes away before it runs
    assert await asyncio.wait_for(second, 5) == "k"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_shutdown_wakes_every_getter_and_ignores_later_adds(unique: str) -> None:
    clock = ManualClock()
    q: WorkQueue[str] = WorkQueue(unique, clock=clock)
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    q.add_after("later", 5)
    await asyncio.sleep(0.01)
    q.shutdown()
    for g in getters:
        with pytest.raises(QueueShutDown):
            await asyncio.wait_for(g, 5)
    assert clock.pending == 0  # timers cancelled
    q.add("x")
    q.add_after("y", 1)
    q.add_rate_limited("z")
    clock.advance(3600)
    assert len(q) == 0
    assert q.shutting_down
    with pytest.raises(QueueShutDown):
        await q.get()


async def test_shutdown_still_accepts_done_for_keys_in_flight(unique: str) -> None:
    q: WorkQueue[str] = WorkQueue(unique)
    q.add("a")
    key = await q.get()
    q.add("a")
    q.shutdown()
    q.done(key)
    assert q.in_flight == 0
    assert len(q) == 0


# -- delayed adds (manual clock)


async def test_add_after_releases_keys_in_deadline_order(unique: str) -> None:
    clock = ManualClock()
    q: WorkQueue[str] = WorkQueue(unique, clock=clock)
    q.add_after("c", 3)
    q.add_after("a", 1)
    q.add_after("b", 2)
    q.add_after("d", 2)  # same deadline as b, added later
    clock.advance(0.5)
    assert len(q) == 0
    clock.advance(1.5)
    assert await ready(q) == ["a", "b", "d"]
    clock.advance(1)
    assert await ready(q) == ["c"]


async def test_the_earliest_deadline_wins(unique: str) -> None:
    clock = ManualClock()
    q: WorkQueue[str] = WorkQueue(unique, clock=clock)
    q.add_after("k", 10)
    q.add_after("k", 2)
    q.add_after("k", 30)
    assert q.deadline("k") == 2
    clock.advance(2)
    assert await ready(q) == ["k"]
    clock.advance(60)
    assert len(q) == 0  # the superseded timers never fire


async def test_an_add_supersedes_a_pending_delayed_add(unique: str) -> None:
    clock = ManualClock()
    q: WorkQueue[str] = WorkQueue(unique, clock=clock)
    q.add_after("k", 5)
    q.add("k")
    assert q.deadline("k") is None
    assert await ready(q) == ["k"]
    clock.advance(10)
    assert len(q) == 0


async def test_add_after_of_a_queued_key_does_nothing(unique: str) -> None:
    clock = ManualClock()
    q: WorkQueue[str] = WorkQueue(unique, clock=clock)
    q.add("k")
    q.add_after("k", 5)
    assert q.deadline("k") is None
    assert await ready(q) == ["k"]


async def test_add_after_zero_is_an_add(unique: str) -> None:
    q: WorkQueue[str] = WorkQueue(unique, clock=ManualClock())
    q.add_after("k", 0)
    q.add_after("j", -1)
    assert await ready(q) == ["k", "j"]


async def test_add_after_of_a_key_in_flight_fires_after_done(unique: str) -> None:
    clock = ManualClock()
    q: WorkQueue[str] = WorkQueue(unique, clock=clock)
    q.add("k")
    key = await q.get()
    q.add_after(key, 1)  # what the engine does for a periodic requeue
    clock.advance(1)
    assert len(q) == 0  # still in flight
    q.done(key)
    assert await ready(q) == ["k"]


async def test_rate_limited_adds_back_off_per_key_until_forgotten(unique: str) -> None:
    clock = ManualClock()
    q: WorkQueue[str] = WorkQueue(unique, clock=clock)
    seen = []
    for _ in range(4):
        delay = q.add_rate_limited("k")
        assert q.deadline("k") == clock.now() + delay
        seen.append(delay)
        clock.advance(delay)
        assert await ready(q) == ["k"]
    assert seen == [0.75, 1.5, 3.0, 6.0]
    assert q.retries("k") == 4
    assert sample("workqueue_retries_total", q) == 4
    assert q.add_rate_limited("other") == 0.75
    q.forget("k")
    assert q.retries("k") == 0
    assert q.add_rate_limited("k") == 0.75


async def test_durations_are_measured_on_the_queue_clock(unique: str) -> None:
    clock = ManualClock()
    q: WorkQueue[str] = WorkQueue(unique, clock=clock)
    q.add("k")
    clock.advance(2)
    key = await q.get()
    clock.advance(3)
    q.done(key)
    assert sample("workqueue_queue_duration_seconds_count", q) == 1
    assert sample("workqueue_queue_duration_seconds_sum", q) == 2
    assert sample("workqueue_work_duration_seconds_count", q) == 1
    assert sample("workqueue_work_duration_seconds_sum", q) == 3


async def test_real_clock_delayed_add(unique: str) -> None:
    q: WorkQueue[str] = WorkQueue(unique)
    q.add_after("slow", 0.05)
    q.add_after("fast", 0.01)
    got = [await asyncio.wait_for(q.get(), 5), await asyncio.wait_for(q.get(), 5)]
    assert got == ["fast", "slow"]
