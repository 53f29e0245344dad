"""One kind's controller: informer → work queue → guard clauses → the kind's reconciler → one status patch.

A controller supplies a :class:`Reconciler` (its own inner work, returning an :class:`Outcome`); the runner
does what every Flux controller does around it, in Flux's order: deleting → finalizer → suspended →
(progress mark on a new generation) → reconcile → result finaliser → one status patch → the outcome's
announcements on the bus, metrics, a Kubernetes Event and a `failed` bus event when the outcome changed.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from gitops_mesh.bus.envelope import EventKind, ObjectRef, Severity, build_event
from gitops_mesh.bus.producer import Publisher
from gitops_mesh.bus.topics import Topic
from gitops_mesh.errors import GitopsMeshError, NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.events import EventRecorder
from gitops_mesh.kube.finalizers import add_finalizer, remove_finalizer
from gitops_mesh.kube.informer import ChangeType, Informer
from gitops_mesh.kube.objects import KubeObject, ObjectKey, object_key
from gitops_mesh.observability import metrics
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.guards import FINALIZER, Step, first_step
from gitops_mesh.reconcile.queue import jittered
from gitops_mesh.reconcile.result import REQUESTED_AT, Announcement, Outcome, OutcomeKind, conclude, progressing
from gitops_mesh.reconcile.workers import Result, Workers
from gitops_mesh.settings import parse_duration
from gitops_mesh.watches import Watches

log = get_logger("runner")


class Reconciler(Protocol):
    """A controller's own work for one kind."""

    api_version: str
    kind: str

    async def reconcile(self, obj: KubeObject) -> Outcome:
        """Do the work for ``obj`` (a private copy: set status fields on it), return the outcome.

        Raise one of our errors (or return ``Outcome.failed``) on failure; both end the same way.
        """
        ...

    async def finalize(self, obj: KubeObject) -> None:
        """Clean up what ``obj`` owns before its finalizer is removed (deletion)."""
        ...


def should_enqueue(change: ChangeType, obj: KubeObject, old: KubeObject | None) -> bool:
    """Flux's predicates: a new object, a new generation, a reconcile request, or a deletion.

    Status-only updates (our own patches) do not enqueue, or every status write would reconcile again.
    """
    if change == "ADDED":
        return True
    if change == "DELETED" or old is None:
        return False
    meta, old_meta = obj.get("metadata", {}), old.get("metadata", {})
    if meta.get("generation") != old_meta.get("generation"):
        return True
    if meta.get("deletionTimestamp") and not old_meta.get("deletionTimestamp"):
        return True
    annotations = meta.get("annotations") or {}
    old_annotations = old_meta.get("annotations") or {}
    return bool(annotations.get(REQUESTED_AT) != old_annotations.get(REQUESTED_AT))


def status_patch(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any] | None:
    """A JSON merge patch turning status ``before`` into ``after`` (removed keys become null), or None."""
    if before == after:
        return None
    patch: dict[str, Any] = {k: v for k, v in after.items() if before.get(k) != v}
    patch.update({k: None for k in before if k not in after})
    return patch


