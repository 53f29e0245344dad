"""Kube access, watching: list then watch one kind into a local cache with indexes and change handlers."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import inspect
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Literal

from gitops_mesh.backoff import Backoff
from gitops_mesh.errors import GitopsMeshError, Gone, TransientError
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.objects import KubeObject, ObjectKey, object_key, resource_version, uid
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.observability.metrics import informer_events, informer_relists, informer_watch_errors

ChangeType = Literal["ADDED", "MODIFIED", "DELETED"]
#: ``(type, obj, old)``: ``old`` is the cached object before the change (None for ADDED).
Change = tuple[ChangeType, KubeObject, KubeObject | None]
Handler = Callable[[ChangeType, KubeObject, KubeObject | None], Awaitable[None] | None]
IndexFn = Callable[[KubeObject], Iterable[str]]

log = get_logger(__name__)


def diff_relist(cached: Mapping[ObjectKey, KubeObject], listed: Iterable[KubeObject]) -> list[Change]:
    """The changes that turn ``cached`` into ``listed``, as a watch would have reported them.

    Unchanged resourceVersions produce nothing. A name reused by a new object (another uid) is a deletion
    and an addition, so handlers that track uids (finalizers, inventories) see the old one go.
    """
    changes: list[Change] = []
    seen: set[ObjectKey] = set()
    for obj in listed:
        key = object_key(obj)
        seen.add(key)
        old = cached.get(key)
        if old is None:
            changes.append(("ADDED", obj, None))
        elif uid(old) and uid(obj) and uid(old) != uid(obj):
            changes.append(("DELETED", old, old))
            changes.append(("ADDED", obj, None))
        elif resource_version(old) != resource_version(obj):
            changes.append(("MODIFIED", obj, old))
    changes.extend(("DELETED", old, old) for key, old in cached.items() if key not in seen)
    return changes


def is_newer(obj: KubeObject, than: KubeObject) -> bool:
    """Whether ``obj`` is a later write than ``than``.

    resourceVersions are opaque to clients in general; etcd-backed ones are its revision numbers, which
    only grow. Anything else is not known to be newer, so the watch stays the one to say.
    """
    new, old = resource_version(obj), resource_version(than)
    return bool(new and old and new.isdigit() and old.isdigit() and int(new) > int(old))


class Informer:
    """A cache of one kind (optionally one namespace / label selector) kept current by list + watch.

    Cached objects carry no ``metadata.managedFields`` (removed in place as they arrive, as Flux's caches do).

    The watch resumes from the last resourceVersion (bookmarks advance it); on 410 Gone it relists and
    hands handlers the difference, deletions included. Connection loss is retried with a quick jittered
    backoff. Handlers run in the informer's task in event order, so they should only enqueue work.
    """

    def __init__(
        self,
        client: KubeClient,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        field_selector: str | None = None,
        name: str | None = None,
        watch_timeout: tuple[int, int] = (240, 480),
        backoff: Backoff | None = None,
    ) -> None:
        self.client = client
        self.api_version = api_version
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.name = name or f"informer/{kind}.{api_version}" + (f"/{namespace}" if namespace else "")
        self._resource = f"{kind}.{api_version}"
        self._watch_timeout = watch_timeout
        # Quick and stretched upwards (client-go's reflector): a restarted apiserver is watched again within seconds.
        self._backoff = backoff or Backoff(initial=0.2, cap=5.0, factor=2.0, jitter=(0.0, 0.5))
        self._cache: dict[ObjectKey, KubeObject] = {}
        self._indexers: dict[str, IndexFn] = {}
        self._indexes: dict[str, dict[str, set[ObjectKey]]] = {}
        self._handlers: list[Handler] = []
        self._synced = asyncio.Event()
        self._resource_version: str | None = None
        self._task: asyncio.Task[None] | None = None

    # --- cache --------------------------------------------------------------------------------------------

    def get(self, namespace: str | None, name: str) -> KubeObject | None:
        return self._cache.get((namespace or "", name))

    def list(self) -> builtins.list[KubeObject]:
        return list(self._cache.values())

    def object_keys(self) -> builtins.list[ObjectKey]:
        return list(self._cache)

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def resource_version(self) -> str | None:
        """The last resourceVersion seen (list, event or bookmark): where a watch resumes."""
        return self._resource_version

    async def observe(self, obj: KubeObject) -> None:
        """Our own write's answer, applied now rather than when its watch event comes: read your own writes.

        A reconcile queued right behind the one that wrote would otherwise start from the status before the
        write (a dependency "not up to date", an event announced twice). Handlers see the change once, here;
        the watch event that follows finds nothing changed. Only a newer object replaces the cached one.
        """
        old = self._cache.get(object_key(obj))
        if old is not None and is_newer(obj, old):
            await self._apply("MODIFIED", obj, old)

    @property
    def indexes(self) -> builtins.list[str]:
        """The names of the indexes this cache keeps."""
        return list(self._indexers)

    def add_index(self, name: str, fn: IndexFn) -> None:
        """Index the cache by ``fn(obj)`` values (e.g. a source reference); objects already cached included."""
        self._indexers[name] = fn
        index: dict[str, set[ObjectKey]] = {}
        for key, obj in self._cache.items():
            for value in fn(obj):
                index.setdefault(value, set()).add(key)
        self._indexes[name] = index

    def by_index(self, name: str, value: str) -> builtins.list[KubeObject]:
        keys = self._indexes[name].get(value, ())
        return [self._cache[k] for k in keys if k in self._cache]

    # --- handlers and sync --------------------------------------------------------------------------------

    def on_event(self, handler: Handler) -> None:
        """Call ``handler(type, obj, old)`` for every change; async handlers are awaited in order."""
        self._handlers.append(handler)

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Return once the first list is in the cache; raises TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            await self._synced.wait()

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=self.name)
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def __aenter__(self) -> Informer:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self) -> None:
        """The supervised loop: (re)list when needed, watch, back off on failure, forever."""
        log.info("informer starting", informer=self.name)
        while True:
            try:
                if self._resource_version is None:
                    await self._relist()
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Gone as e:
                # The resourceVersion fell out of the apiserver's window; only a relist can catch up.
                log.info("watch expired; relisting", informer=self.name, error=str(e))
                self._resource_version = None
            except TransientError as e:
                informer_watch_errors.labels(self._resource).inc()
                await self._pause(e, retry_after=e.retry_after)
            except GitopsMeshError as e:
                # Forbidden / NotFound (CRD not installed yet): keep trying at the capped pace.
                informer_watch_errors.labels(self._resource).inc()
                await self._pause(e)
            except Exception as e:  # the top of a supervised task: log, back off, carry on
                informer_watch_errors.labels(self._resource).inc()
                log.exception("informer failed", informer=self.name)
                await self._pause(e)

    async def _pause(self, error: BaseException, *, retry_after: float | None = None) -> None:
        delay = self._backoff.next()
        if retry_after is not None:
            delay = max(delay, retry_after)
        log.warning("informer retrying", informer=self.name, error=str(error) or type(error).__name__, delay=delay)
        await asyncio.sleep(delay)

    async def _relist(self) -> None:
        result = await self.client.list(
            self.api_version,
            self.kind,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        informer_relists.labels(self._resource).inc()
        changes = diff_relist(self._cache, result.items)
        for change in changes:
            await self._apply(*change)
        self._resource_version = result.resource_version
        self._backoff.reset()
        if not self._synced.is_set():
            log.info("informer synced", informer=self.name, objects=len(self._cache))
            self._synced.set()
        elif changes:
            log.info("informer relisted", informer=self.name, objects=len(self._cache), changes=len(changes))

    async def _watch(self) -> None:
        timeout = random.randint(*self._watch_timeout)
        stream = self.client.watch(
            self.api_version,
            self.kind,
            namespace=self.namespace,
            resource_version=self._resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=timeout,
        )
        async with contextlib.aclosing(stream):
            async for event_type, obj in stream:
                self._backoff.reset()
                informer_events.labels(self._resource, event_type).inc()
                if event_type != "BOOKMARK":
                    old = self._cache.get(object_key(obj))
                    if event_type == "DELETED":
                        await self._apply("DELETED", obj, old)
                    else:
                        await self._apply("MODIFIED" if old is not None else "ADDED", obj, old)
                rv = resource_version(obj)
                if rv:
                    self._resource_version = rv
        # The server closed the watch at timeoutSeconds: a healthy end.
        self._backoff.reset()

    async def _apply(self, change: ChangeType, obj: KubeObject, old: KubeObject | None) -> None:
        # Flux's caches drop managedFields (TransformStripManagedFields): no reconciler reads them from a cache,
        # and with several writers per object they are a large part of each cached object's memory.
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
        key = object_key(obj)
        if old is not None:
            self._unindex(key, old)
        if change == "DELETED":
            self._cache.pop(key, None)
        else:
            self._cache[key] = obj
            self._index(key, obj)
        for handler in self._handlers:
            try:
                result = handler(change, obj, old)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:  # handlers are foreign code: one failing must not stop the cache
                log.exception("informer handler failed", informer=self.name, change=change, key=key)

    def _index(self, key: ObjectKey, obj: KubeObject) -> None:
        for name, fn in self._indexers.items():
            index = self._indexes[name]
            for value in fn(obj):
                index.setdefault(value, set()).add(key)

    def _unindex(self, key: ObjectKey, obj: KubeObject) -> None:
        for name, fn in self._indexers.items():
            index = self._indexes[name]
            for value in fn(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]
