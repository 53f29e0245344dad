"""``slack`` (and the Slack-compatible ``discord``): one attachment per event, as Flux's slack notifier.

Slack documents the payload for incoming webhooks and ``chat.postMessage`` alike: ``username``,
``channel``, ``attachments[{color, author_name, text, mrkdwn_in, fields[{title, value, short}]}]``. With a
token (a bot on ``https://slack.com/api/chat.postMessage``) the token goes in ``Authorization: Bearer``
and Slack answers 200 with ``{"ok": false, "error": …}`` on failure, which :func:`check_web_api` reads.
"""

from __future__ import annotations

from typing import Any

import orjson

from gitops_mesh.bus.envelope import Severity
from notification_controller.providers.base import (
    JSON_CONTENT,
    Credentials,
    Notification,
    ProviderSpec,
    Request,
    address_of,
    json_body,
    skips_chat,
    sorted_metadata,
)


def payload(n: Notification, *, username: str, channel: str = "") -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if channel:
        doc["channel"] = channel
    doc["username"] = username or n.reporting_controller
    doc["attachments"] = [
        {
            "color": "danger" if n.severity == Severity.ERROR else "good",
            "author_name": n.object_name,
            "text": n.message,
            "mrkdwn_in": ["text"],
            "fields": [{"title": k, "value": v, "short": False} for k, v in sorted_metadata(n.metadata)],
        }
    ]
    return doc


def check_web_api(body: bytes) -> str | None:
    """Slack's Web API answers 200 with ``ok: false`` when it refused the message; webhooks answer ``ok``."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict) and doc.get("ok") is False:
        return f"slack: {doc.get('error') or 'not ok'}"
    return None


def build(n: Notification, spec: ProviderSpec, creds: Credentials) -> Request | None:
    if skips_chat(n):
        return None
    url = address_of(spec, creds)
    headers = {"Content-Type": JSON_CONTENT}
    if creds.token:
        headers["Authorization"] = f"Bearer {creds.token}"
    body = json_body(payload(n, username=spec.username, channel=spec.channel))
    return Request(url=url, body=body, headers=headers, check_body=check_web_api if creds.token else None)
