"""Reconcile requests from the bus (Receiver hits): enqueue the named source at once."""

from __future__ import annotations

from collections.abc import Mapping

from gitops_mesh.bus.consumer import RecordMeta
from gitops_mesh.bus.envelope import Event
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.runner import KindRunner

log = get_logger(__name__)


class RequestRouter:
    """Routes a reconcile-request event to the runner of the object's kind; other kinds are not ours."""

    def __init__(self, runners: Mapping[str, KindRunner]) -> None:
        self._runners = dict(runners)

    async def handle(self, event: Event, meta: RecordMeta) -> None:
        ref = event.involved_object
        runner = self._runners.get(ref.kind)
        if runner is None:
            return
        log.info("reconcile requested", kind=ref.kind, namespace=ref.namespace, name=ref.name, offset=meta.offset)
        runner.enqueue(ref.namespace, ref.name)
