"""Provider payloads (pure): one module per Provider type turns a notification into one HTTP request.

:func:`build_request` picks the type's builder, resolves address, proxy, CA and timeout from the Provider
and its Secrets, and stamps the idempotency key (``X-Gotk-Event-Id``: the CloudEvent id) on every request,
so receivers can drop the repeats at-least-once delivery may produce.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from gitops_mesh.bus.envelope import Event
from notification_controller.providers import (
    alertmanager,
    discord,
    generic,
    github,
    gitlab,
    googlechat,
    msteams,
    slack,
)
from notification_controller.providers.base import (
    EVENT_ID_HEADER,
    PROVIDER_API_VERSION,
    PROVIDER_KIND,
    Builder,
    Credentials,
    Notification,
    ProviderConfigError,
    ProviderSpec,
    Request,
    merge_headers,
    provider_from_object,
)
from notification_controller.providers.headers import request_headers_problem

BUILDERS: Mapping[str, Builder] = {
    "generic": generic.build,
    "generic-hmac": generic.build_hmac,
    "slack": slack.build,
    "discord": discord.build,
    "msteams": msteams.build,
    "googlechat": googlechat.build,
    "github": github.build,
    "gitlab": gitlab.build,
    "alertmanager": alertmanager.build,
}

#: Types that set commit statuses: they take Flux's commit-status update events, chat providers do not.
COMMIT_STATUS_TYPES = frozenset({"github", "gitlab"})


def notification_from(event: Event, metadata: Mapping[str, str]) -> Notification:
    """The notification an Alert sends for ``event``, with the metadata it combined (see matching)."""
    return Notification(
        event_id=event.id,
        involved_object=event.involved_object,
        severity=event.severity,
        timestamp=event.timestamp,
        message=event.message,
        reason=event.reason,
        metadata=dict(metadata),
        reporting_controller=event.reporting_controller,
        reporting_instance=event.reporting_instance,
    )


def build_request(n: Notification, spec: ProviderSpec, creds: Credentials) -> Request | None:
    """The request for ``n`` to the Provider, or None when this Provider type does not take it.

    Raises ProviderConfigError when the type is not supported or its configuration is unusable — among
    that, a header the request cannot carry (a token with a line break): this one delivery is refused, as
    the HTTP client would refuse to write it, and nothing else about the event.
    """
    builder = BUILDERS.get(spec.type)
    if builder is None:
        raise ProviderConfigError(
            f"provider type {spec.type!r} is not supported (supported: {', '.join(sorted(BUILDERS))})"
        )
    request = builder(n, spec, creds)
    if request is None:
        return None
    headers = merge_headers(request.headers, {EVENT_ID_HEADER: n.event_id})
    problem = request_headers_problem(headers)
    if problem is not None:
        raise ProviderConfigError(f"cannot send the request: {problem}")
    return replace(
        request,
        headers=headers,
        timeout=spec.timeout,
        proxy=creds.proxy or spec.proxy,
        ca_pem=creds.ca_pem,
    )


__all__ = [
    "BUILDERS",
    "COMMIT_STATUS_TYPES",
    "EVENT_ID_HEADER",
    "PROVIDER_API_VERSION",
    "PROVIDER_KIND",
    "Credentials",
    "Notification",
    "ProviderConfigError",
    "ProviderSpec",
    "Request",
    "build_request",
    "notification_from",
    "provider_from_object",
]
