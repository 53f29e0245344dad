"""Dev tooling: the controllers of the mesh as real processes, on loopback ports, against the local stack."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from gitops_mesh.bus.topics import Topics
from gitops_mesh_dev.stack import ROOT

#: The virtualenv's console scripts: the controllers as installed.
BIN = ROOT / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def common_args(stack_env: dict[str, str], topics: Topics, namespace: str) -> list[str]:
    """The shared flags: the stack, our own topics, only this test's namespace (Controller adds --metrics-addr)."""
    return [
        f"--kubeconfig={stack_env['KUBECONFIG']}",
        f"--kafka-bootstrap={stack_env['KAFKA_BOOTSTRAP']}",
        f"--topic-prefix={topics.prefix}",
        "--watch-all-namespaces=false",
        f"--watch-namespace={namespace}",
        "--log-level=debug",
    ]


@contextlib.asynccontextmanager
async def running(name: str, args: Sequence[str], log: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    """``.venv/bin/<name> args`` for the duration of the block; its log is shown when it did not stop cleanly."""
    ctl = Controller(name, list(args), log)
    ctl.start()
    assert ctl.proc is not None
    try:
        yield ctl.proc
    finally:
        await ctl.stop()


@dataclass
class Controller:
    """One controller as a real process a test can SIGKILL and start again, always on the same ports."""

    name: str  # the console script
    args: list[str]  # everything but --metrics-addr, which start() adds
    log: Path
    metrics_port: int = field(default_factory=free_port)
    wrapper: list[str] = field(default_factory=list)  # a command to run it under, e.g. a profiler
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [*self.wrapper, str(BIN / self.name), *self.args, f"--metrics-addr=127.0.0.1:{self.metrics_port}"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    async def ready(self, timeout: float = 60) -> None:
        """Until /readyz answers 200 (informers synced, Kafka joined); fails with the log's tail otherwise."""
        deadline, last = time.monotonic() + timeout, ""
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
                try:
                    async with http.get(f"http://127.0.0.1:{self.metrics_port}/readyz") as resp:
                        last = await resp.text()
                        if resp.status == 200:
                            return
                except aiohttp.ClientError as e:
                    last = str(e)
                await asyncio.sleep(0.2)
        raise AssertionError(f"{self.name} not ready after {timeout}s: {last}\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final flush, no offset commit."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    async def stop(self) -> None:
        """SIGTERM and wait; the log's tail is shown when it did not stop cleanly (or crashed before)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                await asyncio.to_thread(self.proc.wait, 20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait, 10)
        if self.proc.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL):
            sys.stderr.write(f"--- {self.name} (exit {self.proc.returncode}) ---\n{self.tail()}")

    def tail(self, n: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    async def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` carrying ``labels``, read from /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        async with aiohttp.ClientSession() as http, http.get(url) as r:
            text = await r.text()
        total = 0.0
        for line in text.splitlines():
            if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


@dataclass
class Mesh:
    """source-, kustomize- and notification-controller (and helm-controller when asked) for one namespace and
    one topic prefix."""

    source: Controller
    kustomize: Controller
    notification: Controller
    storage_port: int
    receiver_port: int
    helm: Controller | None = None

    @property
    def controllers(self) -> list[Controller]:
        return [self.source, self.kustomize, self.notification, *([self.helm] if self.helm else [])]

    def receiver_url(self, webhook_path: str) -> str:
        return f"http://127.0.0.1:{self.receiver_port}{webhook_path}"

    async def start(self) -> None:
        for ctl in self.controllers:
            ctl.start()
        for ctl in self.controllers:
            await ctl.ready()

    async def stop(self) -> None:
        for ctl in self.controllers:
            await ctl.stop()


def mesh_for(
    stack_env: dict[str, str], topics: Topics, namespace: str, workdir: Path, group: str, *, helm: bool = False
) -> Mesh:
    """The controllers' flags, with the tight health/dependency timings tests want; ``helm`` adds helm-controller."""
    common = common_args(stack_env, topics, namespace)
    storage_port, receiver_port = free_port(), free_port()
    source = [*common, f"--storage-path={workdir / 'storage'}", f"--storage-addr=127.0.0.1:{storage_port}"]
    kustomize = [
        *common,
        f"--kustomize-path={stack_env['KUSTOMIZE']}",
        f"--tree-cache-dir={workdir / 'trees'}",
        "--health-poll=500ms",
        "--requeue-dependency=2s",
    ]
    notification = [
        *common,
        f"--receiver-addr=127.0.0.1:{receiver_port}",
        f"--consumer-group={group}",
        "--offset-reset=earliest",
    ]
    helm_controller = None
    if helm:
        helm_args = [
            *common,
            f"--helm-path={stack_env['HELM']}",
            f"--kustomize-path={stack_env['KUSTOMIZE']}",  # post-renderers
            "--health-poll=500ms",
            "--requeue-dependency=2s",
        ]
        helm_controller = Controller("helm-controller", helm_args, workdir / "helm-controller.log")
    return Mesh(
        Controller("source-controller", source, workdir / "source-controller.log"),
        Controller("kustomize-controller", kustomize, workdir / "kustomize-controller.log"),
        Controller("notification-controller", notification, workdir / "notification-controller.log"),
        storage_port,
        receiver_port,
        helm_controller,
    )
