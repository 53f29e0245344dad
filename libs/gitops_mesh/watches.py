"""Watches: which objects of a kind to reconcile when another object changes (controller-runtime's Watches).

A runner *follows* a watched kind through an index over its own cache: ``refs(obj)`` lists the watched
objects an object of ours points at (``Kind/namespace/name``), and a change of a watched object that passes
the follow's predicate enqueues every object of ours indexed under it. The same follow reacts to the bus:
an ``artifact-ready`` or ``applied`` event about a followed object wakes the same objects at once, across
processes — unless our cache of that object still shows an older revision, in which case the informer's
own update (milliseconds behind) wakes them, so nothing reconciles against the old revision first.

The predicates are the one rule for each kind of news: :func:`new_revision` (a source's artifact, a
dependency's applied revision: there is a revision now, and it is new or just became Ready),
:func:`data_changed` (a Secret or ConfigMap labelled ``reconcile.fluxcd.io/watch: Enabled``) and
:func:`appeared` (a referenced object now exists). A deletion has no new state to judge: it wakes only
the follows that ask for deletions (``on_delete``), those whose objects check that a reference exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gitops_mesh.bus.envelope import Event, EventKind
from gitops_mesh.kube.informer import ChangeType, Informer
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.reconcile import conditions as c

#: The label that makes a Secret or ConfigMap wake the objects referring to it (Flux's).
WATCH_LABEL = "reconcile.fluxcd.io/watch"
WATCH_SELECTOR = f"{WATCH_LABEL}=Enabled"

RevisionOf = Callable[[KubeObject | None], str | None]
Predicate = Callable[[KubeObject, KubeObject | None], bool]
Refs = Callable[[KubeObject], Iterable[str]]
Enqueue = Callable[[str, str], None]

log = get_logger(__name__)


def ref_key(kind: str, namespace: str, name: str) -> str:
    """The index value for a reference: ``Kind/namespace/name``."""
    return f"{kind}/{namespace}/{name}"


def _status_str(obj: KubeObject | None, *path: str) -> str | None:
    value: Any = (obj or {}).get("status") or {}
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) and value else None


def artifact_revision(obj: KubeObject | None) -> str | None:
    """A source's ``status.artifact.revision``."""
    return _status_str(obj, "artifact", "revision")


def applied_revision(obj: KubeObject | None) -> str | None:
    """A Kustomization's (or HelmRelease's) ``status.lastAppliedRevision``."""
    return _status_str(obj, "lastAppliedRevision")


def new_revision(revision_of: RevisionOf) -> Predicate:
    """Flux's SourceRevisionChangePredicate, also for dependencies: a revision is there, and it is new
    or the object just became Ready with it."""

    def predicate(obj: KubeObject, old: KubeObject | None) -> bool:
        revision = revision_of(obj)
        if revision is None:
            return False
        if old is None or revision_of(old) != revision:
            return True
        return c.is_ready(obj) and not c.is_ready(old)

    return predicate


def data_changed(obj: KubeObject, old: KubeObject | None) -> bool:
    """A Secret or ConfigMap appeared or its content changed (metadata-only updates do not count)."""
    if old is None:
        return True
    return any(obj.get(k) != old.get(k) for k in ("data", "stringData", "binaryData"))


def appeared(obj: KubeObject, old: KubeObject | None) -> bool:
    """The watched object was not in the cache before (created, or first seen by a relist)."""
    return old is None


def wakes(change: ChangeType, obj: KubeObject, old: KubeObject | None, *, when: Predicate, on_delete: bool) -> bool:
    """Whether a change of a watched object wakes its followers: the predicate decides, except for a
    deletion, which wakes them only when the follow asks for deletions."""
    if change == "DELETED":
        return on_delete
    return when(obj, old)


def is_ready_at_generation(obj: KubeObject) -> bool:
    """Flux's readiness of a dependency: Ready=True for the generation it has now (not a stale Ready)."""
    return (obj.get("status") or {}).get("observedGeneration") == c.generation_of(obj) and c.is_ready(obj)


@dataclass(frozen=True, slots=True)
class Follow:
    watched: Informer
    index: str
    when: Predicate
    revision_of: RevisionOf | None
    events: frozenset[str]
    on_delete: bool


class Watches:
    """The follows of one runner: ``cache`` is the runner's own informer, ``enqueue`` its work queue."""

    def __init__(self, cache: Informer, enqueue: Enqueue) -> None:
        self.cache = cache
        self.enqueue = enqueue
        self._follows: list[Follow] = []

    def follow(
        self,
        watched: Informer,
        *,
        index: str,
        refs: Refs,
        when: Predicate,
        revision_of: RevisionOf | None = None,
        events: Iterable[EventKind] = (),
        on_delete: bool = False,
    ) -> None:
        """Reconcile our objects that ``refs`` point at a ``watched`` object when it changes as ``when`` says.

        With ``events``, a bus event of those kinds about a watched object wakes them too; ``revision_of``
        reads the revision the event is compared with in the cache. With ``on_delete``, the watched
        object's deletion wakes them as well (an Alert whose Provider is gone).
        """
        if index not in self.cache.indexes:
            self.cache.add_index(index, refs)
        follow = Follow(watched, index, when, revision_of, frozenset(events), on_delete)
        self._follows.append(follow)

        def on_change(change: ChangeType, obj: KubeObject, old: KubeObject | None) -> None:
            if wakes(change, obj, old, when=follow.when, on_delete=follow.on_delete):
                meta = obj.get("metadata") or {}
                self._wake(follow, ref_key(watched.kind, meta.get("namespace") or "", meta.get("name") or ""))

        watched.on_event(on_change)

    def _wake(self, follow: Follow, key: str) -> None:
        for dependent in self.cache.by_index(follow.index, key):
            dep_meta = dependent["metadata"]
            log.debug("woken", by=key, namespace=dep_meta.get("namespace"), name=dep_meta.get("name"))
            self.enqueue(dep_meta.get("namespace") or "", dep_meta["name"])

    def on_bus(self, event: Event) -> None:
        """Wake our objects that follow the event's object, when the event is one a follow reacts to."""
        ref = event.involved_object
        for follow in self._follows:
            if follow.watched.kind != ref.kind or event.kind not in follow.events:
                continue
            cached = follow.watched.get(ref.namespace, ref.name)
            behind = (
                cached is not None
                and follow.revision_of is not None
                and bool(event.revision)
                and follow.revision_of(cached) != event.revision
            )
            if behind:
                continue  # its update follows within milliseconds and wakes them with the new revision
            # An object our cache does not hold is not "behind": waking costs one cheap reconcile.
            self._wake(follow, ref_key(ref.kind, ref.namespace, ref.name))
