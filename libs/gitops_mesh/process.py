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
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Generic

from gitops_mesh.bus.consumer import Consumer, Handler, RecordMeta
from gitops_mesh.bus.envelope import Event
from gitops_mesh.bus.kafka import Producer
from gitops_mesh.bus.producer import Publisher
from gitops_mesh.bus.topics import Topic, Topics
from gitops_mesh.kube.caches import Caches
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.events import EventRecorder
from gitops_mesh.kube.informer import Informer
from gitops_mesh.kube.leases import LeaderElector
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.observability.health import HealthChecks, make_app, start_server
from gitops_mesh.observability.logging import configure_logging, get_logger
from gitops_mesh.reconcile.guards import FINALIZER
from gitops_mesh.runner import KindRunner, Reconciler, backoff_only
from gitops_mesh.settings import SettingsT
from gitops_mesh.watches import WATCH_SELECTOR, data_changed

log = get_logger("process")


@dataclass
class ProcessContext(Generic[SettingsT]):
    """What every part of a controller process shares: settings, health checks, the stop signal."""

    controller: str
    settings: SettingsT
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


#: A controller's ``setup``: typed by its own settings class, so ``ctx.settings`` needs no narrowing.
Setup = Callable[[ProcessContext[SettingsT]], AbstractAsyncContextManager[None]]


async def serve(controller: str, settings: SettingsT, setup: Setup[SettingsT]) -> int:
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


def run(controller: str, settings: SettingsT, setup: Setup[SettingsT]) -> int:
    """The console-script entry: configure logging, pick uvloop where installed, serve until stopped."""
    configure_logging(level=settings.log_level, controller=controller)
    try:
        import uvloop
    except ImportError:  # uvloop is optional outside the images
        return asyncio.run(serve(controller, settings, setup))
    with contextlib.suppress(KeyboardInterrupt):
        return uvloop.run(serve(controller, settings, setup))
    return 130


@dataclass
class Platform:
    """The clients every controller uses, opened and closed in one place."""

    kube: KubeClient
    #: The process's one Kafka producer: the publisher, consumers' dead letters and parking all send on it.
    producer: Producer
    publisher: Publisher
    recorder: EventRecorder
    #: The process's informers, one per watched kind: runners and reconcilers read these.
    caches: Caches


@contextlib.asynccontextmanager
async def platform(ctx: ProcessContext[Any]) -> AsyncIterator[Platform]:
    """Kube client, bus publisher and event recorder; holds the leader Lease first under --leader-elect.

    Losing the Lease stops the process (exit 1) as controller-runtime does: a new leader takes over, and
    a restarted process queues for the Lease again.
    """
    s = ctx.settings
    kube = await KubeClient.connect(s.kubeconfig or None)
    producer = Producer(bootstrap=s.kafka_bootstrap, client_id=ctx.controller)
    publisher = Publisher(producer=producer, topics=Topics(s.topic_prefix))
    elector: LeaderElector | None = None
    try:
        if s.leader_elect:
            namespace = s.leader_election_namespace or _own_namespace()
            elector = LeaderElector(
                kube,
                namespace,
                f"{ctx.controller}-leader-election",
                ctx.instance,
                on_stopped_leading=lambda: ctx.stop(exit_code=1),
            )
            elector.start()
            log.info("waiting for the leader lease", namespace=namespace)
            await elector.wait_for_leadership()
        await publisher.start()
        ctx.checks.ready["kafka"] = publisher.ready
        caches = Caches(kube, namespace=None if s.watch_all_namespaces else (s.watch_namespace or None))
        ctx.checks.ready["informers"] = caches.not_synced
        try:
            yield Platform(
                kube=kube,
                producer=producer,
                publisher=publisher,
                recorder=EventRecorder(kube, ctx.controller, ctx.instance),
                caches=caches,
            )
        finally:
            await caches.stop()
    finally:
        await publisher.close()
        await producer.close()
        if elector is not None:
            await elector.stop()
        await kube.close()


def _own_namespace() -> str:
    """The pod's namespace in-cluster, else flux-system (Flux's default install namespace)."""
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            return f.read().strip() or "flux-system"
    except OSError:
        return "flux-system"


