"""fluxconfig-controller, status (I/O): keeps each FluxConfig's compliance current as its Flux objects change.

The decision is ``compliance.summarize``; this module finds out *when* to make it and writes the result.
Two roads lead here, both event-driven (no polling):

- the bus: an ``artifact-ready``, ``applied`` or ``failed`` event about a source, a Kustomization or a
  HelmRelease wakes the FluxConfigs it belongs to at once. When our cache still shows the object as it was
  before the event (its watch update is milliseconds behind), the object is read once and handed to the
  cache (``Informer.observe``), so the summary is made from what the event announced, not the old state;
- the informers: every change of a managed object's status wakes the same configs, so with Kafka away
  everything still converges, only through the watches.

A managed object is found from its FluxConfig by name (``compliance.observe``), and back by index: the
controller's labels on the source and Kustomizations, and the inventories of those Kustomizations for the
HelmReleases and Kustomizations they applied. Each config is summarized by one worker at a time
(``gitops_mesh.reconcile.workers``), so a burst of events costs one summary per config, not one per event.

The feed writes only the fields it owns — ``statuses``, ``complianceState``, ``sourceSyncedCommitId``,
``sourceUpdatedAt`` and ``statusUpdatedAt`` — in one merge patch, and only when one of the first four
changed (``statusUpdatedAt`` says when they last did, so a summary that finds nothing new writes nothing).
When the overall compliance changes to Compliant or Non-Compliant, after the patch succeeded, it says so
on the bus (``applied`` / ``failed`` about the FluxConfig, so Alerts route on it) and as a Kubernetes
Event. The previous state is the one in the status, so a restarted controller does not announce again.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from fluxconfig_controller.compliance import (
    HELM_API,
    SOURCE_KINDS,
    ComplianceState,
    ComplianceStatus,
    Ref,
    applied_refs,
    config_refs,
    observe,
    summarize,
)
from fluxconfig_controller.model import API_VERSION, KIND, KUSTOMIZE_API, SOURCE_API
from gitops_mesh.bus.consumer import Handler, RecordMeta
from gitops_mesh.bus.envelope import Event, EventKind, Severity
from gitops_mesh.bus.producer import Publisher
from gitops_mesh.bus.topics import Topic
from gitops_mesh.errors import NotFound
from gitops_mesh.kube.caches import Caches
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.events import EventRecorder
from gitops_mesh.kube.informer import ChangeType, Informer
from gitops_mesh.kube.objects import KubeObject, ObjectKey
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import Announcement
from gitops_mesh.reconcile.workers import Result, Workers
from gitops_mesh.runner import publish_announcement
from gitops_mesh.timestamps import rfc3339
from gitops_mesh.watches import applied_revision, artifact_revision

log = get_logger(__name__)

#: The topics the feed follows (the controller's consumer subscribes to these).
TOPICS: tuple[Topic, ...] = (Topic.ARTIFACT_READY, Topic.APPLIED, Topic.FAILED)
#: The event kinds it reacts to.
EVENTS = frozenset({EventKind.ARTIFACT_READY, EventKind.APPLIED, EventKind.FAILED})

#: Index names on the shared caches (other runners' indexes live beside them; these names are ours).
CONFIG_INDEX = "fluxconfig.status/config"
APPLIED_INDEX = "fluxconfig.status/applied"

#: The fields this feed owns in the FluxConfig's status; the core reconciler writes the others.
OWNED_FIELDS = ("complianceState", "statuses", "sourceSyncedCommitId", "sourceUpdatedAt", "statusUpdatedAt")

#: Announcing a change of compliance: the bus event kind, severity and reason for the state reached.
_ANNOUNCED: Mapping[ComplianceState, tuple[EventKind, Severity, str]] = {
    ComplianceState.COMPLIANT: (EventKind.APPLIED, Severity.INFO, "Compliant"),
    ComplianceState.NON_COMPLIANT: (EventKind.FAILED, Severity.ERROR, "NonCompliant"),
}


def _now() -> datetime:
    return datetime.now(UTC)


def status_change(before: Mapping[str, Any], summary: ComplianceStatus, now: datetime) -> dict[str, Any] | None:
    """The merge patch of the owned fields turning ``before`` into ``summary``, or None when nothing changed.

    An absent field and a None one are the same (a merge patch's None removes the field).
    """
    fields = summary.status_fields()
    patch = {k: v for k, v in fields.items() if before.get(k) != v}
    if not patch:
        return None
    patch["statusUpdatedAt"] = rfc3339(now)
    return patch


def announcement(before: Mapping[str, Any], summary: ComplianceStatus) -> Announcement | None:
    """The bus event for a change of overall compliance to Compliant or Non-Compliant, else None.

    A config its own controller refused is announced by that controller's runner (``failed`` with Flux's
    reason when Ready turns False); the feed does not say it a second time.
    """
    state = summary.compliance_state
    if before.get("complianceState") == state or state not in _ANNOUNCED or summary.refused:
        return None
    kind, severity, reason = _ANNOUNCED[state]
    if state is ComplianceState.COMPLIANT:
        ready = summary.counts.get(ComplianceState.COMPLIANT, 0)
        message = f"all {ready} managed objects are ready"
        if summary.source_synced_commit_id:
            message += f" at {summary.source_synced_commit_id}"
    else:
        message = summary.error_message or "a managed object is not ready"
    return Announcement(
        kind,
        reason,
        message,
        revision=summary.source_revision,
        severity=severity,
        metadata={"complianceState": str(state)},
    )


def status_changed(obj: KubeObject, old: KubeObject | None) -> bool:
    """A change that can move compliance: new, its status, its generation or its suspend flag."""
    if old is None:
        return True
    if obj.get("status") != old.get("status"):
        return True
    meta, old_meta = obj.get("metadata") or {}, old.get("metadata") or {}
    if meta.get("generation") != old_meta.get("generation"):
        return True
    return bool((obj.get("spec") or {}).get("suspend") != (old.get("spec") or {}).get("suspend"))


def behind(event: Event, cached: KubeObject) -> bool:
    """Whether our cache still shows ``cached`` as it was before ``event`` (its watch update not in yet)."""
    if event.kind == EventKind.ARTIFACT_READY:
        return bool(event.revision) and artifact_revision(cached) != event.revision
    if event.kind == EventKind.APPLIED:
        stale = bool(event.revision) and applied_revision(cached) != event.revision
        return stale or not c.is_ready(cached)
    if event.kind == EventKind.FAILED:
        return not c.is_false(cached, c.ConditionType.READY)
    return False


def _applied_index(kustomization: KubeObject) -> list[str]:
    """A config's Kustomization by the HelmReleases and Kustomizations its inventory lists."""
    if not config_refs(kustomization):
        return []
    return [ref.key for ref in applied_refs(kustomization)]


