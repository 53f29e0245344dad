"""Ready conditions on Alerts and Providers: Flux v1beta3 has none; ours say whether one can be used.

The checks are pure and spec-level (:func:`provider_problem`, :func:`alert_problem`): an unsupported
Provider type, an address that is not a URL, a type that needs a token without a ``secretRef``; an Alert
with regexes that do not compile or a ``providerRef`` naming no Provider. Secrets are not read here (a
missing Secret shows on the deliveries: logs, metrics, Events). A :class:`StatusWriter` keeps the
conditions current from the informers' changes, patching only when the computed status differs, so its
own patches settle after one round.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any

from gitops_mesh.errors import GitopsMeshError, NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.informer import ChangeType, Informer
from gitops_mesh.kube.objects import KubeObject, object_key
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.reconcile import conditions as c
from notification_controller.matching import ALERT_API_VERSION, ALERT_KIND, alert_from_object
from notification_controller.providers import BUILDERS, PROVIDER_API_VERSION, PROVIDER_KIND, provider_from_object
from notification_controller.providers.base import ProviderConfigError, check_url

log = get_logger(__name__)

#: The Alert informer's index: ``<namespace>/<providerRef.name>``.
PROVIDER_REF_INDEX = "provider-ref"
#: Provider types that cannot work without a token from their Secret.
NEEDS_TOKEN = frozenset({"generic-hmac", "github", "gitlab"})
#: Provider types whose address is a repository (any git URL form), not a webhook URL.
REPOSITORY_ADDRESS = frozenset({"github", "gitlab"})

Problem = tuple[str, str]


def provider_problem(obj: KubeObject) -> Problem | None:
    spec = provider_from_object(obj)
    if spec.type not in BUILDERS:
        return "InvalidProviderConfig", f"provider type '{spec.type}' is not supported by this controller"
    if spec.type in NEEDS_TOKEN and not spec.secret_ref:
        return "InvalidProviderConfig", f"a {spec.type} provider needs a secretRef with a 'token'"
    if not spec.address and not spec.secret_ref:
        return "InvalidProviderConfig", "provider has no address (spec.address or the secret's 'address')"
    if spec.address and spec.type not in REPOSITORY_ADDRESS:
        try:
            check_url(spec.address)
        except ProviderConfigError as e:
            return "InvalidProviderConfig", str(e)
    return None


def alert_problem(obj: KubeObject, *, provider_exists: bool) -> Problem | None:
    alert = alert_from_object(obj)
    if alert.invalid_patterns:
        return "InvalidConfig", "regexes that do not compile: " + ", ".join(repr(p) for p in alert.invalid_patterns)
    if not provider_exists:
        return "ProviderNotFound", f"Provider '{alert.namespace}/{alert.provider}' does not exist"
    return None


def with_ready(obj: KubeObject, problem: Problem | None, *, now: datetime) -> dict[str, Any]:
    """The object's status with Ready set for ``problem`` and observedGeneration stamped."""
    status: dict[str, Any] = copy.deepcopy(obj.get("status") or {})
    target = {"metadata": obj.get("metadata") or {}, "status": status}
    if problem is None:
        c.mark_true(target, c.ConditionType.READY, c.Reason.SUCCEEDED, "Initialized", now=now)
    else:
        c.mark_false(target, c.ConditionType.READY, problem[0], problem[1], now=now)
    status["observedGeneration"] = c.generation_of(obj)
    return status


def provider_ref(obj: KubeObject) -> list[str]:
    meta = obj.get("metadata") or {}
    name = ((obj.get("spec") or {}).get("providerRef") or {}).get("name")
    return [f"{meta.get('namespace', '')}/{name}"] if name else []


class StatusWriter:
    """Keeps Ready on Alerts and Providers current; run :meth:`run` as a supervised task."""

    def __init__(self, kube: KubeClient, *, alerts: Informer, providers: Informer, retry_delay: float = 5.0) -> None:
        self.kube = kube
        self.alerts = alerts
        self.providers = providers
        self._retry_delay = retry_delay
        self._queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        self._queued: set[tuple[str, str, str]] = set()
        alerts.add_index(PROVIDER_REF_INDEX, provider_ref)
        alerts.on_event(self._on_alert)
        providers.on_event(self._on_provider)

    def _enqueue(self, kind: str, obj: KubeObject) -> None:
        item = (kind, *object_key(obj))
        if item not in self._queued:
            self._queued.add(item)
            self._queue.put_nowait(item)

    def _on_alert(self, change: ChangeType, obj: KubeObject, old: KubeObject | None) -> None:
        if change != "DELETED":
            self._enqueue(ALERT_KIND, obj)

    def _on_provider(self, change: ChangeType, obj: KubeObject, old: KubeObject | None) -> None:
        if change != "DELETED":
            self._enqueue(PROVIDER_KIND, obj)
        if change != "MODIFIED":
            ns, name = object_key(obj)
            for alert in self.alerts.by_index(PROVIDER_REF_INDEX, f"{ns}/{name}"):
                self._enqueue(ALERT_KIND, alert)

    async def run(self) -> None:
        while True:
            item = await self._queue.get()
            self._queued.discard(item)
            try:
                await self._write(*item)
            except NotFound:
                pass  # deleted meanwhile
            except GitopsMeshError as e:
                log.warning(
                    "cannot write status; retrying", kind=item[0], namespace=item[1], name=item[2], error=str(e)
                )
                asyncio.get_running_loop().call_later(self._retry_delay, self._requeue, item)

    def _requeue(self, item: tuple[str, str, str]) -> None:
        if item not in self._queued:
            self._queued.add(item)
            self._queue.put_nowait(item)

    async def _write(self, kind: str, namespace: str, name: str) -> None:
        if kind == ALERT_KIND:
            api_version, obj = ALERT_API_VERSION, self.alerts.get(namespace, name)
            if obj is None:
                return
            provider = ((obj.get("spec") or {}).get("providerRef") or {}).get("name") or ""
            problem = alert_problem(obj, provider_exists=self.providers.get(namespace, provider) is not None)
        else:
            api_version, obj = PROVIDER_API_VERSION, self.providers.get(namespace, name)
            if obj is None:
                return
            problem = provider_problem(obj)
        status = with_ready(obj, problem, now=datetime.now(UTC))
        current = obj.get("status") or {}
        if status.get("conditions") == current.get("conditions") and status.get("observedGeneration") == current.get(
            "observedGeneration"
        ):
            return
        await self.kube.patch_status(
            api_version,
            kind,
            name,
            {"status": {"conditions": status["conditions"], "observedGeneration": status["observedGeneration"]}},
            namespace=namespace,
        )
        if problem is not None:
            log.warning("not ready", kind=kind, namespace=namespace, name=name, reason=problem[0], message=problem[1])
