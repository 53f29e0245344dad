"""Kustomization: source → dependsOn → fetch (cached by digest) → build → apply → prune → health → announce.

Health checks never hold a worker: after an apply that must be waited for, the reconcile keeps what it
waits for in memory and returns ``Outcome.progressing`` with a short requeue; the next reconciles of the
same revision and generation only look at the objects' status, until all are Current, one failed, or
spec.timeout ran out. A restart forgets the wait, which costs one idempotent re-apply.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from gitops_mesh.artifacts.extract import TreeCache
from gitops_mesh.bus.envelope import EventKind, Severity
from gitops_mesh.errors import InvalidSpec, TransientError
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.informer import Informer
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import Announcement, Outcome
from gitops_mesh.runner import interval_of
from kustomize_controller.apply import ChangeSet, ObjectId, Verdict, deletion_policy, finalize
from kustomize_controller.history import record, snapshot_digest
from kustomize_controller.references import check_cross_namespace, check_dependencies, source_artifact, source_key
from kustomize_controller.settings import KustomizeSettings
from kustomize_controller.toolchain import Toolchain, health_targets, owner_of, timeout_of
from kustomize_controller.unsupported import KUSTOMIZATION, refuse_unsupported

API_VERSION = "kustomize.toolkit.fluxcd.io/v1"
KIND = "Kustomization"

log = get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class PendingHealth:
    """An applied revision whose objects are being waited for."""

    revision: str
    generation: int
    started: float
    refs: list[ObjectId]
    changes: ChangeSet


def summary(changes: ChangeSet, revision: str) -> str:
    """The `applied` event's message: Flux's change log, or that nothing changed."""
    return changes.change_log() or f"no changes at revision {revision}"


@dataclass
class KustomizationReconciler:
    """Kustomization's inner work; ``kustomizations`` and ``sources`` are the process's caches (dependsOn and
    sourceRef are read there, never with GETs)."""

    kube: KubeClient
    http: aiohttp.ClientSession
    trees: TreeCache
    tools: Toolchain
    settings: KustomizeSettings
    kustomizations: Informer
    sources: dict[str, Informer]
    pending: dict[tuple[str, str], PendingHealth] = field(default_factory=dict)

    api_version: str = API_VERSION
    kind: str = KIND

    async def reconcile(self, obj: KubeObject) -> Outcome:
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        status: dict[str, Any] = obj.setdefault("status", {})
        # Before anything is fetched or applied: an ignored field would change what lands where.
        refuse_unsupported(obj["spec"], KUSTOMIZATION)
        check_cross_namespace(obj, allowed=not self.settings.no_cross_namespace_refs)
        kind, src_ns, src_name = source_key(obj)
        informer = self.sources.get(kind)
        if informer is None:
            raise InvalidSpec(f"source kind '{kind}' is not supported by this controller")
        artifact = source_artifact(obj, informer.get(src_ns, src_name))
        revision = artifact["revision"]
        status["lastAttemptedRevision"] = revision
        check_dependencies(obj, self.kustomizations.get, revision)

        pending = self.pending.get(key)
        if pending and pending.revision == revision and pending.generation == meta.get("generation"):
            return await self._health(obj, key, pending)
        self.pending.pop(key, None)

        started = time.monotonic()
        async with self.trees.tree_from_url(
            self.http, artifact["url"], digest=artifact["digest"], max_size=self.settings.artifact_max_size
        ) as tree:
            objects = await self.tools.build(Path(tree), obj)
        client = self._client_for(obj)
        old = list((status.get("inventory") or {}).get("entries") or [])
        changes = await self.tools.apply(client, obj, objects)
        status["inventory"] = {"entries": changes.inventory()}
        refs = health_targets(obj, changes)  # before the prune: deleted objects are not waited for
        if obj["spec"].get("prune"):
            changes.extend((await self.tools.prune(client, obj, old, changes.inventory())).entries)
        if refs:
            waiting = PendingHealth(revision, meta.get("generation", 0), started, refs, changes)
            self.pending[key] = waiting
            return await self._health(obj, key, waiting)
        c.delete(obj, c.ConditionType.HEALTHY)
        return self._succeeded(obj, revision, changes, time.monotonic() - started)

    async def _health(self, obj: KubeObject, key: tuple[str, str], pending: PendingHealth) -> Outcome:
        report = await self.tools.health(self._client_for(obj), pending.refs)
        verdict = report.verdict(elapsed=time.monotonic() - pending.started, timeout=timeout_of(obj))
        now = _now()
        if verdict is Verdict.PROGRESSING:
            message = f"Health check in progress: {report.message(verdict)}"
            c.mark_unknown(obj, c.ConditionType.HEALTHY, "Progressing", message, now=now)
            return Outcome.progressing(message, requeue_after=self.settings.health_poll)
        self.pending.pop(key, None)
        if verdict is not Verdict.HEALTHY:
            message = report.message(verdict)
            c.mark_false(obj, c.ConditionType.HEALTHY, "HealthCheckFailed", message, now=now)
            raise TransientError(message, reason="HealthCheckFailed")
        c.mark_true(obj, c.ConditionType.HEALTHY, "Succeeded", "Health check passed", now=now)
        return self._succeeded(obj, pending.revision, pending.changes, time.monotonic() - pending.started)

    def _succeeded(self, obj: KubeObject, revision: str, changes: ChangeSet, duration: float) -> Outcome:
        status = obj["status"]
        previous = status.get("lastAppliedRevision")
        was_ready = c.is_ready(obj) and previous == revision
        status["lastAppliedRevision"] = revision
        ids = [e["id"] for e in (status.get("inventory") or {}).get("entries") or []]
        status["history"] = record(
            status.get("history") or [],
            digest=snapshot_digest(ids, revision),
            status="ReconciliationSucceeded",
            now=_now(),
            duration=duration,
            revision=revision,
        )
        # Dependents start on this event, so it goes out whenever we become Ready at a revision or change
        # something; an unchanged periodic re-apply stays quiet.
        announce = []
        if changes.changes() or not was_ready:
            announce.append(
                Announcement(
                    EventKind.APPLIED,
                    "ReconciliationSucceeded",
                    summary(changes, revision),
                    revision=revision,
                    severity=Severity.INFO,
                    metadata={k: str(v) for k, v in changes.counts().items()},
                )
            )
        return Outcome.succeeded(
            requeue_after=interval_of(obj), message=f"Applied revision: {revision}", announce=announce
        )

    def _client_for(self, obj: KubeObject) -> KubeClient:
        sa = obj["spec"].get("serviceAccountName") or self.settings.default_service_account
        if not sa:
            return self.kube
        return self.kube.impersonate(sa, obj["metadata"]["namespace"])

    async def finalize(self, obj: KubeObject) -> None:
        """Flux's deletionPolicy: MirrorPrune (default) follows spec.prune, Delete always, Orphan never."""
        spec = obj["spec"]
        entries = ((obj.get("status") or {}).get("inventory") or {}).get("entries") or []
        self.pending.pop((obj["metadata"]["namespace"], obj["metadata"]["name"]), None)
        await finalize(
            self._client_for(obj),
            [ObjectId.from_entry(e) for e in entries],
            policy=deletion_policy(spec.get("deletionPolicy") or "MirrorPrune"),
            prune_enabled=bool(spec.get("prune")),
            suspended=bool(spec.get("suspend")),
            owner=owner_of(obj),
        )
