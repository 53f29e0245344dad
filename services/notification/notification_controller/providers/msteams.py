"""``msteams``: an Adaptive Card (Teams workflows), or the legacy MessageCard for ``*.webhook.office.com``.

Shapes as Microsoft documents them for incoming webhooks and as Flux's teams notifier sends them: the card
title is ``kind/name.namespace``, the message wraps (red, ``attention``, for errors), and the metadata is a
FactSet with ``summary`` first and the other keys sorted.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

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

ADAPTIVE_CARD_VERSION = "1.4"  # the newest Teams renders
SUMMARY = "summary"


def is_legacy_connector(url: str) -> bool:
    """Office 365 connectors (``<tenant>.webhook.office.com``) only take MessageCards."""
    return (urlsplit(url).hostname or "").endswith(".webhook.office.com")


def message_card(n: Notification) -> dict[str, Any]:
    return {
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": "FF0000" if n.severity == Severity.ERROR else "0076D7",
        "summary": n.object_name,
        "sections": [
            {
                "activityTitle": n.message,
                "activitySubtitle": n.object_name,
                "facts": [{"name": k, "value": v} for k, v in sorted_metadata(n.metadata)],
            }
        ],
    }


def adaptive_card(n: Notification) -> dict[str, Any]:
    facts = [{"title": SUMMARY, "value": n.metadata[SUMMARY]}] if SUMMARY in n.metadata else []
    facts += [{"title": k, "value": v} for k, v in sorted_metadata(n.metadata) if k != SUMMARY]
    message: dict[str, Any] = {"type": "TextBlock", "text": n.message}
    if n.severity == Severity.ERROR:
        message["color"] = "attention"
    message["wrap"] = True
    fact_set: dict[str, Any] = {"type": "FactSet"}
    if facts:
        fact_set["facts"] = facts
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": ADAPTIVE_CARD_VERSION,
                    "body": [
                        {
                            "type": "Container",
                            "items": [
                                {
                                    "type": "TextBlock",
                                    "text": n.object_name,
                                    "size": "large",
                                    "weight": "bolder",
                                    "wrap": True,
                                },
                                message,
                                fact_set,
                            ],
                        }
                    ],
                    "msteams": {"width": "Full"},
                },
            }
        ],
    }


def build(n: Notification, spec: ProviderSpec, creds: Credentials) -> Request | None:
    if skips_chat(n):
        return None
    url = address_of(spec, creds)
    doc = message_card(n) if is_legacy_connector(url) else adaptive_card(n)
    return Request(url=url, body=json_body(doc), headers={"Content-Type": JSON_CONTENT})
