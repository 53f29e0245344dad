"""``discord``: Discord's Slack-compatible webhook (``<webhook>/slack``) with Flux's Slack attachment."""

from __future__ import annotations

from urllib.parse import urlsplit

from notification_controller.providers import slack
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


def slack_endpoint(url: str) -> str:
    """Discord takes Slack's format on the webhook URL plus ``/slack`` (Flux appends it when missing)."""
    parts = urlsplit(url)
    if parts.path.rstrip("/").endswith("/slack"):
        return url
    return parts._replace(path=parts.path.rstrip("/") + "/slack").geturl()


def build(n: Notification, spec: ProviderSpec, creds: Credentials) -> Request | None:
    if skips_chat(n):
        return None
    url = slack_endpoint(address_of(spec, creds))
    body = json_body(slack.payload(n, username=spec.username))
    return Request(url=url, body=body, headers={"Content-Type": JSON_CONTENT})
