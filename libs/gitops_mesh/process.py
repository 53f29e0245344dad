"""A controller process's life cycle: logging, the health/metrics server, signals, graceful shutdown.

Each console script builds its parts inside ``setup`` (an async context manager, aiohttp
``cleanup_ctx`` style: open on enter, close on exit) and calls :func:`run`; the process then lives until
SIGTERM/SIGINT, or until a part asks it to stop (``ProcessContext.stop``) after a fatal error.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from gitops_mesh.observability.health import HealthChecks, make_app, start_server
from gitops_mesh.observability.logging import configure_logging, get_logger
from gitops_mesh.settings import Settings

log = get_logger("process")


@dataclass
class ProcessContext:
    """What every part of a controller process shares: settings, health checks, the stop signal."""

    controller: str
    settings: Settings
    checks: HealthChecks = field(default_factory=HealthChecks)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    exit_code: int = 0
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    metrics_port: int = 0

    @property
    def instance(self) -> str:
        return self.settings.instance or socket.gethostname()

    def stop(self, *, exit_code: int = 0) -> None:
        self.exit_code = self.exit_code or exit_code
        self.stopping.set()

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str, fatal: bool = True) -> asyncio.Task[None]:
        """Run ``coro`` as a named, supervised task: a crash is logged and (when fatal) stops the process."""

        async def supervised() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:  # the top of a supervised task: log whatever escaped, then decide
                log.exception("task crashed", task=name)
                if fatal:
                    self.stop(exit_code=1)

        task = asyncio.create_task(supervised(), name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def cancel_tasks(self, timeout: float = 10.0) -> None:
        pending = list(self.tasks)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=timeout)


Setup = Callable[[ProcessContext], AbstractAsyncContextManager[None]]


async def serve(controller: str, settings: Settings, setup: Setup) -> int:
    """Serve /metrics, /healthz and /readyz, enter ``setup``, and wait for a stop; returns the exit code."""
    ctx = ProcessContext(controller=controller, settings=settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, ctx.stop)
    ctx.checks.live["event-loop"] = lambda: None
    runner, ctx.metrics_port = await start_server(make_app(ctx.checks), settings.metrics_addr)
    health_runner = None
    if settings.health_addr and settings.health_addr != settings.metrics_addr:
        health_runner, _ = await start_server(make_app(ctx.checks), settings.health_addr)
    log.info("starting", metrics_port=ctx.metrics_port)
    try:
        async with setup(ctx):
            await ctx.stopping.wait()
            log.info("stopping")
    finally:
        await ctx.cancel_tasks()
        if health_runner is not None:
            await health_runner.cleanup()
        await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped", exit_code=ctx.exit_code)
    return ctx.exit_code


def run(controller: str, settings: Settings, setup: Setup) -> int:
    """The console-script entry: configure logging, pick uvloop where installed, serve until stopped."""
    configure_logging(level=settings.log_level, controller=controller)
    try:
        import uvloop
    except ImportError:  # uvloop is optional outside the images
        return asyncio.run(serve(controller, settings, setup))
    with contextlib.suppress(KeyboardInterrupt):
        return uvloop.run(serve(controller, settings, setup))
    return 130
