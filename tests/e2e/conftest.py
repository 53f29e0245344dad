"""The whole mesh as real processes: a git server, source-, kustomize- and notification-controller, a sink.

Every test gets its own namespace, topics and repository, and the same GitOps setup `make demo` shows: a
GitRepository, Kustomizations ``infra`` and ``apps`` (apps dependsOn infra and waits for health), a generic
Provider pointing at a webhook sink, an Alert over both kinds, and a generic Receiver on the repository.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gitops_mesh.bus.topics import Topic, Topics, ensure_topics
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.mesh import Mesh, mesh_for
from gitops_mesh_dev.repos import Repo
from gitops_mesh_dev.waits import receiver_path, until_applied
from notification_controller.dedupe import normalize_message
from tests.integration.conftest import kube, namespace  # noqa: F401
from tests.support.bus import BusLog, recording
from tests.support.fixtures import git_http, git_root, make_repo  # noqa: F401
from tests.support.sink import Received, Sink

SRC = "source.toolkit.fluxcd.io/v1"
KS = "kustomize.toolkit.fluxcd.io/v1"
NOTIFY = "notification.toolkit.fluxcd.io/v1beta3"
RECEIVER = "notification.toolkit.fluxcd.io/v1"
TOKEN = "e2e-receiver-token"

INFRA = """apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  color: "{color}"
"""

APPS = """apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  version: "{version}"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}, annotations: {{version: "{version}"}}}}
    spec: {{containers: [{{name: web, image: "nginx:1.27"}}]}}