def own_cache(ctx: ProcessContext[Any], p: Platform, api_version: str, kind: str) -> Informer:
    """The cache of a kind this process reconciles (``--watch-label-selector`` applies: Flux's sharding)."""
    return p.caches.informer(api_version, kind, label_selector=ctx.settings.watch_label_selector or None)


def kind_runner(
    ctx: ProcessContext[Any],
    p: Platform,
    reconciler: Reconciler,
    *,
    retry_interval: Callable[[KubeObject], float | None] = backoff_only,
    finalizer: str | None = FINALIZER,
) -> KindRunner:
    """A runner for ``reconciler`` configured from the shared flags (concurrency, sharding, namespace).

    ``finalizer=None`` for kinds that own nothing to clean up (Flux's v1beta3 Alerts and Providers).
    """
    s = ctx.settings
    return KindRunner(
        client=p.kube,
        reconciler=reconciler,
        informer=own_cache(ctx, p, reconciler.api_version, reconciler.kind),
        controller=ctx.controller,
        instance=ctx.instance,
        concurrent=s.concurrent,
        requeue_dependency=s.requeue_dependency,
        recorder=p.recorder,
        publisher=p.publisher,
        retry_interval=retry_interval,
        finalizer=finalizer,
    )


def run_runners(ctx: ProcessContext[Any], p: Platform, runners: list[KindRunner]) -> None:
    """Start the caches, then each runner's workers as supervised tasks (each waits for its cache)."""
    p.caches.start()
    for r in runners:
        ctx.spawn(r.run(), name=f"controller/{r.reconciler.kind}")


def stop_runners(runners: list[KindRunner]) -> None:
    """Stop taking work; the caches stop with the platform."""
    for r in runners:
        r.stop()


@contextlib.asynccontextmanager
async def run_with_bus(
    ctx: ProcessContext[Any],
    p: Platform,
    runners: list[KindRunner],
    *,
    topics: Sequence[Topic],
    handler: Handler | None = None,
    check: str = "bus-consumer",
) -> AsyncIterator[Consumer]:
    """Run ``runners`` with the bus waking them: a consumer of ``topics`` in the controller's group under
    the topic prefix (``Topics.group``), dead letters to the prefix's DLQ on the process's producer, its
    readiness as the /readyz check ``check``; ``handler`` defaults to :func:`on_bus_watches` over the runners.

    Kafka being away is no error here: the consumer joins in the background (``/readyz`` says so) and the
    informers wake everything meanwhile. On exit intake stops before the runners (graceful shutdown: stop
    intake, drain, commit), so nothing new is handed to a runner that has stopped taking work.
    """
    s = ctx.settings
    names = Topics(s.topic_prefix)
    consumer = Consumer(
        bootstrap=s.kafka_bootstrap,
        group_id=names.group(ctx.controller),
        topics=topics,
        names=names,
        dlq_topic=names.name(Topic.DLQ),
        handler=handler or on_bus_watches(runners),
        producer=p.producer,
        client_id=ctx.controller,
    )
    await consumer.start()
    ctx.checks.ready[check] = consumer.ready
    run_runners(ctx, p, runners)
    try:
        yield consumer
    finally:
        await consumer.stop()
        stop_runners(runners)


#: The runner index of the Secrets and ConfigMaps an object refers to (``Secret/<ns>/<name>``).
REFERENCES_INDEX = "references"


def follow_labelled_references(p: Platform, runner: KindRunner, refs: Callable[[KubeObject], Iterable[str]]) -> None:
    """Reconcile ``runner``'s objects at once when a Secret or ConfigMap they refer to (``refs``: values
    ``Secret/<ns>/<name>`` or ``ConfigMap/<ns>/<name>``) appears or changes — for those labelled
    ``reconcile.fluxcd.io/watch: Enabled``, as Flux does. Unlabelled ones are picked up by the retry."""
    for kind in ("Secret", "ConfigMap"):
        watched = p.caches.informer("v1", kind, label_selector=WATCH_SELECTOR)
        runner.watches.follow(watched, index=REFERENCES_INDEX, refs=refs, when=data_changed)


def on_bus_watches(runners: list[KindRunner]) -> Callable[[Event, RecordMeta], Awaitable[None]]:
    """A bus consumer handler that hands each event to every runner's watches."""

    async def handle(event: Event, _: RecordMeta) -> None:
        for r in runners:
            r.watches.on_bus(event)

    return handle
