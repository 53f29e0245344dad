"""Provider payloads: the exact JSON, URL and headers each type sends, and the configurations they refuse."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from typing import Any

import orjson
import pytest

from gitops_mesh.bus.envelope import Severity
from notification_controller.matching import alert_from_object, combine_metadata
from notification_controller.providers import (
    Credentials,
    Notification,
    ProviderConfigError,
    Request,
    build_request,
    notification_from,
    provider_from_object,
)
from notification_controller.providers.discord import slack_endpoint
from notification_controller.providers.generic import sign
from notification_controller.providers.gitstatus import commit_of, parse_repository
from notification_controller.providers.slack import check_web_api
from tests.unit.notification.support import alert_object, make_event, provider_object

EVENT_ID = "11111111-2222-3333-4444-555555555555"
SHA = "a" * 40
ADDRESS = "https://hooks.example.com/services/T0/B0/xyz"


def notification(
    *,
    severity: Severity = Severity.INFO,
    reason: str = "ReconciliationSucceeded",
    metadata: dict[str, str] | None = None,
    summary: str = "",
) -> Notification:
    event = make_event(
        severity=severity,
        reason=reason,
        message="Applied revision: main@sha1:" + SHA,
        revision="main@sha1:" + SHA,
        metadata=metadata,
    )
    alert = alert_from_object(alert_object(summary=summary) if summary else alert_object())
    return notification_from(event, combine_metadata(alert, event).metadata)


def request(n: Notification, *, secret: dict[str, bytes] | None = None, **spec: Any) -> Request:
    spec.setdefault("address", ADDRESS)
    r = build_request(n, provider_from_object(provider_object(**spec)), Credentials.from_secrets(secret))
    assert r is not None
    return r


def body(r: Request) -> Any:
    return orjson.loads(r.body)


# ---- generic and generic-hmac ----------------------------------------------------------------------------

FLUX_EVENT = {
    "involvedObject": {
        "kind": "Kustomization",
        "namespace": "apps",
        "name": "podinfo",
        "uid": "0b1c2d3e-aaaa-bbbb-cccc-000000000001",
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
    },
    "severity": "info",
    "timestamp": "2026-03-04T05:06:07Z",
    "message": "Applied revision: main@sha1:" + SHA,
    "reason": "ReconciliationSucceeded",
    "metadata": {"revision": "main@sha1:" + SHA},
    "reportingController": "kustomize-controller",
    "reportingInstance": "kc-0",
}


def test_generic_is_flux_event_json_in_go_field_order() -> None:
    r = request(notification(), type="generic")
    assert r.url == ADDRESS
    assert r.method == "POST"
    assert r.body == orjson.dumps(FLUX_EVENT)
    assert list(body(r)) == list(FLUX_EVENT)
    assert r.headers == {
        "Content-Type": "application/json",
        "Gotk-Component": "kustomize-controller",
        "X-Gotk-Event-Id": EVENT_ID,
    }
    assert r.timeout == 15.0


def test_generic_leaves_empty_metadata_out() -> None:
    n = replace(notification(), metadata={})
    assert "metadata" not in body(request(n, type="generic"))


def test_generic_secret_headers_address_and_override() -> None:
    secret = {
        "address": b"https://other.example.com/hook\n",
        "headers": b"Authorization: Bearer xyz\ngotk-component: custom\nX-Gotk-Event-Id: spoofed\n",
    }
    r = request(notification(), type="generic", secret=secret, timeout="3s")
    assert r.url == "https://other.example.com/hook"
    assert r.headers == {
        "Content-Type": "application/json",
        "Authorization": "Bearer xyz",
        "gotk-component": "custom",
        "X-Gotk-Event-Id": EVENT_ID,
    }
    assert r.timeout == 3.0


def test_generic_hmac_signs_the_exact_body() -> None:
    token = b"s3cr3t-key"
    r = request(notification(), type="generic-hmac", secret={"token": token})
    expected = hmac.new(token, r.body, hashlib.sha256).hexdigest()
    assert r.headers["X-Signature"] == f"sha256={expected}"
    assert sign(b"{}", b"k") == "sha256=" + hmac.new(b"k", b"{}", hashlib.sha256).hexdigest()
    assert body(r) == FLUX_EVENT


def test_generic_hmac_needs_a_token() -> None:
    with pytest.raises(ProviderConfigError, match="token"):
        request(notification(), type="generic-hmac")


# ---- chat providers ------------------------------------------------------------------------------------


def test_slack_attachment() -> None:
    n = notification(metadata={"env": "prod"}, summary="Cluster A")
    r = request(n, type="slack", channel="#ops", username="flux")
    assert r.url == ADDRESS
    assert body(r) == {
        "channel": "#ops",
        "username": "flux",
        "attachments": [
            {
                "color": "good",
                "author_name": "kustomization/podinfo.apps",
                "text": "Applied revision: main@sha1:" + SHA,
                "mrkdwn_in": ["text"],
                "fields": [
                    {"title": "env", "value": "prod", "short": False},
                    {"title": "revision", "value": "main@sha1:" + SHA, "short": False},
                    {"title": "summary", "value": "Cluster A", "short": False},
                ],
            }
        ],
    }
    assert r.headers == {"Content-Type": "application/json", "X-Gotk-Event-Id": EVENT_ID}
    assert r.check_body is None


def test_slack_bot_token_and_error_color() -> None:
    r = request(notification(severity=Severity.ERROR), type="slack", secret={"token": b"xoxb-1"})
    doc = body(r)
    assert doc["username"] == "kustomize-controller"
    assert "channel" not in doc
    assert doc["attachments"][0]["color"] == "danger"
    assert r.headers["Authorization"] == "Bearer xoxb-1"
    assert r.check_body is check_web_api
    assert check_web_api(b'{"ok": false, "error": "channel_not_found"}') == "slack: channel_not_found"
    assert check_web_api(b'{"ok": true}') is None
    assert check_web_api(b"ok") is None


def test_discord_uses_the_slack_compatible_endpoint() -> None:
    r = request(notification(), type="discord", address="https://discord.com/api/webhooks/1/abc", username="bot")
    assert r.url == "https://discord.com/api/webhooks/1/abc/slack"
    doc = body(r)
    assert doc["username"] == "bot"
    assert "channel" not in doc
    assert doc["attachments"][0]["author_name"] == "kustomization/podinfo.apps"
    assert slack_endpoint("https://d.example/x/slack") == "https://d.example/x/slack"


def test_msteams_adaptive_card() -> None:
    n = notification(severity=Severity.ERROR, metadata={"b": "2", "a": "1"}, summary="S")
    r = request(n, type="msteams", address="https://prod-1.westeurope.logic.azure.com/workflows/x")
    assert body(r) == {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {
                            "type": "Container",
                            "items": [
                                {
                                    "type": "TextBlock",
                                    "text": "kustomization/podinfo.apps",
                                    "size": "large",
                                    "weight": "bolder",
                                    "wrap": True,
                                },
                                {
                                    "type": "TextBlock",
                                    "text": "Applied revision: main@sha1:" + SHA,
                                    "color": "attention",
                                    "wrap": True,
                                },
                                {
                                    "type": "FactSet",
                                    "facts": [
                                        {"title": "summary", "value": "S"},
                                        {"title": "a", "value": "1"},
                                        {"title": "b", "value": "2"},
                                        {"title": "revision", "value": "main@sha1:" + SHA},
                                    ],
                                },
                            ],
                        }
                    ],
                    "msteams": {"width": "Full"},
                },
            }
        ],
    }


def test_msteams_legacy_connector_gets_a_message_card() -> None:
    r = request(notification(), type="msteams", address="https://acme.webhook.office.com/webhookb2/x")
    assert body(r) == {
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": "0076D7",
        "summary": "kustomization/podinfo.apps",
        "sections": [
            {
                "activityTitle": "Applied revision: main@sha1:" + SHA,
                "activitySubtitle": "kustomization/podinfo.apps",
                "facts": [{"name": "revision", "value": "main@sha1:" + SHA}],
            }
        ],
    }


def test_googlechat_card() -> None:
    r = request(notification(severity=Severity.ERROR), type="googlechat")
    kv = {"textParagraph": None, "keyValue": None}
    assert body(r) == {
        "cards": [
            {
                "header": {
                    "title": "kustomization/podinfo.apps",
                    "subtitle": "kustomize-controller",
                    "imageUrl": None,
                    "imageStyle": None,
                },
                "sections": [
                    {
                        "header": "",
                        "widgets": [
                            {
                                **kv,
                                "textParagraph": {
                                    "text": '<font color="#ff0000">Applied revision: main@sha1:' + SHA + "</font>"
                                },
                            }
                        ],
                    },
                    {
                        "header": "",
                        "widgets": [
                            {
                                **kv,
                                "keyValue": {
                                    "topLabel": label,
                                    "content": content,
                                    "contentMultiline": False,
                                    "bottomLabel": None,
                                    "icon": None,
                                },
                            }
                            for label, content in [
                                ("TIMESTAMP", "2026-03-04 05:06:07 +0000 UTC"),
                                ("revision", "main@sha1:" + SHA),
                            ]
                        ],
                    },
                ],
            }
        ]
    }


@pytest.mark.parametrize("ptype", ["generic", "slack", "discord", "msteams", "googlechat", "alertmanager"])
def test_chat_and_webhook_providers_skip_commit_status_updates(ptype: str) -> None:
    n = notification(metadata={"commit_status": "update"})
    spec = provider_from_object(provider_object(type=ptype, address=ADDRESS))
    assert build_request(n, spec, Credentials()) is None


def test_googlechat_skips_progressing() -> None:
    spec = provider_from_object(provider_object(type="googlechat", address=ADDRESS))
    assert build_request(notification(reason="Progressing"), spec, Credentials()) is None


# ---- commit statuses -----------------------------------------------------------------------------------


def test_github_commit_status() -> None:
    r = request(notification(), type="github", address="https://github.com/acme/app.git", secret={"token": b"ghp_x"})
    assert r.url == f"https://api.github.com/repos/acme/app/statuses/{SHA}"
    assert body(r) == {
        "state": "success",
        "description": "reconciliation succeeded",
        "context": "kustomization/podinfo/8f2e0c4a",
    }
    assert r.headers == {
        "Content-Type": "application/json",
        "Accept": "application/vnd.github+json",
        "Authorization": "Bearer ghp_x",
        "X-GitHub-Api-Version": "2022-11-28",
        "X-Gotk-Event-Id": EVENT_ID,
    }


def test_github_enterprise_failure_and_ssh_address() -> None:
    n = notification(severity=Severity.ERROR, reason="HealthCheckFailed")
    r = request(n, type="github", address="git@ghe.example.com:acme/app.git", secret={"token": b"t"})
    assert r.url == f"https://ghe.example.com/api/v3/repos/acme/app/statuses/{SHA}"
    assert body(r)["state"] == "failure"
    assert body(r)["description"] == "health check failed"


def test_github_needs_token_and_owner_repo() -> None:
    with pytest.raises(ProviderConfigError, match="token"):
        request(notification(), type="github", address="https://github.com/acme/app")
    with pytest.raises(ProviderConfigError, match="owner/repository"):
        request(notification(), type="github", address="https://github.com/acme/group/app", secret={"token": b"t"})


def test_commit_status_skips_progressing_and_events_without_a_commit() -> None:
    spec = provider_from_object(provider_object(type="github", address="https://github.com/acme/app"))
    creds = Credentials(token="t")
    assert build_request(notification(reason="Progressing"), spec, creds) is None
    no_commit = replace(notification(), metadata={"revision": "6.5.4"})
    assert build_request(no_commit, spec, creds) is None
    assert build_request(replace(notification(), metadata={}), spec, creds) is None
    update = notification(reason="Progressing", metadata={"commit_status": "update"})
    assert build_request(update, spec, creds) is not None


def test_gitlab_commit_status() -> None:
    n = notification(severity=Severity.ERROR)
    r = request(n, type="gitlab", address="https://gitlab.example.com/group/sub/app.git", secret={"token": b"glpat"})
    assert r.url == f"https://gitlab.example.com/api/v4/projects/group%2Fsub%2Fapp/statuses/{SHA}"
    assert body(r) == {
        "state": "failed",
        "name": "kustomization/podinfo/8f2e0c4a",
        "description": "reconciliation succeeded",
    }
    assert r.headers == {"Content-Type": "application/json", "PRIVATE-TOKEN": "glpat", "X-Gotk-Event-Id": EVENT_ID}


@pytest.mark.parametrize(
    ("revision", "commit"),
    [
        ("main@sha1:" + SHA, SHA),
        ("sha1:" + SHA, SHA),
        ("refs/tags/v1@sha1:" + SHA, SHA),
        ("main/" + SHA, SHA),
        ("v1.2.3@sha256:" + "b" * 64, "b" * 64),
        ("6.5.4", None),
        ("", None),
    ],
)
def test_commit_of(revision: str, commit: str | None) -> None:
    assert commit_of(revision) == commit


def test_parse_repository() -> None:
    assert parse_repository("ssh://git@github.com/acme/app.git").host == "https://github.com"
    assert parse_repository("http://127.0.0.1:8080/acme/app").host == "http://127.0.0.1:8080"
    assert parse_repository("https://gitlab.com/a/b/c/").path == "a/b/c"
    with pytest.raises(ProviderConfigError):
        parse_repository("https://github.com/")


# ---- alertmanager --------------------------------------------------------------------------------------


def test_alertmanager_alert() -> None:
    n = notification(metadata={"env": "prod"}, summary="Cluster A")
    r = request(n, type="alertmanager", address="http://am:9093/api/v2/alerts", secret={"token": b"tok"})
    assert body(r) == [
        {
            "status": "firing",
            "labels": {
                "env": "prod",
                "revision": "main@sha1:" + SHA,
                "alertname": "FluxKustomizationReconciliationSucceeded",
                "severity": "info",
                "reason": "ReconciliationSucceeded",
                "kind": "Kustomization",
                "name": "podinfo",
                "namespace": "apps",
                "reportingcontroller": "kustomize-controller",
            },
            "annotations": {"message": "Applied revision: main@sha1:" + SHA, "summary": "Cluster A"},
            "startsAt": "2026-03-04T05:06:07Z",
        }
    ]
    assert r.headers["Authorization"] == "Bearer tok"


def test_alertmanager_basic_auth() -> None:
    r = request(notification(), type="alertmanager", secret={"username": b"u", "password": b"p"})
    assert r.headers["Authorization"] == "Basic dTpw"


# ---- configuration -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "secret", "match"),
    [
        ({"type": "generic", "address": ""}, None, "no address"),
        ({"type": "generic", "address": "ftp://x/y"}, None, "invalid URL"),
        ({"type": "generic", "address": "not a url"}, None, "invalid URL"),
        ({"type": "telegram"}, None, "not supported"),
        ({"type": "generic"}, {"headers": b"- a\n- b\n"}, "headers"),
        ({"type": "generic"}, {"headers": b"a: [unclosed\n"}, "headers"),
    ],
)
def test_unusable_configuration(spec: dict[str, Any], secret: dict[str, bytes] | None, match: str) -> None:
    spec.setdefault("address", ADDRESS)
    with pytest.raises(ProviderConfigError, match=match):
        build_request(notification(), provider_from_object(provider_object(**spec)), Credentials.from_secrets(secret))


def test_invalid_url_error_does_not_leak_the_path() -> None:
    with pytest.raises(ProviderConfigError) as e:
        build_request(
            notification(),
            provider_from_object(provider_object(type="generic", address="ftp://host/secret-token")),
            Credentials(),
        )
    assert "secret-token" not in str(e.value)


def test_proxy_ca_and_timeout_travel_with_the_request() -> None:
    r = build_request(
        notification(),
        provider_from_object(provider_object(type="generic", address=ADDRESS, timeout="1m")),
        Credentials.from_secrets(
            {}, cert={"ca.crt": b"PEM"}, proxy={"address": b"http://proxy:3128", "username": b"u", "password": b"p"}
        ),
    )
    assert r is not None
    assert r.proxy == "http://u:p@proxy:3128"
    assert r.ca_pem == b"PEM"
    assert r.timeout == 60.0
