"""kustomize-controller at scale, in Flux's benchmark shape (fluxcd/flux-benchmark, flux-ks-bench).

N Kustomizations are created at once, each applying a ServiceAccount, a Service, a Deployment (replicas 0)
and an Ingress named after its index (postBuild substitution), into a targetNamespace, impersonating a
service account, with `wait: true` and `prune: true`. All follow ONE GitRepository (Flux's benchmark gives
each its own; the apply work is the same). Measured: seconds from creating them to all Ready, and the
kustomize-controller's peak RSS (VmHWM). Both controllers run as real processes against the local stack.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.measures import Measure, emit
from gitops_mesh.bus.topics import Topics, ensure_topics
from gitops_mesh.errors import NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.mesh import common_args, free_port, running
from gitops_mesh_dev.namespaces import drop_finalizers
from gitops_mesh_dev.repos import Repo
from gitops_mesh_dev.stack import read_stack_env

SUITE = "kustomize"
MANIFESTS = """apiVersion: v1
kind: ServiceAccount
metadata:
  name: podinfo-${index}
---
apiVersion: v1
kind: Service
metadata:
  name: podinfo-${index}
spec:
  selector: {app: "podinfo-${index}"}
  ports: [{name: http, port: 9898, targetPort: 9898}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo-${index}
spec:
  replicas: 0
  selector: {matchLabels: {app: "podinfo-${index}"}}
  template:
    metadata: {labels: {app: "podinfo-${index}"}}
    spec:
      serviceAccountName: podinfo-${index}
      containers: [{name: podinfo, image: "ghcr.io/stefanprodan/podinfo:6.7.0", ports: [{containerPort: 9898}]}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: podinfo-${index}
spec:
  rules:
  - host: podinfo-${index}.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: "podinfo-${index}", port: {number: 9898}}}
"""


def kustomization(ns: str, apps: str, i: int) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": f"podinfo-{i}", "namespace": ns},
        "spec": {
            "interval": "60m",
            "path": "./podinfo",
            "prune": True,
            "wait": True,
            "timeout": "5m",
            "targetNamespace": apps,
            "serviceAccountName": "applier",
            "sourceRef": {"kind": "GitRepository", "name": "podinfo"},
            "postBuild": {"substitute": {"index": str(i)}},
        },
    }


async def setup_namespaces(kube: KubeClient, ns: str, apps: str) -> None:
    for name in (ns, apps):
        await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    await kube.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "applier", "namespace": ns}})
    await kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{ns}-applier"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "applier", "namespace": ns}],
        }
    )


async def until_source_ready(kube: KubeClient, ns: str) -> None:
    async with asyncio.timeout(120):
        while True:
            if c.is_ready(await kube.get("source.toolkit.fluxcd.io/v1", "GitRepository", "podinfo", namespace=ns)):
                return
            await asyncio.sleep(0.2)


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run_once(
    kube: KubeClient, env: dict[str, str], server: GitServer, url: str, n: int, concurrent: int, work: Path
) -> dict[str, float]:
    tag = f"bench{n}-{int(time.time())}"
    ns, apps = tag, f"{tag}-apps"
    await setup_namespaces(kube, ns, apps)
    topics = Topics(f"{tag}.")
    await ensure_topics(env["KAFKA_BOOTSTRAP"], topics.all(), partitions=3)
    common = [*common_args(env, topics, ns), "--log-level=info", f"--concurrent={concurrent}"]
    source = [*common, f"--storage-path={work / tag / 'storage'}", f"--storage-addr=127.0.0.1:{free_port()}"]
    kustomize = [
        *common,
        f"--kustomize-path={env['KUSTOMIZE']}",
        f"--tree-cache-dir={work / tag / 'trees'}",
        "--health-poll=1s",
    ]
    async with (
        running("source-controller", source, work / f"{tag}-source.log"),
        running("kustomize-controller", kustomize, work / f"{tag}-kustomize.log") as kproc,
    ):
        await kube.create(
            {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": "podinfo", "namespace": ns},
                "spec": {"url": url, "interval": "60m", "ref": {"branch": "main"}},
            }
        )
        await until_source_ready(kube, ns)
        started = time.perf_counter()
        gate = asyncio.Semaphore(32)

        async def create(i: int) -> None:
            async with gate:
                await kube.create(kustomization(ns, apps, i))

        await asyncio.gather(*(create(i) for i in range(n)))
        created = time.perf_counter() - started
        while True:
            items = (await kube.list("kustomize.toolkit.fluxcd.io/v1", "Kustomization", namespace=ns)).items
            ready = sum(1 for k in items if c.is_ready(k))
            if ready == n:
                break
            if time.perf_counter() - started > 600:
                raise TimeoutError(f"only {ready}/{n} Kustomizations Ready after 600 s")
            await asyncio.sleep(0.5)
        seconds = time.perf_counter() - started
        rss = vm_hwm_mib(kproc.pid)
        # Leave nothing behind: drop the finalizers (the controllers stop next), then the namespaces.
        await drop_finalizers(kube, ns)
    for name in (ns, apps):
        with contextlib.suppress(NotFound):
            await kube.delete("v1", "Namespace", name)
    await kube.delete("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", f"{ns}-applier")
    # Thousands of objects are being garbage-collected now: wait, so the next run or suite does not pay for it.
    await until_gone(kube, [ns, apps])
    return {"seconds": seconds, "create_seconds": created, "rss_mib": rss}


async def until_gone(kube: KubeClient, namespaces: list[str], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    for name in namespaces:
        while time.monotonic() < deadline:
            try:
                await kube.get("v1", "Namespace", name)
            except NotFound:
                break
            await asyncio.sleep(1)


async def main_async(args: argparse.Namespace) -> None:
    env = read_stack_env()
    work = Path(tempfile.mkdtemp(prefix="bench-ks-"))
    try:
        repo = Repo(work / "repos", "podinfo", branch="main")
        repo.commit({"podinfo/all.yaml": MANIFESTS})
        repo.push()
        kube = await KubeClient.connect(env["KUBECONFIG"])
        measures, details = [], {}
        try:
            async with GitServer(work / "repos") as server:
                for n in args.sizes:
                    r = await run_once(kube, env, server, server.url("podinfo"), n, args.concurrent, work)
                    details[str(n)] = r
                    target = "<= 60" if n == 1000 else ""
                    measures.append(
                        Measure(
                            SUITE,
                            f"{n} Kustomizations to Ready (wait, prune, SA, substitution)",
                            round(r["seconds"], 1),
                            "s",
                            target,
                            "Flux 2.9: 1000 in 253 s on 16 cores (one GitRepository each)",
                        )
                    )
                    measures.append(
                        Measure(
                            SUITE,
                            f"kustomize-controller peak RSS, {n} Kustomizations",
                            round(r["rss_mib"], 1),
                            "MiB",
                            "<= 150" if n == 1000 else "",
                            "Flux 2.9: 223 MiB for 1000",
                        )
                    )
        finally:
            await kube.close()
        emit(measures, {"runs": details, "concurrent": args.concurrent, "sources": "one GitRepository for all"})
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[100, 1000])
    p.add_argument("--concurrent", type=int, default=20)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.sizes = [20]
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
