"""gitops_mesh.stoppable: a Stop says when to give up, in_thread stops its thread when its caller is cancelled."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from gitops_mesh.artifacts.archive import PackStopped, Stop
from gitops_mesh.artifacts.errors import StorageError
from gitops_mesh.stoppable import Stop as BareStop
from gitops_mesh.stoppable import Stopped, in_thread


def test_a_stop_raises_once_cancelled_and_names_the_work() -> None:
    stop = BareStop(what="substitution")
    stop.check()  # neither cancelled nor timed out: nothing happens
    stop.cancel()
    with pytest.raises(Stopped, match=r"^substitution was cancelled$") as caught:
        stop.check()
    assert caught.value.timed_out is False


def test_a_stop_raises_once_its_deadline_passed() -> None:
    stop = BareStop(0.05, what="the walk")
    stop.check()
    time.sleep(0.06)
    with pytest.raises(Stopped, match=r"^the walk timed out after 0\.05s$") as caught:
        stop.check()
    assert caught.value.timed_out is True


def test_a_shared_event_cancels_every_stop_made_with_it() -> None:
    cancelled = threading.Event()
    first, second = BareStop(cancelled=cancelled), BareStop(cancelled=cancelled)
    first.cancel()
    with pytest.raises(Stopped):
        second.check()


def test_the_pack_stop_raises_an_error_of_both_families() -> None:
    stop = Stop()
    stop.cancel()
    with pytest.raises(PackStopped, match=r"^archiving was cancelled$") as caught:
        stop.check()
    assert isinstance(caught.value, StorageError)
    assert isinstance(caught.value, Stopped)
    assert caught.value.reason == "StorageOperationFailed"


async def test_in_thread_returns_what_the_work_returns() -> None:
    assert await in_thread(lambda: 41 + 1, BareStop()) == 42


async def test_cancelling_in_thread_ends_the_thread_before_the_cancellation_propagates() -> None:
    started, ended = threading.Event(), threading.Event()
    units = 0

    def work() -> None:
        nonlocal units
        started.set()
        try:
            while True:  # endless unless stopped: each unit is short, the check comes between units
                stop.check()
                units += 1
                time.sleep(0.001)
        finally:
            ended.set()

    stop = BareStop()
    task = asyncio.ensure_future(in_thread(work, stop))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended.is_set(), "the thread was still running when the cancelled call returned"
    assert units > 0
