"""A webhook sink: a real HTTP server on loopback standing in for Slack & co, recording every request."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from gitops_mesh_dev.gitserver import TlsFiles
from gitops_mesh_dev.http import serve


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    def json(self) -> Any:
        return orjson.loads(self.body)


Behaviour = Callable[["Received", int], Awaitable[int] | int]


@dataclass
class Sink:
    """A real HTTP server on 127.0.0.1 recording every request; ``behaviour`` picks each answer's status."""

    behaviour: Behaviour = lambda _r, _n: 200
    requests: list[Received] = field(default_factory=list)
    retry_after: str | None = None
    port: int = 0
    tls: TlsFiles | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def ok(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.status < 300]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        rec = Received(request.method, request.path_qs, dict(request.headers), body, 0, time.monotonic())
        answer = self.behaviour(rec, len(self.requests))
        status = answer if isinstance(answer, int) else await answer
        rec.status = status
        self.requests.append(rec)
        headers = {"Retry-After": self.retry_after} if self.retry_after and status in (429, 503) else {}
        return web.Response(status=status, text="ok" if status < 300 else "nope", headers=headers)

    async def start(self) -> Sink:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, self.port = await serve(app, self.tls)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
