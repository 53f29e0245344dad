"""What wakes a Kustomization besides its own spec and interval: new source artifacts and applied dependencies.

Two paths carry the same news: the bus (artifact-ready, applied — fast, and across processes) and the
informers (the source's or the dependency's status changing — always there, also when Kafka is away).
A bus event is published just before its object's status is written, so it often arrives while our
informer still holds the old status; a reconcile woken then would read the old revision and either
re-apply it or find the dependency "not up to date", and the real work would queue behind it. Such an
event is skipped: the informer's own update follows within milliseconds and wakes the same objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from gitops_mesh.bus.consumer import RecordMeta
from gitops_mesh.bus.envelope import Event
from gitops_mesh.kube.informer import ChangeType
from gitops_mesh.kube.objects import KubeObject
from kustomize_controller.references import SOURCE_KINDS


class Cache(Protocol):
    def get(self, namespace: str | None, name: str) -> KubeObject | None: ...

    def by_index(self, index: str, value: str) -> list[KubeObject]: ...


class Waker(Protocol):
    @property
    def informer(self) -> Cache: ...

    def enqueue(self, namespace: str, name: str) -> None: ...


def _status(obj: KubeObject | None, *path: str) -> str | None:
    value: Any = (obj or {}).get("status") or {}
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return str(value) if value else None


def artifact_revision(obj: KubeObject | None) -> str | None:
    return _status(obj, "artifact", "revision")


def applied_revision(obj: KubeObject | None) -> str | None:
    return _status(obj, "lastAppliedRevision")


def cache_is_behind(cached: KubeObject | None, seen: str | None, revision: str) -> bool:
    """Whether the informer's copy still shows an older revision than the event announces.

    Unknown objects and events without a revision are not "behind": waking costs one cheap reconcile.
    """
    return cached is not None and bool(revision) and seen != revision


class Triggers:
    def __init__(self, runner: Waker, sources: Mapping[str, Cache]) -> None:
        self.runner = runner
        self.sources = sources

    def _wake(self, index: str, value: str) -> None:
        for obj in self.runner.informer.by_index(index, value):
            meta = obj["metadata"]
            self.runner.enqueue(meta["namespace"], meta["name"])

    async def on_bus(self, event: Event, _: RecordMeta) -> None:
        ref = event.involved_object
        if event.kind == "artifact-ready" and ref.kind in SOURCE_KINDS:
            cached = self.sources[ref.kind].get(ref.namespace, ref.name) if ref.kind in self.sources else None
            if not cache_is_behind(cached, artifact_revision(cached), event.revision):
                self._wake("source", f"{ref.kind}/{ref.namespace}/{ref.name}")
        elif event.kind == "applied" and ref.kind == "Kustomization":
            cached = self.runner.informer.get(ref.namespace, ref.name)
            if not cache_is_behind(cached, applied_revision(cached), event.revision):
                self._wake("dependsOn", f"{ref.namespace}/{ref.name}")

    def on_source(self, change: ChangeType, obj: KubeObject, old: KubeObject | None) -> None:
        revision = artifact_revision(obj)
        if revision and revision != artifact_revision(old):
            meta = obj["metadata"]
            self._wake("source", f"{obj.get('kind')}/{meta['namespace']}/{meta['name']}")

    def on_kustomization(self, change: ChangeType, obj: KubeObject, old: KubeObject | None) -> None:
        applied = applied_revision(obj)
        if applied and applied != applied_revision(old):
            self._wake("dependsOn", f"{obj['metadata']['namespace']}/{obj['metadata']['name']}")
