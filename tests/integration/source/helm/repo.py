"""A test Helm repository: a directory served by aiohttp on 127.0.0.1 (HTTP/HTTPS, basic auth, auth header log)."""

from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from aiohttp import web
from aiohttp.typedefs import Handler

from gitops_mesh_dev.gitserver import TlsFiles
from gitops_mesh_dev.http import serve
from gitops_mesh_dev.stack import ROOT, STACK_DIR


def helm_binary() -> Path:
    """The helm v3 binary deploy/local/build.sh installed: from the stack's env file, else build.sh --print."""
    env_file = STACK_DIR / "env"
    lines: list[str] = []
    if env_file.exists():
        lines = env_file.read_text().splitlines()
    if not any(line.startswith("export HELM=") for line in lines):
        out = subprocess.run(
            [str(ROOT / "deploy" / "local" / "build.sh"), "--print"], capture_output=True, text=True, timeout=60
        )
        lines = out.stdout.splitlines()
    for line in lines:
        key, _, value = line.removeprefix("export ").partition("=")
        if key == "HELM" and value and os.access(value, os.X_OK):
            return Path(value)
    raise RuntimeError("no helm binary: run deploy/local/build.sh (make setup)")


def helm(binary: Path, *args: str, cwd: Path | None = None) -> str:
    home = (cwd or Path.cwd()) / ".helm-home"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    done = subprocess.run([str(binary), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args)}: {done.stderr}")
    return done.stdout


@dataclass
class RepoServer:
    """Serves ``root`` at ``/``; ``url`` is set once started."""

    root: Path
    tls: TlsFiles | None = None
    username: str | None = None
    password: str | None = None
    url: str = ""
    auth_log: list[tuple[str, str | None]] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization")
        self.auth_log.append((request.path, header))
        if self.username is not None:
            expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            if header != expected:
                return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="charts"'})
        return await handler(request)

    async def __aenter__(self) -> RepoServer:
        app = web.Application(middlewares=[self._auth])
        app.router.add_static("/", self.root)
        self._runner, port = await serve(app, self.tls)
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
