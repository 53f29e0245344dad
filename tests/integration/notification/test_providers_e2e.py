"""Events published on the bus reach one real sink per provider type, with the payload and headers as documented."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gitops_mesh.bus.topics import Topic
from gitops_mesh.kube import KubeClient
from tests.integration.notification.conftest import (
    API,
    Bus,
    Controller,
    applied,
    make_alert,
    make_provider,
    make_secret,
    wait_for,
)
from tests.support.sink import Sink

pytestmark = pytest.mark.stack

SHA = "a" * 40


async def test_one_event_reaches_every_provider_type(
    kube: KubeClient,
    namespace: str,
    bus: Bus,
    sinks: Callable[..., Awaitable[Sink]],
    controller_factory: Callable[..., Awaitable[Controller]],
) -> None:
    types = ["generic", "generic-hmac", "slack", "discord", "msteams", "googlechat", "github", "gitlab", "alertmanager"]
    sink = {t: await sinks() for t in types}
    await make_secret(kube, namespace, "hmac", {"token": "hmac-key", "headers": "X-Team: platform\n"})
    await make_secret(kube, namespace, "git-token", {"token": "tok-123"})
    for t in types:
        address = sink[t].url + {
            "github": "/acme/app.git",
            "gitlab": "/group/sub/app",
            "alertmanager": "/api/v2/alerts",
            "discord": "/api/webhooks/1/abc",
        }.get(t, f"/hooks/{t}")
        secret = {"generic-hmac": "hmac", "github": "git-token", "gitlab": "git-token"}.get(t)
        extra: dict[str, Any] = {"secretRef": {"name": secret}} if secret else {}
        if t == "slack":
            extra["channel"] = "#ops"
        await make_provider(kube, namespace, t, type=t, address=address, **extra)
        await make_alert(kube, namespace, f"to-{t}", t, eventMetadata={"cluster": "dev"})
    provider_uids: dict[str, str] = {}
    for t in ("github", "gitlab"):
        provider_uids[t] = (await kube.get(API, "Provider", t, namespace=namespace))["metadata"]["uid"]

    ctl = await controller_factory()
    event = applied("podinfo", namespace)
    await bus.publish(Topic.APPLIED, event)
    for t in types:
        await wait_for(lambda t=t: len(sink[t].ok()) >= 1, 30, f"{t} delivery", ctl)  # type: ignore[misc]

    event_id = event["id"]
    for t in types:
        assert len(sink[t].requests) == 1, t
        got = sink[t].requests[0]
        assert got.method == "POST"
        assert got.headers["X-Gotk-Event-Id"] == event_id, t
        assert got.headers["Content-Type"] == "application/json", t

    flux_event = {
        "involvedObject": {
            "kind": "Kustomization",
            "namespace": namespace,
            "name": "podinfo",
            "uid": "uid-podinfo",
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        },
        "severity": "info",
        "timestamp": event["data"]["timestamp"],
        "message": f"Applied revision: main@sha1:{SHA}",
        "reason": "ReconciliationSucceeded",
        "metadata": {"cluster": "dev", "revision": f"main@sha1:{SHA}"},
        "reportingController": "kustomize-controller",
        "reportingInstance": "kc-0",
    }
    generic = sink["generic"].requests[0]
    assert generic.path == "/hooks/generic"
    assert generic.json() == flux_event
    assert generic.headers["Gotk-Component"] == "kustomize-controller"

    signed = sink["generic-hmac"].requests[0]
    assert signed.json() == flux_event
    assert signed.headers["X-Team"] == "platform"
    digest = hmac.new(b"hmac-key", signed.body, hashlib.sha256).hexdigest()
    assert signed.headers["X-Signature"] == f"sha256={digest}"

    slack = sink["slack"].requests[0].json()
    assert slack["channel"] == "#ops"
    assert slack["username"] == "kustomize-controller"
    assert slack["attachments"][0]["author_name"] == f"kustomization/podinfo.{namespace}"
    assert slack["attachments"][0]["color"] == "good"
    assert {f["title"] for f in slack["attachments"][0]["fields"]} == {"cluster", "revision"}

    discord = sink["discord"].requests[0]
    assert discord.path == "/api/webhooks/1/abc/slack"
    assert discord.json()["attachments"][0]["text"] == flux_event["message"]

    teams = sink["msteams"].requests[0].json()
    assert teams["type"] == "message"
    card = teams["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["body"][0]["items"][0]["text"] == f"kustomization/podinfo.{namespace}"

    chat = sink["googlechat"].requests[0].json()
    assert chat["cards"][0]["header"]["title"] == f"kustomization/podinfo.{namespace}"
    assert chat["cards"][0]["sections"][0]["widgets"][0]["textParagraph"]["text"] == flux_event["message"]

    gh = sink["github"].requests[0]
    gh_context = f"kustomization/podinfo/{provider_uids['github'].split('-')[0]}"
    assert gh.path == f"/api/v3/repos/acme/app/statuses/{SHA}"
    assert gh.json() == {"state": "success", "description": "reconciliation succeeded", "context": gh_context}
    assert gh.headers["Authorization"] == "Bearer tok-123"

    gl = sink["gitlab"].requests[0]
    assert gl.path == f"/api/v4/projects/group%2Fsub%2Fapp/statuses/{SHA}"
    assert gl.json() == {
        "state": "success",
        "name": f"kustomization/podinfo/{provider_uids['gitlab'].split('-')[0]}",
        "description": "reconciliation succeeded",
    }
    assert gl.headers["PRIVATE-TOKEN"] == "tok-123"

    am = sink["alertmanager"].requests[0]
    assert am.path == "/api/v2/alerts"
    alert = am.json()[0]
    assert alert["status"] == "firing"
    assert alert["labels"]["alertname"] == "FluxKustomizationReconciliationSucceeded"
    assert alert["labels"]["cluster"] == "dev"
    assert alert["annotations"] == {"message": flux_event["message"]}
