"""How the bus's background work lives: its retry pacing, supervised tasks, waiting that a stop can cut short."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from gitops_mesh.backoff import Backoff
from gitops_mesh.observability.logging import get_logger

log = get_logger("gitops_mesh.bus")


def bus_backoff(cap: float) -> Backoff:
    """The bus's reconnect and retry pacing: 0.2 s doubling to ``cap``, each wait shortened by up to a fifth."""
    return Backoff(initial=0.2, cap=cap, factor=2.0, jitter=(-0.2, 0.0))


async def sleep_unless(stop: asyncio.Event, delay: float) -> bool:
    """Sleep ``delay`` seconds or until ``stop`` is set; True when stopped."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay)
    return stop.is_set()


def supervise(name: str, body: Callable[[], Coroutine[Any, Any, None]], *, backoff: Backoff) -> asyncio.Task[None]:
    """Run ``body`` in a named task; restart it with backoff when it crashes, until it returns or is cancelled."""

    async def run() -> None:
        while True:
            try:
                await body()
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # the supervised task's top: log, back off, restart
                log.exception("bus task crashed; restarting", task=name)
            await asyncio.sleep(backoff.next())

    return asyncio.create_task(run(), name=name)


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a task we own and wait for it to unwind.

    Its CancelledError is expected and swallowed; a cancellation of our own caller that arrives meanwhile
    is not. Comparing ``cancelling()`` before and after keeps cleanup code that already runs under a
    cancellation (a ``finally`` during shutdown) able to finish.
    """
    if task is None or task.done():
        return
    current = asyncio.current_task()
    before = current.cancelling() if current is not None else 0
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if current is not None and current.cancelling() > before:
            raise


def describe(e: BaseException) -> str:
    """``Type: message`` for logs and readiness reasons (many aiokafka errors have an empty message)."""
    text, name = str(e), type(e).__name__
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"
