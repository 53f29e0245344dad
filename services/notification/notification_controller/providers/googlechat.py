"""``googlechat``: a Google Chat card message (``cards``), as Flux's google_chat notifier sends it.

Header: ``kind/name.namespace`` and the reporting controller; a text paragraph with the message (red for
errors); a key-value section with the timestamp and the metadata. Progressing events are skipped, as Flux
skips them (Chat would replace the meaningful message in the thread with them).
"""

from __future__ import annotations

from typing import Any

from gitops_mesh.bus.envelope import Severity
from notification_controller.providers.base import (
    JSON_CONTENT,
    PROGRESSING,
    Credentials,
    Notification,
    ProviderSpec,
    Request,
    address_of,
    go_time,
    json_body,
    skips_chat,
    sorted_metadata,
)


def _key_value(label: str, content: str) -> dict[str, Any]:
    return {
        "textParagraph": None,
        "keyValue": {
            "topLabel": label,
            "content": content,
            "contentMultiline": False,
            "bottomLabel": None,
            "icon": None,
        },
    }


def payload(n: Notification) -> dict[str, Any]:
    text = f'<font color="#ff0000">{n.message}</font>' if n.severity == Severity.ERROR else n.message
    widgets = [_key_value("TIMESTAMP", go_time(n.timestamp))]
    widgets += [_key_value(k, v) for k, v in sorted_metadata(n.metadata)]
    return {
        "cards": [
            {
                "header": {
                    "title": n.object_name,
                    "subtitle": n.reporting_controller,
                    "imageUrl": None,
                    "imageStyle": None,
                },
                "sections": [
                    {"header": "", "widgets": [{"textParagraph": {"text": text}, "keyValue": None}]},
                    {"header": "", "widgets": widgets},
                ],
            }
        ]
    }


def build(n: Notification, spec: ProviderSpec, creds: Credentials) -> Request | None:
    if skips_chat(n) or n.reason == PROGRESSING:
        return None
    url = address_of(spec, creds)
    return Request(url=url, body=json_body(payload(n)), headers={"Content-Type": JSON_CONTENT})
