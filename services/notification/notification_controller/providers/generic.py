"""``generic`` and ``generic-hmac``: Flux's Event JSON as is, ``Gotk-Component``, headers from the Secret.

The body is ``eventv1.Event`` as Go's encoding/json writes it: ``involvedObject`` (a core/v1
ObjectReference: kind, namespace, name, uid, apiVersion, empty ones left out), ``severity``,
``timestamp`` (RFC 3339, seconds), ``message``, ``reason``, ``metadata`` (left out when empty),
``reportingController``, ``reportingInstance`` (left out when empty). ``generic-hmac`` adds
``X-Signature: sha256=<hex HMAC-SHA256(body, token)>`` over exactly the bytes sent.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from gitops_mesh.bus.envelope import format_timestamp
from notification_controller.providers.base import (
    COMPONENT_HEADER,
    JSON_CONTENT,
    Credentials,
    Notification,
    ProviderConfigError,
    ProviderSpec,
    Request,
    address_of,
    json_body,
    merge_headers,
    skips_chat,
)

SIGNATURE_HEADER = "X-Signature"


def event_json(n: Notification) -> dict[str, Any]:
    """Flux's Event as a dict in encoding/json's field order (omitempty fields left out when empty)."""
    o = n.involved_object
    ref = {"kind": o.kind, "namespace": o.namespace, "name": o.name, "uid": o.uid, "apiVersion": o.api_version}
    doc: dict[str, Any] = {
        "involvedObject": {k: v for k, v in ref.items() if v},
        "severity": str(n.severity),
        "timestamp": format_timestamp(n.timestamp),
        "message": n.message,
        "reason": n.reason,
    }
    if n.metadata:
        doc["metadata"] = dict(n.metadata)
    doc["reportingController"] = n.reporting_controller
    if n.reporting_instance:
        doc["reportingInstance"] = n.reporting_instance
    return doc


def sign(body: bytes, key: bytes) -> str:
    """``sha256=<hex>``: the X-Signature value Flux's generic-hmac sends and its receivers check."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def build(n: Notification, spec: ProviderSpec, creds: Credentials) -> Request | None:
    return _build(n, spec, creds, hmac_key=None)


def build_hmac(n: Notification, spec: ProviderSpec, creds: Credentials) -> Request | None:
    if not creds.token:
        raise ProviderConfigError("generic-hmac needs a 'token' in the provider's secret (the HMAC key)")
    return _build(n, spec, creds, hmac_key=creds.token.encode())


def _build(n: Notification, spec: ProviderSpec, creds: Credentials, *, hmac_key: bytes | None) -> Request | None:
    if skips_chat(n):
        return None
    url = address_of(spec, creds)
    body = json_body(event_json(n))
    # Flux sets the secret's headers after Gotk-Component, so they may override it.
    headers = merge_headers({"Content-Type": JSON_CONTENT, COMPONENT_HEADER: n.reporting_controller}, creds.headers)
    if hmac_key is not None:
        headers[SIGNATURE_HEADER] = sign(body, hmac_key)
    return Request(url=url, body=body, headers=headers)
