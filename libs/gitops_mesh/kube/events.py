"""Kube access, telling users: core/v1 Events about an object, repeats folded into one Event's count."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from gitops_mesh.errors import GitopsMeshError, NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.objects import KubeObject, metadata
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.timestamps import rfc3339

log = get_logger(__name__)

# Events are for people; a whole kustomize build log does not belong in one.
MAX_MESSAGE = 4096


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


#: (event namespace, involved kind, involved name, involved uid, type, reason, message)
AggregationKey = tuple[str, str, str, str, str, str, str]


@dataclass(slots=True)
class _Seen:
    name: str
    count: int


def _now() -> str:
    return rfc3339(datetime.now(UTC))


def involved_object(obj: KubeObject) -> dict[str, str]:
    meta = metadata(obj)
    ref = {
        "apiVersion": str(obj.get("apiVersion") or ""),
        "kind": str(obj.get("kind") or ""),
        "name": str(meta.get("name") or ""),
        "namespace": str(meta.get("namespace") or ""),
        "uid": str(meta.get("uid") or ""),
        "resourceVersion": str(meta.get("resourceVersion") or ""),
    }
    return {k: v for k, v in ref.items() if v}


def aggregation_key(obj: KubeObject, event_type: str, reason: str, message: str) -> AggregationKey:
    ref = involved_object(obj)
    return (
        ref.get("namespace") or "default",
        ref.get("kind", ""),
        ref.get("name", ""),
        ref.get("uid", ""),
        event_type,
        reason,
        message,
    )


def new_event(
    obj: KubeObject,
    *,
    event_type: str,
    reason: str,
    message: str,
    component: str,
    instance: str,
    action: str | None = None,
    now: str | None = None,
) -> KubeObject:
    """A core/v1 Event named like client-go's (``<object>.<unix nanos in hex>``), count 1."""
    ref = involved_object(obj)
    stamp = now or _now()
    event: KubeObject = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{ref.get('name', 'unknown')}.{time.time_ns():x}",
            # Cluster-scoped objects' events live in "default", as kubectl describe expects.
            "namespace": ref.get("namespace") or "default",
        },
        "involvedObject": ref,
        "type": event_type,
        "reason": reason,
        "message": message,
        "source": {"component": component, "host": instance},
        "reportingComponent": component,
        "reportingInstance": instance,
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
    }
    if action:
        event["action"] = action
    return event


class EventRecorder:
    """Emits Events for one component instance; never raises into the caller's reconcile."""

    def __init__(self, client: KubeClient, component: str, instance: str, *, max_cached: int = 4096) -> None:
        self.client = client
        self.component = component
        self.instance = instance
        self._max_cached = max_cached
        self._seen: OrderedDict[AggregationKey, _Seen] = OrderedDict()

    async def normal(self, obj: KubeObject, reason: str, message: str, *, action: str | None = None) -> None:
        await self.record(obj, EventType.NORMAL, reason, message, action=action)

    async def warning(self, obj: KubeObject, reason: str, message: str, *, action: str | None = None) -> None:
        await self.record(obj, EventType.WARNING, reason, message, action=action)

    async def record(
        self, obj: KubeObject, event_type: EventType | str, reason: str, message: str, *, action: str | None = None
    ) -> None:
        """Create an Event, or bump count/lastTimestamp of the one recorded for the same repeat."""
        event_type = str(event_type)
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 1] + "…"
        key = aggregation_key(obj, event_type, reason, message)
        try:
            seen = self._seen.get(key)
            if seen is not None and await self._bump(key[0], seen):
                self._seen.move_to_end(key)
                return
            event = new_event(
                obj,
                event_type=event_type,
                reason=reason,
                message=message,
                component=self.component,
                instance=self.instance,
                action=action,
            )
            created = await self.client.create(event)
            self._remember(key, _Seen(name=str(metadata(created).get("name") or ""), count=1))
        except GitopsMeshError as e:
            # An Event is a courtesy: losing one must never fail or slow the reconcile that sent it.
            log.warning("recording event failed", reason=reason, error=str(e), involved=key[1:3])

    async def _bump(self, namespace: str, seen: _Seen) -> bool:
        """Patch count+1 on the cached Event; False when it is gone (events expire after an hour)."""
        try:
            await self.client.patch(
                "v1",
                "Event",
                seen.name,
                {"count": seen.count + 1, "lastTimestamp": _now()},
                namespace=namespace,
            )
        except NotFound:
            return False
        seen.count += 1
        return True

    def _remember(self, key: AggregationKey, seen: _Seen) -> None:
        self._seen[key] = seen
        self._seen.move_to_end(key)
        while len(self._seen) > self._max_cached:
            self._seen.popitem(last=False)
