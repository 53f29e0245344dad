"""The controller loop: ``--concurrent`` supervised workers take keys off the work queue and reconcile them.

A reconcile is ``async (key) -> Result``: it returns the seconds until the next periodic run (or None
for "only on events"), or raises one of our errors. :func:`requeue_for` maps that outcome to what the
queue does next, as controller-runtime does:

==============================  ===========================================  ================
outcome                         queue                                        result label
==============================  ===========================================  ================
returned None                   forget backoff                               success
returned ``s > 0``              forget backoff, ``add_after(s)``             requeue_after
returned ``0``                  ``add_rate_limited`` (guards a hot loop)     requeue
DependencyNotReady              forget, ``add_after(retry_after or           requeue_after
                                --requeue-dependency)``
TransientError                  ``add_after(retry_after)``, else             error
                                ``add_rate_limited``
TerminalError                   forget, no requeue (the reconcile recorded   error
                                Stalled)
ApiError (404, 403, 422 …)      ``add_rate_limited``: neutral, so retried    error
any other exception             logged with its traceback,                   error
                                ``add_rate_limited``
==============================  ===========================================  ================

One key is never reconciled twice at once (the queue's in-flight rule), and waits never hold a worker:
a dependency wait is a timer, not a sleep.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from gitops_mesh.errors import DependencyNotReady, GitopsMeshError, TerminalError, TransientError
from gitops_mesh.observability import metrics
from gitops_mesh.observability.logging import get_logger, log_context
from gitops_mesh.reconcile.queue import QueueShutDown, WorkQueue

K = TypeVar("K", bound=Hashable)

#: Seconds until the next periodic reconcile, or None.
Result = float | None
Reconcile = Callable[[K], Awaitable[Result]]

log = get_logger("reconcile")


@dataclass(frozen=True, slots=True)
class Requeue:
    """What the queue does after one reconcile."""

    result: str  # the controller_runtime_reconcile_total label
    forget: bool = False
    after: float | None = None
    rate_limited: bool = False

    @property
    def is_error(self) -> bool:
        return self.result == "error"


def requeue_for(result: Result, error: BaseException | None = None, *, requeue_dependency: float) -> Requeue:
    """The queue action for a reconcile that returned ``result`` or raised ``error`` (see the module table)."""
    if error is None:
        if result is None:
            return Requeue("success", forget=True)
        if result > 0:
            return Requeue("requeue_after", forget=True, after=result)
        return Requeue("requeue", rate_limited=True)
    if isinstance(error, DependencyNotReady):
        after = error.retry_after if error.retry_after is not None else requeue_dependency
        return Requeue("requeue_after", forget=True, after=after)
    if isinstance(error, TransientError):
        if error.retry_after is not None:
            return Requeue("error", after=error.retry_after)
        return Requeue("error", rate_limited=True)
    if isinstance(error, TerminalError):
        return Requeue("error", forget=True)
    return Requeue("error", rate_limited=True)


class Workers(Generic[K]):
    """Runs ``reconcile`` for the keys added to :attr:`queue`, ``concurrent`` at a time, until :meth:`stop`."""

    def __init__(
        self,
        name: str,
        reconcile: Reconcile[K],
        *,
        concurrent: int = 4,
        requeue_dependency: float = 30.0,
        queue: WorkQueue[K] | None = None,
        stop_timeout: float = 30.0,
        restart_delay: float = 1.0,
    ) -> None:
        if concurrent < 1:
            raise ValueError(f"concurrent must be >= 1, got {concurrent}")
        self.name = name
        self.concurrent = concurrent
        self.requeue_dependency = requeue_dependency
        self.queue: WorkQueue[K] = queue if queue is not None else WorkQueue(name)
        self.stop_timeout = stop_timeout
        self.restart_delay = restart_delay
        self._reconcile = reconcile
        self._stop_requested = asyncio.Event()
        self._started = False
        self._active = 0
        self._m_total = {
            label: metrics.reconcile_total.labels(controller=name, result=label)
            for label in ("success", "error", "requeue", "requeue_after")
        }
        self._m_errors = metrics.reconcile_errors.labels(controller=name)
        self._m_active = metrics.active_workers.labels(controller=name)

    @property
    def active(self) -> int:
        """Reconciles running right now."""
        return self._active

    def stop(self) -> None:
        """Ask :meth:`run` to stop: no new keys are taken; running reconciles get ``stop_timeout`` to finish."""
        self._stop_requested.set()

    async def run(self) -> None:
        """Work until :meth:`stop` (or the queue is shut down); cancelling this task stops at once."""
        if self._started:
            raise RuntimeError(f"workers {self.name} have already run")
        self._started = True
        metrics.max_concurrent.labels(controller=self.name).set(self.concurrent)
        self._m_active.set(0)
        workers: dict[asyncio.Task[None], int] = {self._spawn(i): i for i in range(self.concurrent)}
        stop_wait = asyncio.create_task(self._wait_for_stop(), name=f"{self.name}/stop-wait")
        try:
            while not self._stop_requested.is_set() and not self.queue.shutting_down:
                finished, _ = await asyncio.wait({stop_wait, *workers}, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    if task is stop_wait or self.queue.shutting_down:
                        continue
                    # Reconcile errors never get here; a worker dying is a bug in the loop itself. Keep the
                    # controller serving, with a pause so a persistent fault cannot spin.
                    index = workers.pop(task)
                    error = None if task.cancelled() else task.exception()
                    log.error(
                        "worker died; restarting it", controller=self.name, worker=task.get_name(), exc_info=error
                    )
                    workers[self._spawn(index, delay=self.restart_delay)] = index
        except asyncio.CancelledError:
            await self._shutdown(workers, timeout=0)
            raise
        finally:
            stop_wait.cancel()
        await self._shutdown(workers, timeout=self.stop_timeout)

    async def _wait_for_stop(self) -> None:
        await self._stop_requested.wait()

    def _spawn(self, index: int, *, delay: float = 0.0) -> asyncio.Task[None]:
        return asyncio.create_task(self._work(delay), name=f"{self.name}/worker-{index}")

    async def _shutdown(self, workers: dict[asyncio.Task[None], int], *, timeout: float) -> None:
        self.queue.shutdown()
        tasks = set(workers)
        if not tasks:
            return
        try:
            if timeout > 0:
                _, late = await asyncio.wait(tasks, timeout=timeout)
                if late:
                    log.warning("stop timeout; cancelling running reconciles", controller=self.name, running=len(late))
        finally:
            # Also reached when run() is cancelled mid-drain: no worker may outlive the controller.
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            for task in tasks:
                if not task.cancelled() and (error := task.exception()) is not None:
                    log.error(
                        "worker died while stopping", controller=self.name, worker=task.get_name(), exc_info=error
                    )

    async def _work(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        while not self._stop_requested.is_set():
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            try:
                await self._process(key)
            finally:
                self.queue.done(key)

    async def _process(self, key: K) -> None:
        with log_context(controller=self.name, key=str(key), reconcile_id=str(uuid.uuid4())):
            loop = asyncio.get_running_loop()
            started = loop.time()
            self._active += 1
            self._m_active.inc()
            try:
                try:
                    result = await self._reconcile(key)
                except asyncio.CancelledError:
                    raise
                except GitopsMeshError as e:
                    action = requeue_for(None, e, requeue_dependency=self.requeue_dependency)
                    self._log_failure(e, self._apply(key, action), loop.time() - started)
                except Exception as e:  # the worker's top: one reconcile's bug must not take the worker down
                    action = requeue_for(None, e, requeue_dependency=self.requeue_dependency)
                    retry_in = self._apply(key, action)
                    log.exception(
                        "reconcile raised an unexpected error", retry_in=retry_in, duration=loop.time() - started
                    )
                else:
                    action = requeue_for(result, requeue_dependency=self.requeue_dependency)
                    retry_in = self._apply(key, action)
                    log.debug("reconcile succeeded", requeue_in=retry_in, duration=loop.time() - started)
            finally:
                self._active -= 1
                self._m_active.dec()

    def _apply(self, key: K, action: Requeue) -> float | None:
        """Count the outcome and requeue ``key``; returns the delay before its next run, if any."""
        self._m_total[action.result].inc()
        if action.is_error:
            self._m_errors.inc()
        if action.forget:
            self.queue.forget(key)
        if action.rate_limited:
            return self.queue.add_rate_limited(key)
        if action.after is not None:
            self.queue.add_after(key, action.after)
        return action.after

    def _log_failure(self, error: GitopsMeshError, retry_in: float | None, duration: float) -> None:
        fields = {"error": str(error), "reason": error.reason, "error_type": type(error).__name__, "duration": duration}
        if isinstance(error, DependencyNotReady):
            log.info("dependencies not ready; waiting", retry_in=retry_in, **fields)
        elif isinstance(error, TerminalError):
            log.error("reconcile failed terminally; no retry until the object changes", **fields)
        else:
            log.warning("reconcile failed; retrying", retry_in=retry_in, **fields)
