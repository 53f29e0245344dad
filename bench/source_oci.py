"""source-controller: OCIRepository no-op reconcile p50, and N OCIRepositories to Ready in flux-benchmark's shape.

The registry is the real distribution registry (gitops_mesh_dev.ociregistry, plain HTTP on loopback); the
artifact is pushed with `gitops-mesh push artifact` (Flux's format): a podinfo-sized directory of manifests.

* No-op: the real OCIRepositoryReconciler, in this process, reconciling an object whose stored artifact
  already has the remote digest (one HEAD on the manifest, nothing downloaded), ``samples`` times.
* Scale: the source-controller as a real process against the stack; N OCIRepositories (each its own
  repository in the registry, as each of Flux's pulls its own) created at once; seconds from creation to all
  Ready, and the peak memory of the controller's process tree (RSS sampled, and the root's VmHWM).
  Flux's anchor (fluxcd/flux-benchmark): 1000 OCIRepositories in 4m17s, 128 MiB, on 16 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.helm_scale import TreeWatch
from bench.kustomize_scale import until_gone, vm_hwm_mib
from bench.measures import Measure, emit, percentile
from gitops_mesh.bus.topics import Topics, ensure_topics
from gitops_mesh.errors import NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.mesh import common_args, free_port, running
from gitops_mesh_dev.namespaces import drop_finalizers
from gitops_mesh_dev.ociregistry import OciRegistry
from gitops_mesh_dev.stack import read_stack_env

SUITE = "source"
API = "source.toolkit.fluxcd.io/v1"
#: podinfo's kustomize manifests are a handful of files of a few KiB.
MANIFEST = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: podinfo-{i}\ndata:\n  payload: '{pad}'\n"


def make_tree(root: Path, files: int = 8) -> None:
    for i in range(files):
        path = root / "podinfo" / f"m{i}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(MANIFEST.format(i=i, pad="x" * 1500))


def push(address: str, repo: str, tree: Path) -> str:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gitops_mesh.cli",
            "push",
            "artifact",
            f"oci://{address}/{repo}:latest",
            f"--path={tree}",
            "--source=https://github.com/stefanprodan/podinfo",
            "--revision=6.7.0@sha1:0123456789abcdef0123456789abcdef01234567",
            "--insecure-registry",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


async def replicate(address: str, source: str, n: int) -> None:
    """The pushed artifact under ``bench/podinfo-<i>`` for each i: its blobs and manifest pushed again."""
    import aiohttp

    from gitops_mesh.oci import RegistryClient, Transport, parse_repository
    from gitops_mesh.oci.manifest import OCI_MANIFEST

    async with aiohttp.ClientSession() as http:
        client = RegistryClient(http, address, transport=Transport(insecure=True))
        origin = parse_repository(f"oci://{address}/{source}")
        data, _ = await client.manifest_bytes(origin, "latest")
        manifest = await client.manifest(origin, "latest")
        blobs = [(d, await client.small_blob(origin, d, 1 << 24)) for d in (manifest.config, *manifest.layers)]
        gate = asyncio.Semaphore(16)

        async def one(i: int) -> None:
            async with gate:
                repo = parse_repository(f"oci://{address}/bench/podinfo-{i}")
                for descriptor, blob in blobs:
                    await client.push_blob(repo, blob, descriptor.media_type)
                await client.push_manifest(repo, "latest", data, OCI_MANIFEST)

        await asyncio.gather(*(one(i) for i in range(n)))


def ocirepo(name: str, ns: str, url: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "OCIRepository",
        "metadata": {"name": name, "namespace": ns, "generation": 1},
        "spec": {"url": url, "interval": "60m", "insecure": True, "ref": {"tag": "latest"}},
    }


async def time_noop(address: str, work: Path, samples: int) -> list[float]:
    """Reconcile an up-to-date OCIRepository ``samples`` times: HEAD, compare, done."""
    import aiohttp

    from gitops_mesh.artifacts.storage import Storage
    from source_controller.ocirepository import OCIRepositoryReconciler

    kube = await KubeClient.connect(read_stack_env()["KUBECONFIG"])
    try:
        async with aiohttp.ClientSession() as http:
            reconciler = OCIRepositoryReconciler(kube, Storage(work / "noop-storage", "127.0.0.1:0"), http)
            obj = ocirepo("noop", "bench", f"oci://{address}/bench/noop")
            await reconciler.reconcile(obj)  # the first one pulls and stores
            times = []
            for _ in range(samples):
                t0 = time.perf_counter()
                outcome = await reconciler.reconcile(obj)
                times.append(time.perf_counter() - t0)
                assert outcome.message
                assert outcome.message.startswith("stored artifact for digest")
            return times
    finally:
        await kube.close()


async def scale(env: dict[str, str], address: str, n: int, concurrent: int, work: Path) -> dict[str, float]:
    tag = f"benchoci{n}-{int(time.time())}"
    kube = await KubeClient.connect(env["KUBECONFIG"])
    try:
        await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": tag}})
        topics = Topics(f"{tag}.")
        await ensure_topics(env["KAFKA_BOOTSTRAP"], topics.all(), partitions=3)
        args = [
            *common_args(env, topics, tag),
            "--log-level=info",
            f"--concurrent={concurrent}",
            f"--storage-path={work / tag / 'storage'}",
            f"--storage-addr=127.0.0.1:{free_port()}",
        ]
        async with running("source-controller", args, work / f"{tag}-source.log") as proc:
            watch = TreeWatch(proc.pid, interval=0.5)
            with watch.watching():
                started = time.perf_counter()
                gate = asyncio.Semaphore(32)

                async def create(i: int) -> None:
                    async with gate:
                        obj = ocirepo(f"podinfo-{i}", tag, f"oci://{address}/bench/podinfo-{i}")
                        del obj["metadata"]["generation"]
                        await kube.create(obj)

                await asyncio.gather(*(create(i) for i in range(n)))
                created = time.perf_counter() - started
                while True:
                    items = (await kube.list(API, "OCIRepository", namespace=tag)).items
                    ready = sum(1 for o in items if c.is_ready(o))
                    if ready == n:
                        break
                    if time.perf_counter() - started > 600:
                        raise TimeoutError(f"only {ready}/{n} OCIRepositories Ready after 600 s")
                    await asyncio.sleep(0.5)
                seconds = time.perf_counter() - started
                watch.take()
            hwm = vm_hwm_mib(proc.pid)
            await drop_finalizers(kube, tag)
        with contextlib.suppress(NotFound):
            await kube.delete("v1", "Namespace", tag)
        await until_gone(kube, [tag])
        return {
            "seconds": seconds,
            "create_seconds": created,
            "tree_peak_rss_mib": watch.peak_rss_mib,
            "tree_peak_pss_mib": watch.peak_pss_mib,
            "root_vmhwm_mib": hwm,
        }
    finally:
        await kube.close()


async def main_async(args: argparse.Namespace) -> None:
    env = read_stack_env()
    work = Path(tempfile.mkdtemp(prefix="bench-oci-"))
    try:
        tree = work / "tree"
        make_tree(tree)
        async with OciRegistry(work / "registry") as registry:
            await asyncio.to_thread(push, registry.address, "bench/noop", tree)
            noop = await time_noop(registry.address, work, args.samples)
            await replicate(registry.address, "bench/noop", args.size)
            run = await scale(env, registry.address, args.size, args.concurrent, work)
        p50 = statistics.median(noop) * 1000
        measures = [
            Measure(
                SUITE,
                "OCIRepository no-op reconcile, unchanged digest (p50)",
                round(p50, 1),
                "ms",
                "<= 50",
                f"p95 {percentile(noop, 95) * 1000:.1f} ms over {len(noop)}; one HEAD, no blob",
            ),
            Measure(
                SUITE,
                f"{args.size} OCIRepositories to Ready",
                round(run["seconds"], 1),
                "s",
                "<= 60" if args.size == 1000 else "",
                "Flux (flux-benchmark): 1000 in 257 s on 16 cores",
            ),
            Measure(
                SUITE,
                f"source-controller process tree peak RSS, {args.size} OCIRepositories",
                round(max(run["tree_peak_rss_mib"], run["root_vmhwm_mib"]), 1),
                "MiB",
                "<= 150" if args.size == 1000 else "",
                "Flux (flux-benchmark): 128 MiB for 1000",
            ),
        ]
        emit(measures, {"noop_ms": [round(t * 1000, 2) for t in noop], "scale": run, "concurrent": args.concurrent})
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1000)
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--concurrent", type=int, default=10)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.size, args.samples = 20, 10
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
