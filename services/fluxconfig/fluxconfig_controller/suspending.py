"""A suspended FluxConfig suspends its source and Kustomizations (ARM's ``suspend``), beside the runner.

The runner does not reconcile a suspended object (Flux's guard), so the plan, which carries
``spec.suspend`` into every Flux object it applies, would never say so. This loop does: when a
FluxConfig is (or becomes) suspended, it merge-patches ``spec.suspend: true`` into the objects it made.
Resuming changes the generation, so the runner reconciles and its apply sets ``suspend: false`` again.
"""

from __future__ import annotations

import asyncio

from fluxconfig_controller import model as m
from gitops_mesh.errors import GitopsMeshError, NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.informer import ChangeType, Informer
from gitops_mesh.kube.objects import KubeObject, ObjectKey, object_key
from gitops_mesh.observability.logging import get_logger

log = get_logger(__name__)

#: The Flux kinds that have spec.suspend, among what a FluxConfig makes.
SUSPENDABLE = [(api, kind) for api, kind in m.OWNED_KINDS if kind != "Secret"]


def is_suspended(obj: KubeObject) -> bool:
    return bool((obj.get("spec") or {}).get("suspend")) and not (obj.get("metadata") or {}).get("deletionTimestamp")


class Suspender:
    """Propagates a FluxConfig's suspend to its Flux objects; a failure is retried after ``retry`` seconds."""

    def __init__(self, kube: KubeClient, configs: Informer, *, retry: float = 5.0) -> None:
        self.kube, self.configs, self.retry = kube, configs, retry
        self._queue: asyncio.Queue[ObjectKey] = asyncio.Queue()
        self._queued: set[ObjectKey] = set()
        configs.on_event(self._on_event)

    def _on_event(self, change: ChangeType, obj: KubeObject, old: KubeObject | None) -> None:
        if change != "DELETED" and is_suspended(obj) and (old is None or not is_suspended(old)):
            self._add(object_key(obj))

    def _add(self, key: ObjectKey) -> None:
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    async def run(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            try:
                await self.suspend(key)
            except GitopsMeshError as e:
                log.info(
                    "suspending the configuration's objects failed; retrying",
                    namespace=key[0],
                    name=key[1],
                    error=str(e),
                )
                asyncio.get_running_loop().call_later(self.retry, self._add, key)

    async def suspend(self, key: ObjectKey) -> None:
        ns, name = key
        config = self.configs.get(ns, name)
        if config is None or not is_suspended(config):
            return
        for api, kind in SUSPENDABLE:
            listed = await self.kube.list(api, kind, namespace=ns, label_selector=m.own_selector(name, ns))
            for item in listed.items:
                if (item.get("spec") or {}).get("suspend") is True:
                    continue
                try:
                    await self.kube.patch(
                        api, kind, item["metadata"]["name"], {"spec": {"suspend": True}}, namespace=ns,
                        field_manager=m.FIELD_MANAGER,
                    )  # fmt: skip
                except NotFound:
                    continue
        log.info("suspended the configuration's objects", namespace=ns, name=name)
