"""Blocking work in a worker thread that a timeout or a cancelled caller can actually stop.

A Python thread cannot be killed, so work on tenant input that must run in one (packing a tree through
ignore rules, postBuild substitution) is cut into units that are each bounded — linear-time matching on
capped input — and checks a :class:`Stop` between two units. :func:`in_thread` runs such work and, when
its awaiting task is cancelled, tells it to stop and waits for the thread to end, so no thread outlives the
reconcile that started it. Work that cannot be cut like that belongs in a subprocess (:mod:`.commands`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Stopped(Exception):
    """The work gave up between two units: its deadline passed (``timed_out``) or its caller was cancelled."""

    # timed_out has a default so that a subclass that is also another error family's member can run that
    # family's __init__ first: the cooperative chain reaches this one with the message alone.
    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class Stop:
    """When work running in a worker thread must give up: a deadline, and a flag the awaiting task sets.

    ``what`` names the work in the messages ("archiving timed out after 60s"); ``error`` is the
    :class:`Stopped` subclass :meth:`check` raises, so a caller's own error family can carry it.
    """

    def __init__(
        self,
        timeout: float | None = None,
        *,
        cancelled: threading.Event | None = None,
        what: str = "the work",
        error: type[Stopped] = Stopped,
    ) -> None:
        self.timeout = timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout
        #: set by whoever may cancel the work (a caller can pass its own, shared with other work)
        self._cancelled = cancelled if cancelled is not None else threading.Event()
        self._what = what
        self._error = error

    def cancel(self) -> None:
        """Ask the work to stop at its next check (thread-safe)."""
        self._cancelled.set()

    def check(self) -> None:
        """Raise the Stopped error when the work must stop."""
        if self._cancelled.is_set():
            raise self._error(f"{self._what} was cancelled", timed_out=False)
        if self._deadline is not None and time.monotonic() >= self._deadline:
            raise self._error(f"{self._what} timed out after {self.timeout:g}s", timed_out=True)


async def in_thread(work: Callable[[], T], stop: Stop) -> T:
    """Run ``work`` (which checks ``stop``) in a worker thread; cancelling this call stops it at its next check.

    On cancellation the thread is told to stop and waited for — one unit of work — before CancelledError
    propagates; whatever it raised on the way out (its Stopped, a partial-file cleanup error) is dropped.
    """
    running = asyncio.ensure_future(asyncio.to_thread(work))
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        stop.cancel()
        with contextlib.suppress(BaseException):
            await running
        raise
