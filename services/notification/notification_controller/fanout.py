"""The hot lane's handler: one event → the Alerts it matches → rate limiting → deliveries, settled."""

from __future__ import annotations

from collections.abc import Iterable

from gitops_mesh.bus.consumer import RecordMeta
from gitops_mesh.bus.envelope import Event
from gitops_mesh.kube.informer import Informer
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.observability import metrics
from gitops_mesh.observability.logging import get_logger
from notification_controller.dedupe import RateLimiter, dedupe_key
from notification_controller.delivery import Dispatcher
from notification_controller.matching import AlertSpec, Match, alert_from_object, match_alert, needs_labels
from notification_controller.records import Delivery
from notification_controller.resolver import KubeReporter, LabelCache

log = get_logger(__name__)

#: The Alert informer's index: the kinds an Alert's event sources name.
SOURCE_KIND_INDEX = "source-kind"


def source_kinds(obj: KubeObject) -> Iterable[str]:
    return {str(s.get("kind")) for s in (obj.get("spec") or {}).get("eventSources") or () if isinstance(s, dict)}


class AlertSpecs:
    """Parsed Alerts (regexes compiled once per resourceVersion)."""

    def __init__(self, alerts: Informer) -> None:
        self._alerts = alerts
        self._parsed: dict[tuple[str, str], AlertSpec] = {}

    def for_kind(self, kind: str) -> list[AlertSpec]:
        out = []
        for obj in self._alerts.by_index(SOURCE_KIND_INDEX, kind):
            meta = obj.get("metadata") or {}
            version = (str(meta.get("uid") or ""), str(meta.get("resourceVersion") or ""))
            spec = self._parsed.get(version)
            if spec is None:
                spec = self._parsed[version] = alert_from_object(obj)
                if len(self._parsed) > 10_000:
                    self._parsed.clear()
            out.append(spec)
        return out


class Fanout:
    """``handle(event, meta)`` for the Consumer of artifact-ready, applied, failed and events."""

    def __init__(
        self,
        *,
        alerts: AlertSpecs,
        labels: LabelCache,
        limiter: RateLimiter,
        dispatcher: Dispatcher,
        reporter: KubeReporter,
        no_cross_namespace_refs: bool = False,
    ) -> None:
        self.alerts = alerts
        self.labels = labels
        self.limiter = limiter
        self.dispatcher = dispatcher
        self.reporter = reporter
        self.no_cross_namespace_refs = no_cross_namespace_refs

    async def handle(self, event: Event, meta: RecordMeta) -> None:
        ref = event.involved_object
        candidates = self.alerts.for_kind(ref.kind)
        labels = None
        if any(needs_labels(a, event) for a in candidates):
            labels = await self.labels.labels(ref)
        deliveries: list[Delivery] = []
        matched = False
        for alert in candidates:
            verdict = match_alert(alert, event, labels=labels, no_cross_namespace_refs=self.no_cross_namespace_refs)
            if verdict is Match.CROSS_NAMESPACE:
                message = (
                    f"alert '{alert.key}' can't process event from '{event.subject}', "
                    "cross-namespace references have been blocked"
                )
                log.error(
                    "discarding event, access denied to cross-namespace sources", alert=alert.key, event_id=event.id
                )
                await self.reporter.warn(alert.key, "NotificationDispatchFailed", message)
                continue
            if verdict is not Match.MATCHED:
                continue
            matched = True
            provider = f"{alert.namespace}/{alert.provider}"
            if not self.limiter.allow(dedupe_key(event, alert=alert.key, provider=provider), event.id):
                metrics.notification_deliveries.labels(type="any", result="rate_limited").inc()
                log.debug("repeat within the rate-limit interval; dropped", alert=alert.key, event_id=event.id)
                continue
            deliveries.append(Delivery(event=event, alert=alert.key, provider=provider))
        metrics.notification_events.labels(result="matched" if matched else "unmatched").inc()
        if not deliveries:
            log.debug(
                "no alert for the event", kind=ref.kind, namespace=ref.namespace, name=ref.name, event_id=event.id
            )
            return
        # The happy path is counted by metrics; one info line per event would cost a tenth of the CPU.
        log.debug(
            "dispatching event",
            event_id=event.id,
            kind=ref.kind,
            namespace=ref.namespace,
            name=ref.name,
            alerts=[d.alert for d in deliveries],
        )
        await self.dispatcher.deliver(deliveries, source_topic=meta.topic)
