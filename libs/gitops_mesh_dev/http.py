"""Dev tooling: serving an aiohttp app on a free loopback port, plain or with a certificate from a throw-away CA."""

from __future__ import annotations

import ssl

from aiohttp import web

from gitops_mesh_dev.gitserver import TlsFiles


async def serve(app: web.Application, tls: TlsFiles | None = None) -> tuple[web.AppRunner, int]:
    """Start ``app`` on 127.0.0.1; the caller cleans the runner up."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls.cert, tls.key)
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    return runner, int(runner.addresses[0][1])
