"""The ``notification-controller`` console script: Alert/Provider caches, the hot and retry lanes, Receivers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast

import aiohttp

from gitops_mesh import __version__
from gitops_mesh.backoff import Backoff
from gitops_mesh.bus.consumer import Consumer
from gitops_mesh.bus.topics import Topic, Topics, ensure_topics
from gitops_mesh.errors import BusUnavailable
from gitops_mesh.kube.secrets import secret_data
from gitops_mesh.observability.health import start_server
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.process import ProcessContext, kind_runner, platform, run, run_runners, stop_runners
from gitops_mesh.settings import Settings, parse_as
from gitops_mesh.watches import WATCH_SELECTOR, data_changed
from notification_controller.dedupe import RateLimiter
from notification_controller.delivery import DeliverySettings, Dispatcher
from notification_controller.fanout import SOURCE_KIND_INDEX, AlertSpecs, Fanout, source_kinds
from notification_controller.parking import Parking
from notification_controller.providers import PROVIDER_API_VERSION, PROVIDER_KIND
from notification_controller.providers.headers import HeadersCache
from notification_controller.receivers import (
    DEFAULT_MAX_BODY,
    SECRET_REF_INDEX,
    WEBHOOK_PATH_INDEX,
    ReceiverReconciler,
    ReceiverServer,
    receiver_paths,
    receiver_secrets,
)
from notification_controller.records import RETRY_TOPIC
from notification_controller.resolver import KubeReporter, KubeResolver, LabelCache, SecretCache
from notification_controller.sending import HttpSender
from notification_controller.status import (
    PROVIDER_SECRET_INDEX,
    AlertReconciler,
    ProviderReconciler,
    follow_providers,
    provider_secrets,
)

CONTROLLER = "notification-controller"
#: The topics whose events are notified about.
EVENT_TOPICS = (Topic.ARTIFACT_READY, Topic.APPLIED, Topic.FAILED, Topic.EVENTS)

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class NotificationSettings(Settings):
    rate_limit_interval: float = 300.0
    receiver_addr: str = ":9292"
    delivery_hold: float = 30.0
    delivery_retry_budget: float = 6 * 3600.0
    delivery_max_backoff: float = 300.0
    provider_concurrency: int = 4
    event_concurrency: int = 32
    offset_reset: str = "latest"
    #: The hot lane's consumer group; the retry lane's is ``<group>-retries``.
    consumer_group: str = CONTROLLER
    receiver_max_body: int = DEFAULT_MAX_BODY
    #: 0: off (Flux's behaviour); see notification_controller.replay.
    receiver_replay_window: float = 0.0


_HELP = {
    "rate_limit_interval": "the same object, message and revision is notified once per interval per Alert",
    "receiver_addr": "address the Receiver webhook server binds",
    "delivery_hold": "how long a delivery is retried while its event's offset waits, before the retry lane takes it",
    "delivery_retry_budget": "how long after its first failure a delivery is given up (dead-lettered)",
    "delivery_max_backoff": "the longest wait between two attempts of a delivery (Retry-After is capped to it)",
    "provider_concurrency": "requests in flight per Provider",
    "event_concurrency": "events handled at the same time (across partitions)",
    "offset_reset": "where a new consumer group starts: latest or earliest",
    "consumer_group": "the event consumers' group (one per installation); the retry lane uses <group>-retries",
    "receiver_max_body": "bytes a Receiver request body may have (larger ones are answered 413)",
    "receiver_replay_window": "generic-hmac Receivers: require X-Signature-Timestamp, signed with the body, "
    "within this window of now, each signature once (0: off, as Flux)",
}


def parse(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> NotificationSettings:
    settings: NotificationSettings = parse_as(NotificationSettings(), argv, prog=CONTROLLER, help=_HELP, env=env)
    if settings.offset_reset not in ("latest", "earliest"):
        raise SystemExit(f"--offset-reset must be latest or earliest, not {settings.offset_reset!r}")
    return settings


def delivery_settings(s: NotificationSettings) -> DeliverySettings:
    return DeliverySettings(
        hold=s.delivery_hold,
        budget=s.delivery_retry_budget,
        max_backoff=s.delivery_max_backoff,
        provider_concurrency=s.provider_concurrency,
        stale_after=max(900.0, 3 * s.delivery_max_backoff),
    )


async def _ensure_retry_topic(bootstrap: str, names: list[str]) -> None:
    """Create the retry topic (the stack creates the shared ones); Kafka being down only delays it."""
    pacing = Backoff(initial=1.0, cap=30.0, factor=2.0, jitter=(0.0, 0.0))
    while True:
        try:
            await ensure_topics(bootstrap, names)
            return
        except BusUnavailable as e:
            delay = pacing.next()
            log.warning("cannot create the retry topic yet", error=str(e), retry_in=delay)
        await asyncio.sleep(delay)


@contextlib.asynccontextmanager
async def setup(ctx: ProcessContext[NotificationSettings]) -> AsyncIterator[None]:
    s = ctx.settings
    topics = Topics(s.topic_prefix)
    retry_topic = f"{s.topic_prefix}{RETRY_TOPIC}"
    namespace = None if s.watch_all_namespaces else (s.watch_namespace or None)
    connector = aiohttp.TCPConnector(limit=256)
    async with (
        platform(ctx) as p,
        aiohttp.ClientSession(connector=connector, headers={"User-Agent": f"gitops-mesh/{__version__}"}) as http,
    ):
        # Deliveries and the Alerts' check resolve any Provider (as before sharding); the Provider runner
        # reconciles this instance's shard (--watch-label-selector): the same informer when unsharded.
        providers = p.caches.informer(PROVIDER_API_VERSION, PROVIDER_KIND)
        # Flux's v1beta3 Alerts and Providers carry no finalizer.
        alert_runner = kind_runner(ctx, p, AlertReconciler(providers), finalizer=None)
        # One parse of each Secret's headers for the Providers' Ready and every delivery.
        headers = HeadersCache()
        # The Secret as it is now (not the deliveries' short cache): a labelled Secret's change was just seen.
        provider_runner = kind_runner(
            ctx, p, ProviderReconciler(functools.partial(secret_data, p.kube), headers), finalizer=None
        )
        follow_providers(alert_runner, providers)
        watched_secrets = p.caches.informer("v1", "Secret", label_selector=WATCH_SELECTOR)
        # A labelled Secret's change re-checks its Providers at once (bad headers fixed, or broken).
        provider_runner.watches.follow(
            watched_secrets, index=PROVIDER_SECRET_INDEX, refs=provider_secrets, when=data_changed
        )
        alerts = alert_runner.informer
        alerts.add_index(SOURCE_KIND_INDEX, source_kinds)
        labels = LabelCache(p.kube, namespace=namespace)
        parking = Parking(
            producer=p.producer,
            retry_topic=retry_topic,
            dlq_topic=topics.name(Topic.DLQ),
            group=s.consumer_group,
        )
        reporter = KubeReporter(alerts=alerts, recorder=p.recorder)
        secrets = SecretCache(p.kube)
        dispatcher = Dispatcher(
            resolver=KubeResolver(alerts=alerts, providers=providers, secrets=secrets, headers=headers),
            sender=HttpSender(http),
            parking=parking,
            reporter=reporter,
            settings=delivery_settings(s),
        )
        fanout = Fanout(
            alerts=AlertSpecs(alerts),
            labels=labels,
            limiter=RateLimiter(s.rate_limit_interval),
            dispatcher=dispatcher,
            reporter=reporter,
            no_cross_namespace_refs=s.no_cross_namespace_refs,
        )
        offset_reset = cast(Literal["latest", "earliest"], s.offset_reset)
        events = Consumer(
            bootstrap=s.kafka_bootstrap,
            group_id=s.consumer_group,
            topics=list(EVENT_TOPICS),
            names=topics,
            handler=fanout.handle,
            producer=p.producer,
            client_id=CONTROLLER,
            max_concurrency=s.event_concurrency,
            offset_reset=offset_reset,
        )
        retries = Consumer(
            bootstrap=s.kafka_bootstrap,
            group_id=f"{s.consumer_group}-retries",
            topics=[retry_topic],
            names=topics,
            handler=dispatcher.retry,
            producer=p.producer,
            client_id=f"{CONTROLLER}-retries",
            max_concurrency=s.event_concurrency,
            # The retry lane must see every hand-over, including those made before it first joined.
            offset_reset="earliest",
        )
        receiver_runner = kind_runner(ctx, p, ReceiverReconciler(p.kube))
        receiver_runner.informer.add_index(WEBHOOK_PATH_INDEX, receiver_paths)
        # A token Secret labelled reconcile.fluxcd.io/watch=Enabled readies its Receivers when it appears
        # or changes; an unlabelled one is found by the retry.
        receiver_runner.watches.follow(
            watched_secrets,
            index=SECRET_REF_INDEX,
            refs=receiver_secrets,
            when=data_changed,
        )
        runners = [alert_runner, provider_runner, receiver_runner]
        server = ReceiverServer(
            kube=p.kube,
            receivers=receiver_runner.informer,
            secrets=secrets,
            publisher=p.publisher,
            instance=ctx.instance,
            controller=CONTROLLER,
            no_cross_namespace_refs=s.no_cross_namespace_refs,
            max_body=s.receiver_max_body,
            replay_window=s.receiver_replay_window,
        )
        hooks, hooks_port = await start_server(server.app(), s.receiver_addr)
        log.info("serving receivers", port=hooks_port)
        ensure: asyncio.Task[None] | None = None
        try:
            run_runners(ctx, p, runners)
            # Matching against a cache still filling would drop events: consume only once all are synced.
            await p.caches.wait_synced()
            ensure = asyncio.create_task(_ensure_retry_topic(s.kafka_bootstrap, [retry_topic]), name="retry-topic")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(ensure), 10)
            for consumer in (events, retries):
                await consumer.start()
            ctx.checks.ready["events"] = events.ready
            ctx.checks.ready["retries"] = retries.ready
            log.info("notification-controller started", retry_topic=retry_topic, hold=s.delivery_hold)
            yield
        finally:
            await hooks.cleanup()
            stop_runners(runners)
            await events.stop()
            await retries.stop()
            if ensure is not None:
                ensure.cancel()
            await labels.stop()


def main(argv: Sequence[str] | None = None) -> int:
    return run(CONTROLLER, parse(argv), setup)


if __name__ == "__main__":
    sys.exit(main())
