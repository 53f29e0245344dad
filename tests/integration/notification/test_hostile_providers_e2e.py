"""Hostile Provider configuration against the real controller, apiserver and Kafka: an alias bomb and a CR/LF in
the headers Secret, a token in a redirecting address — one event, and only the unusable deliveries are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from gitops_mesh.bus.topics import Topic
from gitops_mesh.kube import KubeClient
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.http import serve
from tests.integration.conftest import eventually
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

Sinks = Callable[..., Awaitable[Sink]]
Factory = Callable[..., Awaitable[Controller]]

TOKEN = "T0SECRET/B0SECRET/XXXXtokenXXXX"
ALIAS_BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "X-Bomb: *f\n"
)


@pytest.fixture
async def redirect_loop() -> AsyncIterator[str]:
    """A loopback server whose every path redirects to itself."""
    app = web.Application()

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.path_qs)

    app.router.add_route("*", "/{tail:.*}", loop)
    runner, port = await serve(app)
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_unusable_providers_are_not_ready_and_refuse_only_their_deliveries(
    kube: KubeClient, namespace: str, bus: Bus, sinks: Sinks, controller_factory: Factory, redirect_loop: str
) -> None:
    sink = await sinks()
    await make_secret(kube, namespace, "bomb", {"headers": ALIAS_BOMB})
    await make_secret(kube, namespace, "crlf", {"headers": 'X-Token: "abc\\r\\nX-Injected: 1"\n'})
    for name, secret in (("bomb", "bomb"), ("crlf", "crlf")):
        await make_provider(
            kube, namespace, name, type="generic", address=f"{sink.url}/{name}", secretRef={"name": secret}
        )
        await make_alert(kube, namespace, name, name)
    await make_provider(kube, namespace, "slack", type="slack", address=f"{redirect_loop}/services/{TOKEN}?t={TOKEN}")
    await make_alert(kube, namespace, "slack", "slack")
    await make_provider(kube, namespace, "good", type="generic", address=f"{sink.url}/good")
    await make_alert(kube, namespace, "good", "good")
    ctl = await controller_factory("--delivery-hold=2s")

    async def not_ready(name: str, words: str) -> bool:
        obj = await kube.get(API, "Provider", name, namespace=namespace)
        return (
            c.is_false(obj, "Ready")
            and c.get_reason(obj, "Ready") == "InvalidProviderConfig"
            and words in c.get_message(obj, "Ready")
            and not c.is_stalled(obj)
        )

    await eventually(lambda: not_ready("bomb", "failed to read headers from secret"), timeout=20)
    await eventually(lambda: not_ready("crlf", "control character"), timeout=20)

    await bus.publish(Topic.APPLIED, applied("podinfo", namespace))
    await wait_for(lambda: any(r.path == "/good" for r in sink.ok()), 30, "the good provider's delivery", ctl)

    async def all_parked() -> bool:
        return len(await bus.dead_letters()) >= 3

    await eventually(all_parked, timeout=30)
    dead = {h["dlq-provider"]: h for h, _ in await bus.dead_letters()}
    assert {p: h["dlq-reason"] for p, h in dead.items()} == {
        f"{namespace}/bomb": "InvalidProviderConfig",
        f"{namespace}/crlf": "InvalidProviderConfig",
        f"{namespace}/slack": "InvalidAddress",
    }
    assert "TooManyRedirects" in dead[f"{namespace}/slack"]["dlq-detail"]
    assert [r.path for r in sink.requests] == ["/good"]  # nothing with a bomb or an injected header went out

    async def warned() -> list[str]:
        events = await kube.list("v1", "Event", namespace=namespace)
        return [str(e.get("message")) for e in events.items if e["reason"] == "NotificationDispatchFailed"]

    await eventually(lambda: _at_least(warned, 3), timeout=20)
    texts = [*(h["dlq-detail"] for h in dead.values()), *await warned(), ctl.log.read_text()]
    assert not [t for t in texts if "SECRET" in t or "X-Injected" in t or "lollol" in t]


async def _at_least(messages: Callable[[], Awaitable[list[str]]], n: int) -> bool:
    return len(await messages()) >= n
