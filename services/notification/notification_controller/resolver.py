"""Kube access for deliveries: Alerts, Providers and involved objects from informer caches, Secrets briefly cached.

Each attempt resolves its Alert, Provider and Secrets again, so a fixed token, address or CA takes effect
on the next retry. Secrets are read through the apiserver with a short cache (a burst of events for one
Provider costs one GET); a Secret's ``headers`` value is parsed once per change (:class:`HeadersCache`, off
the event loop), not once per delivery. Labels of involved objects (for ``matchLabels``) come from an informer per kind,
started the first time an Alert needs that kind's labels.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from gitops_mesh.bus.envelope import ObjectRef
from gitops_mesh.errors import GitopsMeshError, InvalidSpec, NotFound, TransientError
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.events import EventRecorder
from gitops_mesh.kube.informer import Informer
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.kube.secrets import secret_data
from gitops_mesh.observability.logging import get_logger
from notification_controller.matching import alert_from_object, combine_metadata
from notification_controller.providers import (
    Credentials,
    ProviderConfigError,
    Request,
    build_request,
    notification_from,
    provider_from_object,
)
from notification_controller.providers.headers import HeadersCache
from notification_controller.records import Delivery
from notification_controller.sending import Attempt
from notification_controller.unsupported import PROVIDER, UNSUPPORTED_FIELD, unsupported_fields

log = get_logger(__name__)

#: The reason of the Warning Event on an Alert whose notification was given up (Flux's).
DISPATCH_FAILED = "NotificationDispatchFailed"


def split_key(key: str) -> tuple[str, str]:
    namespace, _, name = key.partition("/")
    return namespace, name


class SecretCache:
    """Decoded Secret data for ``ttl`` seconds."""

    def __init__(self, kube: KubeClient, *, ttl: float = 10.0) -> None:
        self._kube = kube
        self._ttl = ttl
        self._entries: dict[tuple[str, str], tuple[float, dict[str, bytes]]] = {}

    async def get(self, namespace: str, name: str) -> dict[str, bytes]:
        now = time.monotonic()
        hit = self._entries.get((namespace, name))
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        data = await secret_data(self._kube, namespace, name)
        self._entries[(namespace, name)] = (now, data)
        if len(self._entries) > 4096:
            self._entries = {k: v for k, v in self._entries.items() if now - v[0] < self._ttl}
        return data


class KubeResolver:
    """The delivery's Alert, Provider and Secrets as they are now → the request, or why not."""

    def __init__(
        self, *, alerts: Informer, providers: Informer, secrets: SecretCache, headers: HeadersCache | None = None
    ) -> None:
        self.alerts = alerts
        self.providers = providers
        self.secrets = secrets
        self.headers = headers or HeadersCache()

    def provider_type(self, d: Delivery) -> str:
        obj = self.providers.get(*split_key(d.provider))
        return str(((obj or {}).get("spec") or {}).get("type") or "unknown")

    async def resolve(self, d: Delivery) -> Request | Attempt:
        alert_obj = self.alerts.get(*split_key(d.alert))
        if alert_obj is None:
            return Attempt.rejected("AlertNotFound", f"Alert {d.alert} no longer exists")
        provider_obj = self.providers.get(*split_key(d.provider))
        if provider_obj is None:
            return Attempt.rejected("ProviderNotFound", f"Provider {d.provider} does not exist")
        spec = provider_from_object(provider_obj)
        if spec.suspend:
            return Attempt.skipped(f"Provider {d.provider} is suspended")
        # The Provider is Stalled for it too; its deliveries must not go out as if the field were not there.
        unsupported = unsupported_fields(provider_obj.get("spec") or {}, PROVIDER)
        if unsupported:
            return Attempt.rejected(UNSUPPORTED_FIELD, "; ".join(unsupported))
        try:
            creds = await self._credentials(
                spec.namespace, spec.secret_ref, spec.cert_secret_ref, spec.proxy_secret_ref
            )
        except NotFound as e:
            # A Secret created after its Provider is common: worth waiting for, within the retry budget.
            return Attempt.retry("SecretNotFound", str(e))
        except ProviderConfigError as e:
            return Attempt.rejected(e.reason, str(e))
        except InvalidSpec as e:
            return Attempt.rejected("InvalidProviderConfig", str(e))
        except TransientError as e:
            return Attempt.retry("KubeUnavailable", str(e), e.retry_after)
        except GitopsMeshError as e:
            return Attempt.retry(e.reason, str(e))
        alert = alert_from_object(alert_obj)
        combined = combine_metadata(alert, d.event)
        if combined.conflicts:
            log.debug("metadata key conflicts", alert=d.alert, conflicts=combined.conflicts)
        try:
            request = build_request(notification_from(d.event, combined.metadata), spec, creds)
        except ProviderConfigError as e:
            return Attempt.rejected(e.reason, str(e))
        if request is None:
            return Attempt.skipped(f"a {spec.type} provider does not take this {d.event.reason} event")
        return request

    async def _credentials(self, namespace: str, secret: str, cert: str, proxy: str) -> Credentials:
        data = await self.secrets.get(namespace, secret) if secret else None
        if data is not None and "headers" in data:
            await self.headers.warm(data["headers"])
        return Credentials.from_secrets(
            data,
            cert=await self.secrets.get(namespace, cert) if cert else None,
            proxy=await self.secrets.get(namespace, proxy) if proxy else None,
            read_headers=self.headers.parse,
        )


class KubeReporter:
    """Warning Events on the Alert of a delivery given up (Flux's NotificationDispatchFailed)."""

    def __init__(self, *, alerts: Informer, recorder: EventRecorder | None) -> None:
        self.alerts = alerts
        self.recorder = recorder

    async def parked(self, d: Delivery, reason: str, message: str) -> None:
        await self.warn(d.alert, DISPATCH_FAILED, message)

    async def warn(self, alert_key: str, reason: str, message: str) -> None:
        obj = self.alerts.get(*split_key(alert_key))
        if obj is None or self.recorder is None:
            return
        await self.recorder.warning(obj, reason, message)


class LabelCache:
    """Labels of involved objects, from one informer per (apiVersion, kind), started on first use.

    An object the cache does not hold yet (a watch lagging behind the event) is read from the apiserver.
    """

    def __init__(self, kube: KubeClient, *, namespace: str | None = None, sync_timeout: float = 5.0) -> None:
        self._kube = kube
        self._namespace = namespace
        self._sync_timeout = sync_timeout
        self._informers: dict[tuple[str, str], Informer] = {}

    async def labels(self, ref: ObjectRef) -> Mapping[str, str] | None:
        """The object's labels, or None when it does not exist (or cannot be read)."""
        informer = self._informers.get((ref.api_version, ref.kind))
        if informer is None:
            informer = Informer(self._kube, ref.api_version, ref.kind, namespace=self._namespace)
            self._informers[(ref.api_version, ref.kind)] = informer
            informer.start()
            try:
                await informer.wait_synced(self._sync_timeout)
            except TimeoutError:
                log.warning("label cache not synced yet; reading the object", kind=ref.kind)
        obj: KubeObject | None = informer.get(ref.namespace, ref.name) if informer.has_synced else None
        if obj is None:
            try:
                obj = await self._kube.get(ref.api_version, ref.kind, ref.name, namespace=ref.namespace or None)
            except GitopsMeshError as e:
                log.info("involved object not readable; matchLabels do not match", kind=ref.kind, error=str(e))
                return None
        return dict((obj.get("metadata") or {}).get("labels") or {})

    async def stop(self) -> None:
        await asyncio.gather(*(i.stop() for i in self._informers.values()))
