"""Reconcile requests from the bus (Receiver hits): enqueue the named source at once.

A Receiver both annotates the object (reconcile.fluxcd.io/requestedAt) and publishes the request, so the
news comes twice: through our informer's watch and through the bus. A request whose annotation the
informer already holds has been queued by the watch; queueing it again would only add a no-op reconcile
(an ls-remote) behind the real one. The bus path stays for when the watch is behind or away.
"""

from __future__ import annotations

from collections.abc import Mapping

from gitops_mesh.bus.consumer import RecordMeta
from gitops_mesh.bus.envelope import Event
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.reconcile.result import REQUESTED_AT
from gitops_mesh.runner import KindRunner

log = get_logger(__name__)


def seen_by_watch(cached: KubeObject | None, requested_at: str | None) -> bool:
    """Whether the informer's copy already carries this request's requestedAt annotation."""
    if cached is None or not requested_at:
        return False
    return ((cached.get("metadata") or {}).get("annotations") or {}).get(REQUESTED_AT) == requested_at


class RequestRouter:
    """Routes a reconcile-request event to the runner of the object's kind; other kinds are not ours."""

    def __init__(self, runners: Mapping[str, KindRunner]) -> None:
        self._runners = dict(runners)

    async def handle(self, event: Event, meta: RecordMeta) -> None:
        ref = event.involved_object
        runner = self._runners.get(ref.kind)
        if runner is None:
            return
        if seen_by_watch(runner.informer.get(ref.namespace, ref.name), event.metadata.get(REQUESTED_AT)):
            log.debug(
                "reconcile request already queued by the watch", kind=ref.kind, namespace=ref.namespace, name=ref.name
            )
            return
        log.info("reconcile requested", kind=ref.kind, namespace=ref.namespace, name=ref.name, offset=meta.offset)
        runner.enqueue(ref.namespace, ref.name)