class StatusFeed:
    """Keeps the FluxConfigs' compliance current: start with :meth:`running` inside ``run_with_bus`` and
    pass :meth:`on_bus` (or :meth:`handler` around the runners' handler) as the bus consumer's handler.

    ``configs`` is the FluxConfig cache the controller's runner uses (its ``--watch-label-selector``
    applies); the Flux kinds come from the process's shared ``caches``. Informers and indexes are set up
    here, before the caches start.
    """

    def __init__(
        self,
        *,
        kube: KubeClient,
        configs: Informer,
        caches: Caches,
        publisher: Publisher,
        controller: str,
        instance: str,
        recorder: EventRecorder | None = None,
        concurrent: int = 2,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        if (configs.api_version, configs.kind) != (API_VERSION, KIND):
            raise ValueError(f"the status feed needs the FluxConfig cache, not {configs.kind}")
        self.kube = kube
        self.configs = configs
        self.publisher = publisher
        self.recorder = recorder
        self.controller = controller
        self.instance = instance
        self.clock = clock
        self.watched: dict[str, Informer] = {
            kind: caches.informer(SOURCE_API, kind) for kind in sorted(set(SOURCE_KINDS.values()))
        }
        self.watched["Kustomization"] = caches.informer(KUSTOMIZE_API, "Kustomization")
        self.watched["HelmRelease"] = caches.informer(HELM_API, "HelmRelease")
        for informer in self.watched.values():
            if CONFIG_INDEX not in informer.indexes:
                informer.add_index(CONFIG_INDEX, config_refs)
            informer.on_event(self._on_managed_change)
        kustomizations = self.watched["Kustomization"]
        if APPLIED_INDEX not in kustomizations.indexes:
            kustomizations.add_index(APPLIED_INDEX, _applied_index)
        configs.on_event(self._on_config_change)
        self.workers: Workers[ObjectKey] = Workers("fluxconfig-status", self._refresh, concurrent=concurrent)

    # ---- waking ------------------------------------------------------------------------------------------

    def enqueue(self, namespace: str, name: str) -> None:
        self.workers.queue.add((namespace, name))

    def _on_config_change(self, change: ChangeType, obj: KubeObject, old: KubeObject | None) -> None:
        if change == "DELETED":
            return
        # Our own status patches come back here too: the summary then finds nothing to change.
        meta = obj.get("metadata") or {}
        self.enqueue(str(meta.get("namespace") or ""), str(meta.get("name") or ""))

    def _on_managed_change(self, change: ChangeType, obj: KubeObject, old: KubeObject | None) -> None:
        if change == "DELETED" or status_changed(obj, old):
            self._wake_configs_of(obj)

    def _configs_of(self, obj: KubeObject) -> set[str]:
        """``FluxConfig/<ns>/<name>`` keys whose status lists ``obj``: its own labels, or an inventory."""
        keys = set(config_refs(obj))
        meta = obj.get("metadata") or {}
        ref = Ref(str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if ref.kind in ("HelmRelease", "Kustomization"):
            for ks in self.watched["Kustomization"].by_index(APPLIED_INDEX, ref.key):
                keys.update(config_refs(ks))
        return keys

    def _wake_configs_of(self, obj: KubeObject) -> None:
        for key in self._configs_of(obj):
            _, ns, name = key.split("/", 2)
            self.enqueue(ns, name)

    async def on_bus(self, event: Event, _: RecordMeta | None = None) -> None:
        """A bus consumer handler: wake the configs an event's object belongs to, reading the object first
        when our cache is behind the event."""
        ref = event.involved_object
        informer = self.watched.get(ref.kind)
        if informer is None or event.kind not in EVENTS:
            return
        cached = informer.get(ref.namespace, ref.name)
        if cached is None:
            return  # new to us, or not a watched object: its ADDED comes through the informer
        if not self._configs_of(cached):
            return  # not one of ours: no read
        if behind(event, cached):
            try:
                fresh = await self.kube.get(informer.api_version, ref.kind, ref.name, namespace=ref.namespace or None)
            except NotFound:
                return  # deleted meanwhile: the informer's DELETED wakes the configs
            # Handlers (ours among them) see the newer object once, now; its watch event then changes nothing.
            await informer.observe(fresh)
        self._wake_configs_of(cached)

    def handler(self, inner: Handler | None = None) -> Handler:
        """A consumer handler feeding this status feed, then ``inner`` (e.g. the runners' ``on_bus_watches``)."""

        async def handle(event: Event, meta: RecordMeta) -> None:
            await self.on_bus(event, meta)
            if inner is not None:
                await inner(event, meta)

        return handle

    # ---- summarizing -------------------------------------------------------------------------------------

    def _lookup(self, ref: Ref) -> KubeObject | None:
        informer = self.watched.get(ref.kind)
        return informer.get(ref.namespace, ref.name) if informer is not None else None

    def summary_of(self, config: KubeObject) -> ComplianceStatus:
        """``config``'s compliance as the caches show it now."""
        return summarize(config, observe(config, self._lookup))

    async def _refresh(self, key: ObjectKey) -> Result:
        config = self.configs.get(*key)
        if config is None or (config.get("metadata") or {}).get("deletionTimestamp"):
            return None  # gone or going: its objects go with it, nothing to report on
        before = config.get("status") or {}
        summary = self.summary_of(config)
        patch = status_change(before, summary, self.clock())
        if patch is None:
            return None
        ns, name = key
        try:
            written = await self.kube.patch_status(API_VERSION, KIND, name, {"status": patch}, namespace=ns or None)
        except NotFound:
            return None
        await self.configs.observe(written)
        log.info(
            "compliance updated",
            namespace=ns,
            name=name,
            compliance=str(summary.compliance_state),
            objects=len(summary.statuses) + summary.not_listed,
        )
        said = announcement(before, summary)
        if said is not None:
            publish_announcement(
                self.publisher, written, said, controller=self.controller, instance=self.instance,
                api_version=API_VERSION, kind=KIND,
            )  # fmt: skip
            if self.recorder is not None:
                record = self.recorder.normal if said.severity is Severity.INFO else self.recorder.warning
                await record(written, said.reason, said.message)
        return None

    # ---- life cycle --------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Summarize woken configs until :meth:`stop`; waits for the caches' first lists first."""
        await self.configs.wait_synced()
        for informer in self.watched.values():
            await informer.wait_synced()
        # Everything in the cache once: a restart catches up with what changed while it was down.
        for ns, name in self.configs.object_keys():
            self.enqueue(ns, name)
        await self.workers.run()

    def stop(self) -> None:
        self.workers.stop()

    @contextlib.asynccontextmanager
    async def running(self, spawn: Callable[..., Any]) -> AsyncIterator[StatusFeed]:
        """Run the feed as a supervised task (``spawn`` is ``ProcessContext.spawn``) for the block."""
        spawn(self.run(), name="fluxconfig/status-feed")
        try:
            yield self
        finally:
            self.stop()