"""


def content(version: int, color: str = "blue") -> dict[str, str]:
    return {"infra/settings.yaml": INFRA.format(color=color), "apps/web.yaml": APPS.format(version=version)}


def revision_of(body: dict[str, Any]) -> str:
    """The revision a Flux event names, under ``<group>/revision`` or ``revision``."""
    for key, value in (body.get("metadata") or {}).items():
        if key == "revision" or key.endswith("/revision"):
            return str(value)
    return ""


@dataclass
class Flow:
    kube: KubeClient
    namespace: str
    mesh: Mesh
    sink: Sink
    repo: Repo
    bus: BusLog
    webhook_path: str = ""

    # ---- git ----

    def push(self, files: dict[str, str], message: str = "change") -> str:
        sha = self.repo.commit(files, message=message)
        self.repo.push()
        return sha

    async def call_receiver(self) -> None:
        """POST the Receiver like a git host after a push (the generic type needs no body or signature)."""
        async with aiohttp.ClientSession() as http, http.post(self.mesh.receiver_url(self.webhook_path)) as r:
            assert r.status == 200, await r.text()

    # ---- the cluster ----

    async def kustomization(self, name: str) -> KubeObject:
        return await self.kube.get(KS, "Kustomization", name, namespace=self.namespace)

    async def until_applied(self, name: str, sha: str, timeout: float = 120) -> KubeObject:
        try:
            return await until_applied(self.kube, self.namespace, name, sha, timeout=timeout, poll=0.2)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.logs()}") from None

    async def configmap(self, name: str) -> dict[str, str]:
        obj = await self.kube.get("v1", "ConfigMap", name, namespace=self.namespace)
        return dict(obj.get("data") or {})

    # ---- what the sink got ----

    def notified(self, kind: str, name: str, sha: str = "", severity: str = "") -> list[Received]:
        """Accepted deliveries about ``kind/name`` (at revision ``sha``, with ``severity``, when given)."""
        out = []
        for r in self.sink.ok():
            body = r.json()
            o = body["involvedObject"]
            if o["kind"] != kind or o["name"] != name or (severity and body["severity"] != severity):
                continue
            if sha and not revision_of(body).endswith(sha):
                continue
            out.append(r)
        return out

    async def until_notified(
        self, kind: str, name: str, sha: str = "", severity: str = "", timeout: float = 60
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if got := self.notified(kind, name, sha, severity):
                return got
            await asyncio.sleep(0.1)
        seen = [(r.json()["involvedObject"]["name"], r.json()["reason"], revision_of(r.json())) for r in self.sink.ok()]
        on_bus = [(e.kind, e.involved_object.name, e.reason, e.revision) for e in self.bus.events]
        raise AssertionError(
            f"no {severity or 'any'} notification for {kind}/{name} at {sha[:12]}; sink got {seen}, bus had {on_bus}"
        )

    def repeats(self) -> dict[tuple[str, ...], list[Received]]:
        """Deliveries the dedupe rule should have collapsed: same object, reason, revision and message."""
        groups: dict[tuple[str, ...], list[Received]] = {}
        for r in self.sink.ok():
            b = r.json()
            o = b["involvedObject"]
            key = (o["kind"], o["name"], b["reason"], revision_of(b), normalize_message(b["message"]))
            groups.setdefault(key, []).append(r)
        return {k: v for k, v in groups.items() if len(v) > 1}

    async def until_on_bus(self, kind: str, name: str, sha: str, timeout: float = 30) -> None:
        """Until our observer has seen a ``kind`` event (artifact-ready, applied, …) about ``name`` at ``sha``."""
        deadline = time.monotonic() + timeout
        while not any(e.revision.endswith(sha) for e in self.bus.of(kind, name)):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {kind} event for {name} at {sha[:12]} on the bus\n{self.logs()}")
            await asyncio.sleep(0.01)

    def logs(self) -> str:
        return "\n".join(f"--- {ctl.name} ---\n{ctl.tail(3000)}" for ctl in self.mesh.controllers)


def setup_objects(namespace: str, git_url: str, sink_url: str, git_interval: str) -> list[KubeObject]:
    meta = {"namespace": namespace}
    src = {"kind": "GitRepository", "name": "repo"}
    ks = {"interval": "10m", "prune": True, "sourceRef": src, "targetNamespace": namespace}
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", **meta}, "stringData": {"token": TOKEN}},
        {
            "apiVersion": SRC,
            "kind": "GitRepository",
            "metadata": {"name": "repo", **meta},
            "spec": {"url": git_url, "interval": git_interval, "ref": {"branch": "main"}},
        },
        {
            "apiVersion": KS,
            "kind": "Kustomization",
            "metadata": {"name": "infra", **meta},
            "spec": {**ks, "path": "./infra"},
        },
        {
            "apiVersion": KS,
            "kind": "Kustomization",
            "metadata": {"name": "apps", **meta},
            "spec": {**ks, "path": "./apps", "wait": True, "timeout": "1m", "dependsOn": [{"name": "infra"}]},
        },
        {
            "apiVersion": NOTIFY,
            "kind": "Provider",
            "metadata": {"name": "sink", **meta},
            "spec": {"type": "generic", "address": f"{sink_url}/hook"},
        },
        {
            "apiVersion": NOTIFY,
            "kind": "Alert",
            "metadata": {"name": "all", **meta},
            "spec": {
                "providerRef": {"name": "sink"},
                "eventSeverity": "info",
                "eventSources": [{"kind": "GitRepository", "name": "*"}, {"kind": "Kustomization", "name": "*"}],
            },
        },
        {
            "apiVersion": RECEIVER,
            "kind": "Receiver",
            "metadata": {"name": "repo", **meta},
            "spec": {
                "type": "generic",
                "secretRef": {"name": "token"},
                "resources": [{"apiVersion": SRC, "kind": "GitRepository", "name": "repo"}],
            },
        },
    ]


@pytest.fixture
async def topics(stack_env: dict[str, str], unique: str) -> Topics:
    names = Topics(f"{unique}.")
    await ensure_topics(stack_env["KAFKA_BOOTSTRAP"], [*names.all(), f"{unique}.notification-retries"], partitions=1)
    return names


@pytest.fixture
def git_interval() -> str:
    """How often the GitRepository polls; long, so that only the Receiver (or a test) starts a fetch."""
    return "10m"


@pytest.fixture
async def flow(
    kube: KubeClient,
    namespace: str,
    stack_env: dict[str, str],
    topics: Topics,
    unique: str,
    tmp_path: Path,
    git_http: GitServer,
    make_repo: Callable[..., Repo],
    git_interval: str,
) -> AsyncIterator[Flow]:
    """Everything up and the first commit applied by both Kustomizations and notified."""
    sink = await Sink().start()
    mesh = mesh_for(stack_env, topics, namespace, tmp_path, group=f"{unique}-nc")
    which = [Topic.ARTIFACT_READY, Topic.APPLIED, Topic.FAILED]
    try:
        async with recording(stack_env["KAFKA_BOOTSTRAP"], topics, f"{unique}-observer", which) as bus:
            await mesh.start()
            f = Flow(kube, namespace, mesh, sink, make_repo("main"), bus)
            sha = f.push(content(1), "first")
            for obj in setup_objects(namespace, git_http.url(f.repo.name), sink.url, git_interval):
                await kube.create(obj)
            f.webhook_path = await receiver_path(kube, namespace, "repo")
            await f.until_applied("apps", sha)
            await f.until_notified("Kustomization", "apps", sha)
            yield f
    finally:
        await mesh.stop()
        await sink.stop()
