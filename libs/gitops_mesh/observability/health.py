"""One aiohttp server per process for /metrics, /healthz and /readyz.

/metrics is prometheus-client's own aiohttp handler: it negotiates the OpenMetrics format (``Accept``),
gzip (``Accept-Encoding``) and ``name[]`` filters as Prometheus scrapes expect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import REGISTRY
from prometheus_client.aiohttp import make_aiohttp_handler

#: A named check: returns None when fine, or a short reason when not.
Check = Callable[[], str | None]


@dataclass
class HealthChecks:
    """Liveness and readiness checks registered by the parts of a controller as they start."""

    live: dict[str, Check] = field(default_factory=dict)
    ready: dict[str, Check] = field(default_factory=dict)

    @staticmethod
    def run(checks: dict[str, Check]) -> tuple[bool, str]:
        lines, ok = [], True
        for name, check in sorted(checks.items()):
            reason = check()
            ok = ok and reason is None
            lines.append(f"[+]{name} ok" if reason is None else f"[-]{name} failed: {reason}")
        lines.append("healthz check passed" if ok else "healthz check failed")
        return ok, "\n".join(lines) + "\n"


HEALTH_KEY = web.AppKey("health", HealthChecks)


def _probe(attr: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        ok, text = HealthChecks.run(getattr(request.app[HEALTH_KEY], attr))
        return web.Response(text=text, status=200 if ok else 503)

    return handler


def make_app(checks: HealthChecks) -> web.Application:
    app = web.Application()
    app[HEALTH_KEY] = checks
    app.router.add_get("/metrics", make_aiohttp_handler(REGISTRY))
    app.router.add_get("/healthz", _probe("live"))
    app.router.add_get("/readyz", _probe("ready"))
    return app


def split_addr(addr: str) -> tuple[str, int]:
    """':8080' -> ('0.0.0.0', 8080); '127.0.0.1:0' -> ('127.0.0.1', 0)."""
    host, _, port = addr.rpartition(":")
    return (host.strip("[]") or "0.0.0.0"), int(port)


async def start_server(app: web.Application, addr: str) -> tuple[web.AppRunner, int]:
    """Start serving ``app`` on ``addr``; returns the runner (to clean up) and the bound port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = split_addr(addr)
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)
