"""Kube access, shared caches: one informer per watched kind in a process, read by every runner and reconciler.

controller-runtime's manager cache: a GitRepository informer serves source-controller's GitRepository runner
*and* the HelmChart reconciler that reads its sources, instead of each opening a watch and GETting on
every reconcile. Reconcilers read their own kind and their references here; only Secrets and ConfigMaps
are read with GETs (there are too many to watch them all).
"""

from __future__ import annotations

import asyncio

from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.informer import Informer


class Caches:
    """Informers by (apiVersion, kind, label selector), created on first ask, started by :meth:`start`."""

    def __init__(self, client: KubeClient, *, namespace: str | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self._informers: dict[tuple[str, str, str | None], Informer] = {}

    def informer(self, api_version: str, kind: str, *, label_selector: str | None = None) -> Informer:
        """The process's informer for this kind (in the watched namespace, with this selector)."""
        key = (api_version, kind, label_selector or None)
        found = self._informers.get(key)
        if found is None:
            found = self._informers[key] = Informer(
                self.client, api_version, kind, namespace=self.namespace, label_selector=label_selector or None
            )
        return found

    @property
    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    def start(self) -> None:
        """Start every informer asked for so far (idempotent)."""
        for informer in self._informers.values():
            informer.start()

    def not_synced(self) -> str | None:
        """A /readyz check: which caches have not finished their first list, or None."""
        waiting = [i.kind for i in self._informers.values() if not i.has_synced]
        return f"informers not synced: {', '.join(waiting)}" if waiting else None

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.wait_synced() for i in self._informers.values()))

    async def stop(self) -> None:
        for informer in self._informers.values():
            await informer.stop()
