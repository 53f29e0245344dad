"""Push → applied latency through a Receiver: webhook POST to the new commit applied, p50/p99 over N pushes.

The three controllers run as real processes against the local stack (one namespace, one topic prefix). A
repository served over smart HTTP holds a ConfigMap and a Deployment; a GitRepository and a Kustomization
follow it with a 1 h interval, so only the generic Receiver (which names the GitRepository) triggers
fetches. Each round changes the ConfigMap's data, commits and pushes; then, like a git host calling the
hook once the push is stored, t0 is taken right before the POST to the Receiver's URL. The latency ends
when the Kustomization reads Ready=True with ``lastAppliedRevision`` at the new commit (polled every
~20 ms), and the ConfigMap in the cluster must then carry the new data. The push itself is not counted; its
duration is kept in the details. The Kustomization has no ``wait``: this measures applied, not rolled out.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bench.measures import Measure, emit, percentile
from bench.notification_fanout import delete_topics
from gitops_mesh.bus.topics import Topics, ensure_topics
from gitops_mesh.errors import NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.mesh import Mesh, mesh_for
from gitops_mesh_dev.namespaces import drop_finalizers
from gitops_mesh_dev.repos import Repo
from gitops_mesh_dev.stack import read_stack_env
from gitops_mesh_dev.waits import receiver_path, until_applied
from notification_controller.records import RETRY_TOPIC

SUITE = "push"
SRC = "source.toolkit.fluxcd.io/v1"
KS = "kustomize.toolkit.fluxcd.io/v1"
RECEIVER = "notification.toolkit.fluxcd.io/v1"
TOKEN = "bench-receiver-token"
POLL = 0.02
ANCHOR = "Flux: Receiver → GitRepository → Kustomization chain"
DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 1
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers: [{name: app, image: "ghcr.io/stefanprodan/podinfo:6.7.0"}]
"""
KUSTOMIZATION = "resources: [config.yaml, deployment.yaml]\n"


def config(round_: int) -> str:
    return f'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\ndata:\n  round: "{round_}"\n'


def objects(ns: str, url: str) -> list[KubeObject]:
    """GitRepository, Kustomization, the token Secret and the Receiver; 1 h intervals so only the hook fetches."""
    return [
        {
            "apiVersion": SRC,
            "kind": "GitRepository",
            "metadata": {"name": "app", "namespace": ns},
            "spec": {"url": url, "interval": "1h", "ref": {"branch": "main"}},
        },
        {
            "apiVersion": KS,
            "kind": "Kustomization",
            "metadata": {"name": "app", "namespace": ns},
            "spec": {
                "interval": "1h",
                "path": "./app",
                "prune": True,
                "sourceRef": {"kind": "GitRepository", "name": "app"},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "token", "namespace": ns},
            "data": {"token": base64.b64encode(TOKEN.encode()).decode()},
        },
        {
            "apiVersion": RECEIVER,
            "kind": "Receiver",
            "metadata": {"name": "push", "namespace": ns},
            "spec": {
                "type": "generic",
                "secretRef": {"name": "token"},
                "resources": [{"kind": "GitRepository", "name": "app"}],
            },
        },
    ]


async def measure(kube: KubeClient, mesh: Mesh, repo: Repo, ns: str, url: str, pushes: int) -> dict[str, Any]:
    for obj in objects(ns, url):
        await kube.create(obj)
    await until_applied(kube, ns, "app", repo.head(), timeout=120, poll=POLL)
    hook = mesh.receiver_url(await receiver_path(kube, ns, "push", timeout=60))
    latencies, push_seconds = [], []
    async with aiohttp.ClientSession() as http:
        for i in range(1, pushes + 1):
            started = time.perf_counter()
            sha = repo.commit({"app/config.yaml": config(i)}, f"round {i}")
            repo.push()
            push_seconds.append(time.perf_counter() - started)
            t0 = time.perf_counter()
            async with http.post(hook, json={"round": i}) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"Receiver answered {resp.status}: {await resp.text()}")
            await until_applied(kube, ns, "app", sha, timeout=60, poll=POLL)
            latencies.append(time.perf_counter() - t0)
            cm = await kube.get("v1", "ConfigMap", "app-config", namespace=ns)
            if cm.get("data", {}).get("round") != str(i):
                raise RuntimeError(f"round {i}: applied at {sha} but the ConfigMap holds {cm.get('data')}")
    return {"latencies": latencies, "push_seconds": push_seconds}


async def remove_namespace(kube: KubeClient, ns: str) -> None:
    await drop_finalizers(kube, ns)  # the controllers are stopped: nobody else would remove them
    with contextlib.suppress(NotFound):
        await kube.delete("v1", "Namespace", ns)


async def main_async(pushes: int, keep: bool) -> None:
    env = read_stack_env()
    tag = f"bench-push-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="bench-push-"))
    topics = Topics(f"{tag}.")
    kube = await KubeClient.connect(env["KUBECONFIG"])
    mesh: Mesh | None = None
    try:
        await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": tag}})
        await ensure_topics(env["KAFKA_BOOTSTRAP"], topics.all(), partitions=1)
        repo = Repo(work / "repos", "app", branch="main")
        repo.commit(
            {"app/kustomization.yaml": KUSTOMIZATION, "app/config.yaml": config(0), "app/deployment.yaml": DEPLOYMENT}
        )
        repo.push()
        mesh = mesh_for(env, topics, tag, work, f"{tag}-notification")
        await mesh.start()
        async with GitServer(work / "repos") as server:
            run = await measure(kube, mesh, repo, tag, server.url("app"), pushes)
    finally:
        try:
            if mesh is not None:
                await mesh.stop()
            await remove_namespace(kube, tag)
        finally:
            # Even with the apiserver gone, the topics and the workdir still go.
            await kube.close()
            await delete_topics(env["KAFKA_BOOTSTRAP"], [*topics.all(), f"{topics.prefix}{RETRY_TOPIC}"])
            if keep:
                print(f"kept {work} (controller logs for a breakdown)", file=sys.stderr)
            else:
                shutil.rmtree(work, ignore_errors=True)
    ms = [round(s * 1000, 1) for s in run["latencies"]]
    p50, p99 = percentile(run["latencies"], 50), percentile(run["latencies"], 99)
    measures = [
        Measure(SUITE, f"push → applied through a Receiver, p50 of {pushes}", round(p50, 3), "s", "<= 1", ANCHOR),
        Measure(SUITE, f"push → applied through a Receiver, p99 of {pushes}", round(p99, 3), "s", "<= 2", ANCHOR),
    ]
    emit(
        measures,
        {
            "pushes": pushes,
            "cpus": os.cpu_count(),
            "latency_ms": ms,
            "mean_ms": round(statistics.fmean(ms), 1),
            "push_ms": [round(s * 1000, 1) for s in run["push_seconds"]],
            "percentiles": "nearest rank over the N samples: p99 is the max when N < 100",
            "clock": "t0 right before the POST to the Receiver (after the push is stored); end when the "
            f"Kustomization is Ready at the new commit, polled every {POLL * 1000:.0f} ms",
            "kustomization": "prune true, no wait: applied, not rolled out; intervals 1 h so only the hook fetches",
        },
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pushes", type=int, default=50)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--keep-workdir", action="store_true", help="keep the controllers' logs, to see where time goes")
    args = p.parse_args()
    asyncio.run(main_async(5 if args.quick else args.pushes, args.keep_workdir))


if __name__ == "__main__":
    main()
