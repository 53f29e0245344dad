"""``alertmanager``: one firing alert on Alertmanager's ``POST /api/v2/alerts`` (the address is that URL).

As Flux's alertmanager notifier: the labels are the metadata (without ``summary``) plus ``alertname``
(``Flux<Kind><Reason>``), ``severity``, ``reason``, ``kind``, ``name``, ``namespace`` and
``reportingcontroller``; the annotations are ``message`` and ``summary``; ``startsAt`` is the event's
time and ``endsAt`` is left to Alertmanager's ``resolve_timeout``. A token is sent as a bearer token,
username and password as basic auth.
"""

from __future__ import annotations

import base64
from typing import Any

from gitops_mesh.bus.envelope import format_timestamp
from notification_controller.providers.base import (
    JSON_CONTENT,
    Credentials,
    Notification,
    ProviderSpec,
    Request,
    address_of,
    json_body,
    skips_chat,
)


def title(word: str) -> str:
    """Go's ``strings.Title`` on one word: the first letter upper case, the rest as it is."""
    return word[:1].upper() + word[1:]


def payload(n: Notification) -> list[dict[str, Any]]:
    labels = {k: v for k, v in n.metadata.items() if k != "summary"}
    o = n.involved_object
    labels.update(
        {
            "alertname": f"Flux{o.kind}{title(n.reason)}",
            "severity": str(n.severity),
            "reason": n.reason,
            "kind": o.kind,
            "name": o.name,
            "namespace": o.namespace,
            "reportingcontroller": n.reporting_controller,
        }
    )
    annotations = {"message": n.message}
    if "summary" in n.metadata:
        annotations["summary"] = n.metadata["summary"]
    return [
        {
            "status": "firing",
            "labels": labels,
            "annotations": annotations,
            "startsAt": format_timestamp(n.timestamp),
        }
    ]


def build(n: Notification, spec: ProviderSpec, creds: Credentials) -> Request | None:
    if skips_chat(n):
        return None
    headers = {"Content-Type": JSON_CONTENT}
    username = creds.username or spec.username
    if creds.token:
        headers["Authorization"] = f"Bearer {creds.token}"
    elif username and creds.password:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{username}:{creds.password}".encode()).decode()
    return Request(url=address_of(spec, creds), body=json_body(payload(n)), headers=headers)