def _duration(obj: KubeObject, field_name: str) -> float | None:
    raw = (obj.get("spec") or {}).get(field_name)
    try:
        return parse_duration(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def interval_of(obj: KubeObject, default: float = 600.0) -> float:
    """``spec.interval`` in seconds (the CRDs guarantee the format)."""
    interval = _duration(obj, "interval")
    return default if interval is None else interval


def retry_interval_of(obj: KubeObject) -> float | None:
    """Flux's ``GetRetryInterval``: ``spec.retryInterval``, else ``spec.interval`` (Kustomization, HelmRelease)."""
    retry = _duration(obj, "retryInterval")
    return retry if retry is not None else _duration(obj, "interval")


def backoff_only(obj: KubeObject) -> float | None:
    """The source kinds' retry policy: failures are retried with the work queue's backoff (750 ms → 15 min)."""
    return None


def _now() -> datetime:
    return datetime.now(UTC)


def topic_of(kind: EventKind) -> Topic:
    """The topic an event kind goes to: its own for the three that controllers react to, else ``events``."""
    return {
        EventKind.ARTIFACT_READY: Topic.ARTIFACT_READY,
        EventKind.APPLIED: Topic.APPLIED,
        EventKind.FAILED: Topic.FAILED,
    }.get(kind, Topic.EVENTS)


@dataclass
class KindRunner:
    """Runs a :class:`Reconciler` for every object of its kind that the informer sees.

    ``retry_interval`` is the kind's retry policy after a failure: :func:`backoff_only` (sources: the
    queue's exponential backoff) or :func:`retry_interval_of` (appliers: Flux's ``spec.retryInterval``).
    ``finalizer`` None runs a kind without one: no finalizer is added, and a deletion has nothing to do.
    """

    client: KubeClient
    reconciler: Reconciler
    informer: Informer
    controller: str
    instance: str
    publisher: Publisher
    recorder: EventRecorder
    concurrent: int = 4
    requeue_dependency: float = 30.0
    retry_interval: Callable[[KubeObject], float | None] = backoff_only
    finalizer: str | None = FINALIZER
    clock: Callable[[], datetime] = _now
    workers: Workers[ObjectKey] = field(init=False)
    watches: Watches = field(init=False)

    def __post_init__(self) -> None:
        r = self.reconciler
        if (self.informer.api_version, self.informer.kind) != (r.api_version, r.kind):
            raise ValueError(f"the {r.kind} runner needs a {r.kind} informer, not {self.informer.kind}")
        self.workers = Workers(
            f"{r.kind.lower()}", self._reconcile, concurrent=self.concurrent, requeue_dependency=self.requeue_dependency
        )
        self.watches = Watches(self.informer, self.enqueue)
        self.informer.on_event(self._on_event)

    def enqueue(self, namespace: str, name: str) -> None:
        """Reconcile this object soon (a bus event, a watched Secret, a dependency that became ready)."""
        self.workers.queue.add((namespace, name))

    def _on_event(self, change: ChangeType, obj: KubeObject, old: KubeObject | None) -> None:
        if change == "DELETED":
            metrics.forget_object(self.reconciler.kind, *object_key(obj))
        elif should_enqueue(change, obj, old):
            self.workers.queue.add(object_key(obj))

    async def _reconcile(self, key: ObjectKey) -> Result:
        cached = self.informer.get(*key)
        if cached is None:
            return None  # gone: the finalizer already ran
        obj = copy.deepcopy(cached)
        r = self.reconciler
        labels = {"kind": r.kind, "namespace": key[0], "name": key[1]}
        step = first_step(obj, self.finalizer)
        if step is Step.DELETING:
            await self._delete(obj)
            return None
        if step is Step.ADD_FINALIZER and self.finalizer is not None:
            obj = await add_finalizer(self.client, obj, self.finalizer)
            await self.informer.observe(obj)
            step = first_step(obj, self.finalizer)
        if step is Step.SUSPENDED:
            metrics.suspend_status.labels(**labels).set(1)
            log.info("reconciliation is suspended", kind=r.kind, namespace=key[0], name=key[1])
            return None
        metrics.suspend_status.labels(**labels).set(0)

        started = time.perf_counter()
        before = copy.deepcopy(obj.get("status") or {})
        ready_before = c.get(obj, c.ConditionType.READY)
        generation = (obj.get("metadata") or {}).get("generation")
        if generation != before.get("observedGeneration"):
            # The at-most-one progress patch: a new spec shows Reconciling while the work runs.
            progressing(obj, "reconciliation in progress", now=self.clock())
            await self._patch_status(obj, before)
            before = copy.deepcopy(obj.get("status") or {})
        try:
            outcome = await r.reconcile(obj)
        except GitopsMeshError as e:
            outcome = Outcome.failed(e)
        done = conclude(
            obj,
            outcome,
            now=self.clock(),
            requeue_dependency=self.requeue_dependency,
            retry_interval=self.retry_interval(obj),
            ready_before=ready_before,
        )
        written = await self._patch_status(obj, before)
        metrics.reconcile_duration.labels(**labels).observe(time.perf_counter() - started)
        self._record_conditions(obj, labels)
        if written:
            for announcement in outcome.announce:
                self._publish(obj, announcement)
        await self._announce(obj, outcome, ready_before)
        result = done.result()
        return jittered(result) if result else result

    async def _delete(self, obj: KubeObject) -> None:
        if self.finalizer is None or self.finalizer not in ((obj.get("metadata") or {}).get("finalizers") or []):
            return
        await self.reconciler.finalize(obj)
        with contextlib.suppress(NotFound):  # already gone: what we wanted
            await remove_finalizer(self.client, obj, self.finalizer)
        log.info("finalized", kind=self.reconciler.kind, namespace=object_key(obj)[0], name=object_key(obj)[1])

    async def _patch_status(self, obj: KubeObject, before: dict[str, Any]) -> bool:
        """Write the status change (if any); False when the object was deleted meanwhile.

        Any other failure raises: the reconcile is retried, and what it would have announced is announced
        by the retry, which finds the status unwritten.
        """
        patch = status_patch(before, obj.get("status") or {})
        if patch is None:
            return True
        ns, name = object_key(obj)
        try:
            written = await self.client.patch_status(
                self.reconciler.api_version, self.reconciler.kind, name, {"status": patch}, namespace=ns or None
            )
        except NotFound:
            log.info("object deleted before its status was written", kind=self.reconciler.kind, namespace=ns, name=name)
            return False
        await self.informer.observe(written)
        return True

    def _record_conditions(self, obj: KubeObject, labels: dict[str, str]) -> None:
        for cond_type in (c.ConditionType.READY, c.ConditionType.RECONCILING, c.ConditionType.STALLED):
            cond = c.get(obj, cond_type)
            for status in ("True", "False", "Unknown", "Deleted"):
                value = (
                    1.0
                    if (cond is not None and cond["status"] == status) or (cond is None and status == "Deleted")
                    else 0.0
                )
                metrics.reconcile_condition.labels(**labels, type=cond_type, status=status).set(value)

    async def _announce(self, obj: KubeObject, outcome: Outcome, ready_before: c.Condition | None) -> None:
        """A Kubernetes Event and, for failures, a `failed` bus event — when the Ready condition changed.

        Retries of the same failure are not announced again: the condition already says it, and the
        notification service would rate-limit the repeats anyway.
        """
        ready = c.get(obj, c.ConditionType.READY)
        if ready is None or outcome.kind is OutcomeKind.SUSPENDED:
            return
        if ready_before is not None and c.same_state(ready_before, ready):
            return
        # Waiting for a source or a dependency is normal life, not a failure to notify about.
        failed = ready["status"] == "False" and outcome.kind in (OutcomeKind.TRANSIENT, OutcomeKind.TERMINAL)
        record = self.recorder.warning if failed else self.recorder.normal
        await record(obj, ready["reason"], ready["message"])
        if failed:
            # The revision that failed, as Flux's events carry it (a Kustomization's source revision, a
            # HelmRelease's chart version): notifications dedupe and route on it.
            attempted = (obj.get("status") or {}).get("lastAttemptedRevision") or ""
            self._publish(
                obj,
                Announcement(
                    EventKind.FAILED,
                    ready["reason"],
                    ready["message"],
                    revision=attempted if isinstance(attempted, str) else "",
                    severity=Severity.ERROR,
                ),
            )

    def _publish(self, obj: KubeObject, announcement: Announcement) -> None:
        """Put one event about ``obj`` on the bus (never blocks; see Publisher)."""
        r = self.reconciler
        publish_announcement(
            self.publisher, obj, announcement, controller=self.controller, instance=self.instance,
            api_version=r.api_version, kind=r.kind,
        )  # fmt: skip

    async def run(self) -> None:
        """Work once the cache has synced (the caches are started by whoever owns them)."""
        await self.informer.wait_synced()
        await self.workers.run()

    def stop(self) -> None:
        self.workers.stop()


def publish_announcement(
    publisher: Publisher,
    obj: KubeObject,
    announcement: Announcement,
    *,
    controller: str,
    instance: str,
    api_version: str = "",
    kind: str = "",
) -> None:
    """Put one event about ``obj`` on its topic (never blocks; see Publisher): the runner's announcements, and a
    reconciler's about other objects it writes (``api_version``/``kind`` default to the object's own)."""
    meta = obj.get("metadata") or {}
    ref = ObjectRef(
        api_version=api_version or str(obj.get("apiVersion") or ""),
        kind=kind or str(obj.get("kind") or ""),
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
    )
    a = announcement
    event = build_event(
        kind=a.kind,
        controller=controller,
        instance=instance,
        involved_object=ref,
        severity=a.severity,
        reason=a.reason,
        message=a.message,
        revision=a.revision,
        metadata=a.metadata or None,
        artifact=a.artifact,
    )
    publisher.publish(topic_of(a.kind), event)
