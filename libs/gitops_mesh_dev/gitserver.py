"""Dev tooling, a smart-HTTP git server: aiohttp running the real ``git http-backend`` CGI, over HTTP or HTTPS,
optionally behind basic or bearer auth; plus TLS material made with the openssl CLI and a server that stalls."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import ssl
import subprocess
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from aiohttp import web

CHUNK = 64 * 1024


@dataclass(frozen=True)
class TlsFiles:
    """A throw-away CA and a server certificate it signed for 127.0.0.1 and localhost."""

    ca_cert: Path
    cert: Path
    key: Path

    @property
    def ca_pem(self) -> bytes:
        return self.ca_cert.read_bytes()


def make_tls(directory: Path) -> TlsFiles:
    """Generate the CA and the server certificate with ``openssl`` (EC P-256, valid one day)."""
    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=gitops-mesh test CA"
    )
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (directory / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "1", "-out", "server.crt", "-extfile", "san.ext",
    )  # fmt: skip
    return TlsFiles(directory / "ca.crt", directory / "server.crt", directory / "server.key")


def loopback_socket() -> socket.socket:
    """A listening-ready TCP socket bound to 127.0.0.1 on a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _v2_command(head: bytes, *, gzipped: bool) -> str | None:
    """The ``command=`` of a protocol v2 request body's first pkt-line, if it is there."""
    if gzipped:
        with contextlib.suppress(zlib.error):
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 256)
    try:
        line = head[4 : int(head[:4], 16)]
    except ValueError:
        return None
    if not line.startswith(b"command="):
        return None
    return line.removeprefix(b"command=").strip().decode(errors="replace")


@dataclass(frozen=True)
class Seen:
    """One request the server answered: method, path and query, the user it authenticated (if any), status."""

    method: str
    path: str
    query: str
    user: str | None
    status: int
    #: protocol v2 command of a POST (``ls-refs``, ``fetch``), when readable
    command: str | None = None


@dataclass
class GitServer:
    """``git http-backend`` for the bare repositories under ``root``.

    With ``users`` and/or ``tokens`` every request needs ``Authorization: Basic`` (a known user and its
    password) or ``Authorization: Bearer`` (a known token); otherwise 401. ``tls`` serves HTTPS.
    """

    root: Path
    users: dict[str, str] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    tls: TlsFiles | None = None
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def url(self, repo: str) -> str:
        """The clone URL of ``<root>/<repo>.git``."""
        return f"{self.scheme}://127.0.0.1:{self.port}/{repo}.git"

    def fetches(self, repo: str) -> int:
        """How many object fetches (protocol v2 ``command=fetch``) reached ``repo``; ref listings do not count."""
        return sum(1 for s in self.seen if s.path == f"/{repo}.git/git-upload-pack" and s.command == "fetch")

    def _user(self, request: web.Request) -> str | bool | None:
        """The authenticated user ('' for a token), None when no auth is configured, False when refused."""
        if not self.users and not self.tokens:
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value in self.tokens:
            return ""
        if scheme.lower() == "basic":
            with contextlib.suppress(ValueError):
                user, _, password = base64.b64decode(value).decode().partition(":")
                if user in self.users and self.users[user] == password:
                    return user
        return False

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        user = self._user(request)
        if user is False:
            self.seen.append(Seen(request.method, request.path, request.query_string, None, 401))
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="git"'}, text="unauthorized\n")
        return await self._cgi(request, user if isinstance(user, str) else None)

    async def _cgi(self, request: web.Request, user: str | None) -> web.StreamResponse:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": request.method,
            "PATH_INFO": request.path,
            "QUERY_STRING": request.query_string,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "REMOTE_ADDR": request.remote or "",
            "REMOTE_USER": user or "",
            "AUTH_TYPE": "Basic" if user else "",
        }
        if "Content-Length" in request.headers:
            env["CONTENT_LENGTH"] = request.headers["Content-Length"]
        for header in ("Git-Protocol", "Content-Encoding", "Accept-Encoding"):
            if header in request.headers:
                env["HTTP_" + header.upper().replace("-", "_")] = request.headers[header]
        proc = await asyncio.create_subprocess_exec(
            "git", "http-backend",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        assert proc.stdin
        assert proc.stdout
        assert proc.stderr
        stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr

        first = await request.content.read(CHUNK)
        command = _v2_command(first, gzipped=request.headers.get("Content-Encoding") == "gzip")

        async def feed() -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                stdin.write(first)
                async for chunk in request.content.iter_chunked(CHUNK):
                    stdin.write(chunk)
                    await stdin.drain()
            stdin.close()

        feeder = asyncio.create_task(feed())
        errors = asyncio.create_task(stderr.read())
        status, headers = 200, {}
        while line := await stdout.readline():
            if line in (b"\r\n", b"\n"):
                break
            key, _, value = line.decode("latin-1").partition(":")
            if key.strip().lower() == "status":
                status = int(value.split()[0])
            else:
                headers[key.strip()] = value.strip()
        self.seen.append(Seen(request.method, request.path, request.query_string, user, status, command))
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        while chunk := await stdout.read(CHUNK):
            await response.write(chunk)
        await feeder
        await errors
        await proc.wait()
        await response.write_eof()
        return response

    async def __aenter__(self) -> GitServer:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        context = None
        if self.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.tls.cert, self.tls.key)
        sock = loopback_socket()
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, ssl_context=context).start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner:
            await self._runner.cleanup()


@dataclass
class StallingServer:
    """Accepts TCP connections and never answers: for timeouts. Counts connections and closed ones."""

    accepted: int = 0
    closed: int = 0
    port: int = 0
    _server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        with contextlib.suppress(ConnectionError):
            while await reader.read(CHUNK):
                pass
        self.closed += 1
        writer.close()

    async def __aenter__(self) -> StallingServer:
        sock = loopback_socket()
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._serve, sock=sock)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)
