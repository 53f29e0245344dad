"""Workers: per-key exclusion, --concurrent, outcome mapping, supervision, graceful stop."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from prometheus_client import REGISTRY

from gitops_mesh.errors import (
    Conflict,
    DependencyNotReady,
    InvalidSpec,
    KubeUnavailable,
    NotFound,
    TransientError,
)
from gitops_mesh.reconcile.queue import ManualClock, WorkQueue
from gitops_mesh.reconcile.workers import Requeue, Result, Workers, requeue_for

Step = Callable[[], Awaitable[Result]]


async def eventually(predicate: Callable[[], bool], *, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll until ``predicate`` holds; generous timeout, so a loaded machine is slow rather than red."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


@asynccontextmanager
async def running(controller: Workers[str]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(controller.run(), name=f"test/{controller.name}")
    try:
        yield task
    finally:
        controller.stop()
        await asyncio.wait_for(task, 10)


def total(controller: str, result: str) -> float:
    return (
        REGISTRY.get_sample_value("controller_runtime_reconcile_total", {"controller": controller, "result": result})
        or 0.0
    )


def errors(controller: str) -> float:
    return REGISTRY.get_sample_value("controller_runtime_reconcile_errors_total", {"controller": controller}) or 0.0


# -- the two foundation requirements


async def test_two_events_for_one_key_never_run_two_reconciles_at_once(unique: str) -> None:
    adds = 0
    running_now: Counter[str] = Counter()
    overlap = 0
    started_after: list[int] = []  # how many adds had been made when each run started
    first_may_finish = asyncio.Event()

    async def reconcile(key: str) -> Result:
        nonlocal overlap
        running_now[key] += 1
        overlap = max(overlap, running_now[key])
        started_after.append(adds)
        try:
            if len(started_after) == 1:
                await first_may_finish.wait()
            else:
                await asyncio.sleep(0.001)
        finally:
            running_now[key] -= 1
        return None

    controller: Workers[str] = Workers(unique, reconcile, concurrent=4)
    async with running(controller):
        controller.queue.add("ns/app")
        adds = 1
        await eventually(lambda: len(started_after) == 1, what="the first reconcile")
        for _ in range(50):  # hammer the key while its slow reconcile runs, letting idle workers run
            controller.queue.add("ns/app")
            adds += 1
            await asyncio.sleep(0)
        await asyncio.sleep(0.02)
        assert len(started_after) == 1  # nothing started a second run while the first was in flight
        first_may_finish.set()
        await eventually(lambda: len(started_after) == 2 and running_now["ns/app"] == 0, what="the second run")
        await asyncio.sleep(0.05)

    assert overlap == 1
    assert started_after == [1, 51]  # exactly one more run, and it saw the last add
    assert controller.queue.depth == 0


async def test_random_hammering_of_one_key_never_overlaps(unique: str) -> None:
    rng = random.Random(1234)
    adds = 0
    running_now = 0
    overlap = 0
    started_after: list[int] = []

    async def reconcile(key: str) -> Result:
        nonlocal running_now, overlap
        running_now += 1
        overlap = max(overlap, running_now)
        started_after.append(adds)
        try:
            await asyncio.sleep(rng.uniform(0, 0.004))
        finally:
            running_now -= 1
        return None

    controller: Workers[str] = Workers(unique, reconcile, concurrent=8)
    async with running(controller):
        for _ in range(300):
            controller.queue.add("ns/hot")
            adds += 1
            if rng.random() < 0.5:
                await asyncio.sleep(rng.uniform(0, 0.002))
        await eventually(lambda: started_after[-1] == adds and running_now == 0, what="a run after the last add")

    assert overlap == 1
    assert len(started_after) < adds  # adds made while one run was queued were folded into it


async def test_100_keys_run_concurrent_at_a_time(unique: str) -> None:
    concurrent = 5
    running_now = 0
    most = 0
    done: Counter[str] = Counter()

    async def reconcile(key: str) -> Result:
        nonlocal running_now, most
        running_now += 1
        most = max(most, running_now)
        try:
            await asyncio.sleep(0.01)
        finally:
            running_now -= 1
        done[key] += 1
        return None

    keys = [f"ns/app-{i}" for i in range(100)]
    controller: Workers[str] = Workers(unique, reconcile, concurrent=concurrent)
    for key in keys:
        controller.queue.add(key)
    async with running(controller):
        await eventually(lambda: sum(done.values()) == 100, what="all 100 keys")
        assert REGISTRY.get_sample_value(
            "controller_runtime_max_concurrent_reconciles", {"controller": unique}
        ) == float(concurrent)

    assert most == concurrent
    assert set(done) == set(keys)
    assert set(done.values()) == {1}
    assert REGISTRY.get_sample_value("controller_runtime_active_workers", {"controller": unique}) == 0
    assert total(unique, "success") == 100


# -- outcome mapping


@pytest.mark.parametrize(
    ("result", "error", "expected"),
    [
        (None, None, Requeue("success", forget=True)),
        (300.0, None, Requeue("requeue_after", forget=True, after=300.0)),
        (0.0, None, Requeue("requeue", rate_limited=True)),
        (None, DependencyNotReady("dep"), Requeue("requeue_after", forget=True, after=30.0)),
        (None, DependencyNotReady("dep", retry_after=5), Requeue("requeue_after", forget=True, after=5)),
        (None, KubeUnavailable("down"), Requeue("error", rate_limited=True)),
        (None, Conflict("409", retry_after=0.1), Requeue("error", after=0.1)),
        (None, InvalidSpec("bad"), Requeue("error", forget=True)),
        (None, NotFound("gone"), Requeue("error", rate_limited=True)),  # neutral: retried, never stalls
        (None, RuntimeError("bug"), Requeue("error", rate_limited=True)),
    ],
)
def test_requeue_for(result: Result, error: Exception | None, expected: Requeue) -> None:
    assert requeue_for(result, error, requeue_dependency=30.0) == expected


class Script:
    """A reconcile that plays scripted steps per key and records every call."""

    def __init__(self, steps: dict[str, list[Step]]) -> None:
        self.steps = steps
        self.calls: list[str] = []

    async def __call__(self, key: str) -> Result:
        self.calls.append(key)
        return await self.steps[key].pop(0)()

    def count(self, key: str) -> int:
        return self.calls.count(key)


def returns(value: Result) -> Step:
    async def step() -> Result:
        return value

    return step


def raises(error: BaseException) -> Step:
    async def step() -> Result:
        raise error

    return step


async def test_success_forgets_backoff_and_requeues_on_the_interval(unique: str) -> None:
    clock = ManualClock()
    script = Script({"k": [raises(KubeUnavailable("down")), returns(300.0), returns(None)]})
    controller: Workers[str] = Workers(unique, script, queue=WorkQueue(unique, clock=clock))
    q = controller.queue
    async with running(controller):
        q.add("k")
        await eventually(lambda: q.deadline("k") == 0.75, what="the backoff")
        assert q.retries("k") == 1
        clock.advance(0.75)
        await eventually(lambda: q.deadline("k") == 0.75 + 300, what="the periodic requeue")
        assert q.retries("k") == 0
        clock.advance(300)
        await eventually(lambda: script.count("k") == 3 and q.in_flight == 0, what="the periodic run")
        assert q.deadline("k") is None
    assert total(unique, "error") == 1
    assert total(unique, "requeue_after") == 1
    assert total(unique, "success") == 1
    assert errors(unique) == 1


async def test_transient_errors_back_off_exponentially(unique: str) -> None:
    clock = ManualClock()
    script = Script({"k": [raises(TransientError("flaky")) for _ in range(4)]})
    controller: Workers[str] = Workers(unique, script, queue=WorkQueue(unique, clock=clock))
    q = controller.queue
    delays = []
    async with running(controller):
        q.add("k")

        def failed(times: int) -> Callable[[], bool]:
            return lambda: q.retries("k") == times and q.in_flight == 0

        for n in range(1, 5):
            await eventually(failed(n), what=f"failure {n}")
            deadline = q.deadline("k")
            assert deadline is not None
            delays.append(deadline - clock.now())
            if n < 4:
                clock.advance(deadline - clock.now())
    assert delays == [0.75, 1.5, 3.0, 6.0]
    assert errors(unique) == 4


async def test_retry_after_and_immediate_requeue(unique: str) -> None:
    clock = ManualClock()
    script = Script({"a": [raises(Conflict("stale", retry_after=7))], "b": [returns(0.0)]})
    controller: Workers[str] = Workers(unique, script, queue=WorkQueue(unique, clock=clock))
    q = controller.queue
    async with running(controller):
        q.add("a")
        q.add("b")
        await eventually(lambda: len(script.calls) == 2 and q.in_flight == 0, what="both runs")
        assert q.deadline("a") == 7
        assert q.retries("a") == 0  # a server-given delay is not a backoff step
        assert q.deadline("b") == 0.75  # "again now" is rate limited, as in controller-runtime
    assert total(unique, "requeue") == 1
    assert total(unique, "error") == 1


async def test_dependency_not_ready_waits_without_counting_an_error(unique: str) -> None:
    clock = ManualClock()
    script = Script(
        {"a": [raises(DependencyNotReady("db not ready"))], "b": [raises(DependencyNotReady("src", retry_after=3))]}
    )
    controller: Workers[str] = Workers(unique, script, requeue_dependency=42.0, queue=WorkQueue(unique, clock=clock))
    q = controller.queue
    async with running(controller):
        q.add("a")
        q.add("b")
        await eventually(lambda: len(script.calls) == 2 and q.in_flight == 0, what="both runs")
        assert q.deadline("a") == 42.0
        assert q.deadline("b") == 3
    assert total(unique, "requeue_after") == 2
    assert errors(unique) == 0


async def test_terminal_error_forgets_and_does_not_requeue(unique: str) -> None:
    clock = ManualClock()
    script = Script({"k": [raises(KubeUnavailable("down")), raises(InvalidSpec("bad url"))]})
    controller: Workers[str] = Workers(unique, script, queue=WorkQueue(unique, clock=clock))
    q = controller.queue
    async with running(controller):
        q.add("k")
        await eventually(lambda: q.retries("k") == 1 and q.in_flight == 0, what="the transient failure")
        clock.advance(0.75)
        await eventually(lambda: script.count("k") == 2 and q.in_flight == 0, what="the terminal failure")
        assert q.deadline("k") is None
        assert q.retries("k") == 0
        clock.advance(3600)
        await asyncio.sleep(0.02)
        assert script.count("k") == 2
        q.add("k")  # the spec changed: an event brings it back
        script.steps["k"].append(returns(None))
        await eventually(lambda: script.count("k") == 3, what="the run after the change")
    assert errors(unique) == 2


async def test_a_worker_survives_an_unexpected_exception(unique: str) -> None:
    clock = ManualClock()
    script = Script({"boom": [raises(RuntimeError("bug")), returns(None)], "next": [returns(None)]})
    controller: Workers[str] = Workers(unique, script, concurrent=1, queue=WorkQueue(unique, clock=clock))
    q = controller.queue
    async with running(controller):
        q.add("boom")
        q.add("next")
        await eventually(lambda: script.calls == ["boom", "next"], what="the key after the crash")
        assert q.deadline("boom") == 0.75  # retried with backoff
        clock.advance(0.75)
        await eventually(lambda: script.calls == ["boom", "next", "boom"], what="the retry")
    assert errors(unique) == 1
    assert total(unique, "success") == 2


class WorkerKiller(BaseException):
    """Escapes the per-reconcile guard (not an Exception), as only a bug in the loop itself would."""


async def test_a_dead_worker_is_restarted(unique: str) -> None:
    script = Script({"x": [raises(WorkerKiller())], "y": [returns(None)]})
    controller: Workers[str] = Workers(unique, script, concurrent=1, restart_delay=0.01)
    q = controller.queue
    async with running(controller):
        q.add("x")
        await eventually(lambda: script.calls == ["x"] and q.in_flight == 0, what="the crash")
        q.add("y")
        await eventually(lambda: script.calls == ["x", "y"], what="the restarted worker")


# -- stopping


async def test_stop_lets_running_reconciles_finish_and_takes_no_new_keys(unique: str) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    finished: list[str] = []

    async def reconcile(key: str) -> Result:
        started.set()
        await release.wait()
        finished.append(key)
        return 60.0

    controller: Workers[str] = Workers(unique, reconcile, concurrent=2, stop_timeout=10)
    task = asyncio.create_task(controller.run())
    controller.queue.add("slow")
    await asyncio.wait_for(started.wait(), 10)
    controller.stop()
    await asyncio.sleep(0.02)
    assert not task.done()  # waiting for the reconcile in flight
    controller.queue.add("new")
    release.set()
    await asyncio.wait_for(task, 10)
    assert finished == ["slow"]
    assert controller.active == 0


def stuck_reconcile() -> tuple[Callable[[str], Awaitable[Result]], asyncio.Event, asyncio.Event]:
    """A reconcile that never returns: (reconcile, started, cancelled)."""
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def reconcile(key: str) -> Result:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return None

    return reconcile, started, cancelled


async def test_stop_cancels_reconciles_that_outlast_the_timeout(unique: str) -> None:
    reconcile, started, cancelled = stuck_reconcile()
    controller: Workers[str] = Workers(unique, reconcile, stop_timeout=0.05)
    task = asyncio.create_task(controller.run())
    controller.queue.add("stuck")
    await asyncio.wait_for(started.wait(), 10)
    controller.stop()
    await asyncio.wait_for(task, 10)
    assert cancelled.is_set()
    assert controller.queue.in_flight == 0


async def test_cancelling_run_cancels_the_workers(unique: str) -> None:
    reconcile, started, cancelled = stuck_reconcile()
    controller: Workers[str] = Workers(unique, reconcile, stop_timeout=60)
    task = asyncio.create_task(controller.run())
    controller.queue.add("stuck")
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert cancelled.is_set()


async def test_stop_before_any_work_and_no_second_run(unique: str) -> None:
    controller: Workers[str] = Workers(unique, Script({}))
    controller.stop()
    await asyncio.wait_for(controller.run(), 10)
    with pytest.raises(RuntimeError, match="already run"):
        await controller.run()


async def test_stopping_through_the_queue(unique: str) -> None:
    controller: Workers[str] = Workers(unique, Script({}))
    task = asyncio.create_task(controller.run())
    await asyncio.sleep(0.01)
    controller.queue.shutdown()
    await asyncio.wait_for(task, 10)


def test_concurrent_must_be_positive() -> None:
    with pytest.raises(ValueError, match="concurrent"):
        Workers("x", Script({}), concurrent=0)


async def test_keys_are_spread_over_workers_per_key_in_order(unique: str) -> None:
    # Several keys, each hammered: per key never more than one at a time, across keys in parallel.
    per_key: defaultdict[str, int] = defaultdict(int)
    worst = 0
    most = 0
    live = 0

    async def reconcile(key: str) -> Result:
        nonlocal worst, most, live
        per_key[key] += 1
        live += 1
        worst = max(worst, per_key[key])
        most = max(most, live)
        try:
            await asyncio.sleep(0.002)
        finally:
            per_key[key] -= 1
            live -= 1
        return None

    controller: Workers[str] = Workers(unique, reconcile, concurrent=4)
    async with running(controller):
        for round_ in range(30):
            for i in range(6):
                controller.queue.add(f"k{i}")
            await asyncio.sleep(0.001 * (round_ % 3))
        await eventually(lambda: controller.queue.depth == 0 and live == 0, what="the queue to drain")
    assert worst == 1
    assert most > 1
