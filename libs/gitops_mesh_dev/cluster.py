"""Dev tooling, a second cluster: its own etcd and kube-apiserver on free loopback ports, for remote-cluster tests.

The binaries are the ones ``deploy/local/build.sh`` fetched for the stack; the flags are the stack's
(``deploy/local/stack.sh``) with a fresh data directory and PKI each time (openssl, EC P-256), and no
controller-manager, scheduler or kwok: objects are stored and served, nothing reconciles them (a Deployment
never becomes Available here, a deleted namespace stays Terminating). Its kubeconfig is self-contained
(CA inline, a static token), so it can be put in a Secret as a tenant's ``spec.kubeConfig`` would be::

    async with SecondCluster(tmp_path / "remote") as remote:
        secret = {"stringData": {"value": remote.kubeconfig_bytes.decode()}, ...}
        client = await KubeClient.connect(str(remote.kubeconfig))
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import signal
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import aiohttp
import orjson

from gitops_mesh_dev.gitserver import make_tls
from gitops_mesh_dev.mesh import free_port
from gitops_mesh_dev.stack import ROOT

BUILD_SCRIPT = ROOT / "deploy" / "local" / "build.sh"
#: A cold apiserver on two busy cores takes several seconds to serve /readyz; a stuck one is a failure.
START_TIMEOUT = 120.0


class ClusterStartFailed(RuntimeError):
    """etcd or kube-apiserver exited or never became ready; the log's tail is attached."""


def binaries() -> dict[str, str]:
    """build.sh's ``--print``: where the stack's binaries are (KUBE_APISERVER, ETCD, HELM, ...)."""
    out = subprocess.run([str(BUILD_SCRIPT), "--print"], check=True, capture_output=True, text=True, timeout=120)
    found = {}
    for line in out.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            found[key.strip()] = value.strip()
    return found


@dataclass
class SecondCluster:
    """etcd + kube-apiserver under ``root`` for the duration of ``async with``; stopped (and reaped) on exit."""

    root: Path
    api_port: int = field(default_factory=free_port)
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    #: seconds from start to /readyz, for the record
    started_in: float = 0.0
    token: str = field(default_factory=lambda: secrets.token_hex(24), repr=False)
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    _bin: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def kubeconfig_bytes(self) -> bytes:
        return self.kubeconfig.read_bytes()

    async def __aenter__(self) -> Self:
        began = time.monotonic()
        try:
            await asyncio.to_thread(self._prepare)
            self._spawn("etcd", self._etcd_args())
            await self._until_ready("etcd", f"http://127.0.0.1:{self.etcd_port}/health", None)
            self._spawn("kube-apiserver", self._apiserver_args())
            await self._until_ready("kube-apiserver", f"{self.server}/readyz", self._ssl())
        except BaseException:
            await self.stop()
            raise
        self.started_in = time.monotonic() - began
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; the apiserver first, so it does not log etcd's absence for long."""
        for name in ("kube-apiserver", "etcd"):
            proc = self._procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait, 10)

    def log(self, name: str, chars: int = 3000) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    # --- start-up ------------------------------------------------------------------------------------------

    def _prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._bin = binaries()
        pki = self.root / "pki"
        tls = make_tls(pki)
        run = ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "sa.key"]
        subprocess.run(run, cwd=pki, check=True, capture_output=True, timeout=60)
        subprocess.run(
            ["openssl", "pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"],
            cwd=pki,
            check=True,
            capture_output=True,
            timeout=60,
        )
        (pki / "tokens.csv").write_text(f"{self.token},admin,admin,system:masters\n")
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "second",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": base64.b64encode(tls.ca_pem).decode("ascii"),
                    },
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "second", "context": {"cluster": "second", "user": "admin"}}],
            "current-context": "second",
        }
        fd = os.open(self.kubeconfig, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(kubeconfig))

    def _etcd_args(self) -> list[str]:
        client, peer = f"http://127.0.0.1:{self.etcd_port}", f"http://127.0.0.1:{self.etcd_peer_port}"
        return [
            self._bin["ETCD"],
            "--name=second",
            f"--data-dir={self.root / 'etcd'}",
            "--unsafe-no-fsync",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=second={peer}",
            "--listen-metrics-urls=",
        ]

    def _apiserver_args(self) -> list[str]:
        pki = self.root / "pki"
        return [
            self._bin["KUBE_APISERVER"],
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}",
            f"--cert-dir={self.root / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'server.crt'}",
            f"--tls-private-key-file={pki / 'server.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.97.0.0/16",
            "--disable-admission-plugins=ServiceAccount",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--profiling=false",
            "--enable-priority-and-fairness=false",
        ]

    def _spawn(self, name: str, argv: list[str]) -> None:
        with (self.root / f"{name}.log").open("ab") as out:
            self._procs[name] = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL)

    def _ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.root / "pki" / "ca.crt")

    async def _until_ready(self, name: str, url: str, context: ssl.SSLContext | None) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        headers = {"Authorization": f"Bearer {self.token}"} if context else {}
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                proc = self._procs[name]
                if proc.poll() is not None:
                    raise ClusterStartFailed(f"{name} exited with {proc.returncode}:\n{self.log(name)}")
                try:
                    async with http.get(url, headers=headers, ssl=context if context else True) as resp:
                        if resp.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise ClusterStartFailed(f"{name} not ready after {START_TIMEOUT}s:\n{self.log(name)}")
                await asyncio.sleep(0.2)
