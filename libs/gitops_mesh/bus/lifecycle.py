"""How the bus's background work lives: backoff, supervised tasks, and closing aiokafka clients without hanging."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaError

from gitops_mesh.errors import BusUnavailable
from gitops_mesh.observability.logging import get_logger

log = get_logger("gitops_mesh.bus")

#: Errors meaning "Kafka is not there (yet)"; anything else from aiokafka is a bug or a misconfiguration.
UNREACHABLE = (KafkaError, OSError, TimeoutError)


@dataclass
class Backoff:
    """Exponential backoff with jitter, so many clients do not reconnect in lock-step after an outage."""

    initial: float = 0.2
    maximum: float = 10.0
    factor: float = 2.0
    _current: float = field(default=0.0, init=False)

    def next(self) -> float:
        self._current = self.initial if self._current == 0.0 else min(self.maximum, self._current * self.factor)
        return self._current * random.uniform(0.8, 1.0)

    def reset(self) -> None:
        self._current = 0.0


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


async def stop_producer(producer: Any, *, timeout: float = 5.0) -> None:
    """Stop an AIOKafkaProducer within ``timeout``, failing what it still holds.

    aiokafka's ``stop()`` first waits for every batch to be delivered, and an idempotent producer retries
    forever while the broker is down, so a plain ``stop()`` can hang. Failing the remaining batches first
    (aiokafka offers no public abort) makes ``stop()`` return; callers account for those messages
    themselves, since they still hold them.
    """
    accumulator = getattr(producer, "_message_accumulator", None)
    if accumulator is not None:
        accumulator.fail_all(BusUnavailable("producer stopped before Kafka acknowledged"))
    try:
        await asyncio.wait_for(producer.stop(), timeout)
    except UNREACHABLE as e:
        log.warning("kafka producer did not stop cleanly", error=str(e))


async def stop_client(client: Any, *, timeout: float = 10.0) -> None:
    """Stop an aiokafka consumer or admin client; a broker that is gone must not hang our shutdown."""
    try:
        await asyncio.wait_for(client.stop(), timeout)
    except UNREACHABLE as e:
        log.warning("kafka client did not stop cleanly", error=str(e))


def describe(e: BaseException) -> str:
    """``Type: message`` for logs and readiness reasons (many aiokafka errors have an empty message)."""
    text, name = str(e), type(e).__name__
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"
