"""Delivery errors against a real loopback server: a provider's secret URL never reaches the DLQ, an Event or a log;
a request that cannot be written is one refused delivery, not a failed event."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
import structlog
from aiohttp import web

from gitops_mesh_dev.http import serve
from notification_controller.delivery import DeliverySettings, Dispatcher
from notification_controller.providers import Request
from notification_controller.records import Delivery
from notification_controller.sending import Attempt, AttemptKind, HttpSender
from tests.unit.notification.support import make_event

#: What a Slack or Teams webhook carries in its path; here in the userinfo and query as well.
TOKEN = "T0SECRET/B0SECRET/XXXXtokenXXXX"


@dataclass
class Loopback:
    port: int
    seen: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def server() -> AsyncIterator[Loopback]:
    """``/loop/...`` redirects to itself forever; anything else answers 200."""
    app = web.Application()
    loopback = Loopback(0)

    async def handle(request: web.Request) -> web.Response:
        loopback.seen.append(request.path)
        if request.path.startswith("/loop/"):
            raise web.HTTPFound(request.path_qs)
        return web.Response(text="ok")

    app.router.add_route("*", "/{tail:.*}", handle)
    runner, loopback.port = await serve(app)
    yield loopback
    await runner.cleanup()


@pytest.fixture
async def sender() -> AsyncIterator[HttpSender]:
    async with aiohttp.ClientSession() as session:
        yield HttpSender(session)


def refused_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(url: str, headers: dict[str, str] | None = None) -> Request:
    return Request(url=url, body=b"{}", headers=headers or {}, timeout=5)


def error_cases(server: Loopback) -> list[tuple[str, str, AttemptKind, str]]:
    """(name, address, what the attempt is, its reason): the errors aiohttp describes with the whole URL."""
    return [
        ("redirect loop", server.url(f"/loop/services/{TOKEN}?token={TOKEN}"), AttemptKind.REJECTED, "InvalidAddress"),
        ("invalid URL", f"http://127.0.0.1:99999/services/{TOKEN}", AttemptKind.REJECTED, "InvalidAddress"),
        ("invalid URL", f"http://hook:{TOKEN}@127.0.0.1:1/services/{TOKEN}", AttemptKind.REJECTED, "InvalidAddress"),
        (
            "refused",
            f"http://u:pwSECRET@127.0.0.1:{refused_port()}/s/{TOKEN}?k={TOKEN}",
            AttemptKind.RETRY,
            "ConnectionError",
        ),
    ]


async def test_each_error_is_described_without_the_address_secrets(server: Loopback, sender: HttpSender) -> None:
    for name, url, kind, reason in error_cases(server):
        attempt = await sender.send(request(url))
        assert (attempt.kind, attempt.reason) == (kind, reason), name
        assert attempt.detail.startswith("http://"), name  # where it went is still said, as far as known
        assert "SECRET" not in attempt.detail, (name, attempt.detail)
    assert len(server.seen) > 1  # the redirect loop really went round


async def test_a_header_with_a_line_break_is_one_refused_delivery(server: Loopback, sender: HttpSender) -> None:
    attempt = await sender.send(request(server.url("/hook"), {"X-Token": "abc\r\nX-Injected: 1"}))
    assert (attempt.kind, attempt.reason) == (AttemptKind.REJECTED, "InvalidRequest")
    assert "X-Injected" not in attempt.detail


# ---- through the dispatcher: the DLQ's detail, the Alert's Event, the log --------------------------------


@dataclass
class Requests:
    """Our resolver seam: the request of each delivery, by its event's message."""

    by_message: dict[str, Request]

    async def resolve(self, d: Delivery) -> Request | Attempt:
        return self.by_message[d.event.message]

    def provider_type(self, d: Delivery) -> str:
        return "slack"


@dataclass
class Parked:
    details: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    handed_over: list[Delivery] = field(default_factory=list)

    async def retry_later(self, d: Delivery) -> None:
        self.handed_over.append(d)

    async def dead_letter(self, d: Delivery, *, reason: str, detail: str, source_topic: str) -> None:
        self.details.append(f"{reason}: {detail}")

    async def parked(self, d: Delivery, reason: str, message: str) -> None:
        self.messages.append(message)


async def test_no_secret_in_the_dlq_the_event_or_the_log(server: Loopback, sender: HttpSender) -> None:
    cases = error_cases(server)
    by_message = {f"m{i}": request(url) for i, (_, url, _, _) in enumerate(cases)}
    by_message["bad-header"] = request(server.url("/hook"), {"Authorization": "Bearer x\r\nX-Injected: 1"})
    by_message["good"] = request(server.url("/hook"))
    parked = Parked()
    # No retry budget: a connection error is given up at once (RetryBudgetExhausted) and so is parked too.
    dispatcher = Dispatcher(
        resolver=Requests(by_message),
        sender=sender,
        parking=parked,
        reporter=parked,
        settings=DeliverySettings(hold=5, budget=0),
    )
    deliveries = [
        Delivery(make_event(message=m, event_id=f"id-{m}"), "apps/a", f"apps/p-{m}") for m in sorted(by_message)
    ]
    with structlog.testing.capture_logs() as logs:
        await dispatcher.deliver(deliveries, source_topic="applied")  # settles every one; raises nothing

    assert "/hook" in server.seen  # the good delivery of the same event went out
    assert len(parked.details) == len(parked.messages) == len(cases) + 1
    assert any(d.startswith("InvalidRequest:") for d in parked.details)
    assert any(d.startswith("RetryBudgetExhausted: ConnectionError:") for d in parked.details), parked.details
    text = [*parked.details, *parked.messages, *(str(line) for line in logs)]
    assert any("parked" in str(line.get("event")) for line in logs)
    assert not [t for t in text if "SECRET" in t or "X-Injected" in t]
