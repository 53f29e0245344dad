"""The demo's local peers, in one background process: a smart-HTTP git server, a Helm repository, a webhook sink.

The git server is the same real `git http-backend` the tests use; the Helm repository is the dev ChartRepo
serving the charts demo.py packaged into CHARTS_DIR (index re-made by the real helm); the sink stands in for
Slack & co: it appends every notification it receives (headers and body) to a JSON-lines file.
Usage: python deploy/local/demo_servers.py REPOS_DIR NOTIFICATIONS_FILE PORTS_FILE CHARTS_DIR HELM (all bind
free ports, written to PORTS_FILE as GIT_PORT=…, SINK_PORT=… and CHART_PORT=… once serving)
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import orjson
from aiohttp import web

from gitops_mesh_dev.chartrepo import ChartRepo
from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.http import serve


async def main(repos: Path, notifications: Path, ports: Path, charts: Path, helm: str) -> None:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        record = {
            "received": time.time(),
            "path": request.path,
            "headers": {str(k): v for k, v in request.headers.items() if k.lower().startswith(("gotk", "x-"))},
            "body": orjson.loads(body) if body else None,
        }
        with notifications.open("ab") as f:
            f.write(orjson.dumps(record) + b"\n")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    runner, sink_port = await serve(app)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with GitServer(repos) as git, ChartRepo(charts, helm=helm) as chart_repo:
        chart_port = chart_repo.url.rsplit(":", 1)[1]
        ports.write_text(f"GIT_PORT={git.port}\nSINK_PORT={sink_port}\nCHART_PORT={chart_port}\n")
        await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5]))
