"""Dev tooling, an OCI registry: distribution's ``registry`` (built by deploy/local/build.sh) on a free loopback
port, storage in a directory of the caller's; for OCI Helm charts (``helm push oci://...``) and OCI sources.

Plain HTTP by default; ``tls`` (a ``make_tls`` CA and certificate) serves HTTPS and ``username``/``password`` turn
on htpasswd basic auth (the hash made by apache2-utils' ``htpasswd``, the password given on its stdin)::

    async with OciRegistry(tmp_path / "registry") as registry:
        url = f"oci://{registry.address}/charts"  # helm push/pull with --plain-http
    async with OciRegistry(tmp_path / "r", tls=make_tls(tmp_path / "pki"), username="u", password="p") as private:
        ...  # helm registry login --ca-file ...; an OCIRepository with secretRef + certSecretRef

The local stack runs two of its own (``OCI_REGISTRY``, and ``OCI_REGISTRY_TLS`` with TLS and basic auth).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import aiohttp
import yaml

from gitops_mesh_dev.gitserver import TlsFiles
from gitops_mesh_dev.mesh import free_port
from gitops_mesh_dev.stack import ROOT

#: The registry answers /v2/ well within this on a loaded 2-core machine.
START_TIMEOUT = 30.0


def registry_binary() -> Path:
    """The ``registry`` binary deploy/local/build.sh installed (its ``--print`` names it)."""
    out = subprocess.run(
        [str(ROOT / "deploy" / "local" / "build.sh"), "--print"], capture_output=True, text=True, timeout=60, check=True
    )
    for line in out.stdout.splitlines():
        key, _, value = line.partition("=")
        if key == "OCI_REGISTRY_BIN" and os.access(value, os.X_OK):
            return Path(value)
    raise RuntimeError("no OCI registry binary: run deploy/local/build.sh (make setup)")


def htpasswd_line(username: str, password: str) -> str:
    """The bcrypt htpasswd line distribution's ``htpasswd`` auth reads; the password reaches htpasswd on stdin."""
    out = subprocess.run(
        ["htpasswd", "-niB", username], input=password, capture_output=True, text=True, timeout=60, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"htpasswd (apache2-utils; make system-packages) failed: {out.stderr.strip()}")
    return out.stdout.strip() + "\n"


@dataclass
class OciRegistry:
    """``address`` (host:port) is set once the registry answers; its log is ``root/registry.log``."""

    root: Path
    binary: Path | None = None
    address: str = ""
    #: HTTPS with this certificate (clients trust ``tls.ca_cert``); plain HTTP when None
    tls: TlsFiles | None = None
    #: basic auth (htpasswd) for this one user when both are set
    username: str | None = None
    password: str | None = None
    _process: asyncio.subprocess.Process | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    async def __aenter__(self) -> OciRegistry:
        binary = self.binary or registry_binary()
        self.root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root / "data")},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": f"127.0.0.1:{port}"},
        }
        if self.tls is not None:
            config["http"] = {
                "addr": f"127.0.0.1:{port}",
                "tls": {"certificate": str(self.tls.cert), "key": str(self.tls.key)},
            }
        if self.username is not None and self.password is not None:
            htpasswd = self.root / "htpasswd"
            htpasswd.write_text(htpasswd_line(self.username, self.password))
            config["auth"] = {"htpasswd": {"realm": "gitops-mesh-dev", "path": str(htpasswd)}}
        (self.root / "config.yml").write_text(yaml.safe_dump(config))
        # No OpenTelemetry exporter: there is no collector, and the default one would retry one for ever.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OTEL_TRACES_EXPORTER": "none"}
        with (self.root / "registry.log").open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                str(binary),
                "serve",
                str(self.root / "config.yml"),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.address = f"127.0.0.1:{port}"
        try:
            await self._wait_ready()
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop()

    async def _wait_ready(self) -> None:
        # Up: /v2/ answers 200, or 401 (a challenge) when auth is on.
        ready = 401 if self.username is not None and self.password is not None else 200
        context = ssl.create_default_context(cafile=str(self.tls.ca_cert)) if self.tls else None
        connector = aiohttp.TCPConnector(ssl=context) if context else None
        async with aiohttp.ClientSession(connector=connector) as http, asyncio.timeout(START_TIMEOUT):
            while True:
                assert self._process is not None
                if self._process.returncode is not None:
                    log = (self.root / "registry.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"the OCI registry exited at start: {log}")
                try:
                    async with http.get(f"{self.scheme}://{self.address}/v2/") as answer:
                        if answer.status == ready:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)

    async def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
