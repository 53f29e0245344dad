"""source-controller: GitRepository artifact build against `git archive HEAD | gzip -6`, and the no-op reconcile.

The repository (default 10,000 files, ~100 MB of YAML-like text) is served over smart HTTP by the real
`git http-backend`. "Ours" is what the GitRepository reconciler does for a new revision — resolve the ref
remotely, fetch shallowly, apply ignore rules, pack and store — timed in a child process so its peak RSS is
its own. The anchor is `git archive HEAD | gzip -6` on the same repository in the same run.
Both run the real GitRepositoryReconciler. The no-op is a full reconcile of an object whose stored artifact
already has the remote's revision.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.artifact_pack import make_tree
from bench.measures import Measure, emit

SUITE = "source"


def sh(*args: str, cwd: Path | None = None) -> None:
    env = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
    subprocess.run(args, cwd=cwd, check=True, env={**__import__("os").environ, **env}, stdout=subprocess.DEVNULL)


def make_repo(work: Path, files: int, mb: float) -> tuple[Path, int]:
    tree = work / "tree"
    tree.mkdir()
    size = make_tree(tree, files, int(mb * (1 << 20)))
    sh("git", "init", "-q", "--initial-branch=main", str(tree))
    sh("git", "add", "-A", cwd=tree)
    sh("git", "commit", "-qm", "bench", cwd=tree)
    sh("git", "clone", "-q", "--bare", str(tree), str(work / "repos" / "bench.git"))
    # Git hosts serve from packs (a push arrives as one, gc keeps it so); loose objects would make every
    # fetch compress the whole repository again on the server.
    sh("git", "-C", str(work / "repos" / "bench.git"), "repack", "-adq")
    return work / "repos" / "bench.git", size


def time_anchor(bare: Path, out: Path, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(["bash", "-o", "pipefail", "-c", f"git -C {bare} archive HEAD | gzip -6 > {out}"], check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def bench_object(url: str) -> dict[str, Any]:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "repo", "namespace": "bench", "generation": 1},
        "spec": {"url": url, "interval": "1m", "ref": {"branch": "main"}},
    }


async def build_once(url: str, storage_dir: Path) -> dict[str, float]:
    """One new-revision reconcile by the real reconciler (run in a child process by the parent)."""
    from gitops_mesh.artifacts.storage import Storage
    from gitops_mesh.kube.client import KubeClient
    from gitops_mesh.kube.informer import Informer
    from gitops_mesh_dev.stack import read_stack_env
    from source_controller.gitrepository import API_VERSION, GitRepositoryReconciler

    kube = await KubeClient.connect(read_stack_env()["KUBECONFIG"])
    try:
        # No includes in the benchmark: the GitRepository cache is never read, so it is not started.
        repositories = Informer(kube, API_VERSION, "GitRepository")
        reconciler = GitRepositoryReconciler(kube, Storage(storage_dir, "127.0.0.1:0"), repositories)
        obj = bench_object(url)
        t0 = time.perf_counter()
        await reconciler.reconcile(obj)
        seconds = time.perf_counter() - t0
    finally:
        await kube.close()
    return {
        "seconds": seconds,
        "size": obj["status"]["artifact"]["size"],
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "git_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def time_ours(url: str, work: Path, repeat: int) -> dict[str, float]:
    runs = []
    for i in range(repeat):
        storage = work / f"storage{i}"
        out = subprocess.run(
            [sys.executable, "-m", "bench.source_git", "--build-once", url, str(storage)],
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        shutil.rmtree(storage, ignore_errors=True)
    best: dict[str, float] = min(runs, key=lambda r: r["seconds"])
    best["rss_mib"] = max(r["rss_mib"] for r in runs)
    best["git_rss_mib"] = max(r["git_rss_mib"] for r in runs)
    return best


async def time_noop(url: str, work: Path, samples: int) -> list[float]:
    """Reconcile an up-to-date GitRepository ``samples`` times: ls-remote, compare, done."""
    from gitops_mesh.artifacts.storage import Storage
    from gitops_mesh.kube.client import KubeClient
    from gitops_mesh.kube.informer import Informer
    from gitops_mesh_dev.stack import read_stack_env
    from source_controller.gitrepository import API_VERSION, GitRepositoryReconciler

    kube = await KubeClient.connect(read_stack_env()["KUBECONFIG"])
    try:
        repositories = Informer(kube, API_VERSION, "GitRepository")
        reconciler = GitRepositoryReconciler(kube, Storage(work / "noop-storage", "127.0.0.1:0"), repositories)
        obj = bench_object(url)
        await reconciler.reconcile(obj)  # the first one builds
        times = []
        for _ in range(samples):
            t0 = time.perf_counter()
            outcome = await reconciler.reconcile(obj)
            times.append(time.perf_counter() - t0)
            assert outcome.message
            assert "stored artifact" in outcome.message
        return times
    finally:
        await kube.close()


async def main_async(args: argparse.Namespace) -> None:
    from gitops_mesh_dev.gitserver import GitServer

    work = Path(tempfile.mkdtemp(prefix="bench-source-"))
    try:
        bare, size = make_repo(work, args.files, args.mb)
        async with GitServer(work / "repos") as server:
            url = server.url("bench")
            anchor = await asyncio.to_thread(time_anchor, bare, work / "anchor.tar.gz", args.repeat)
            ours = await asyncio.to_thread(time_ours, url, work, args.repeat)
            noop = await time_noop(url, work, args.samples)
        ratio = ours["seconds"] / anchor
        p50 = statistics.median(noop) * 1000
        shape = f"{args.files} files / {size / (1 << 20):.0f} MiB"
        emit(
            [
                Measure(
                    SUITE,
                    f"artifact build / git archive|gzip -6 ({shape})",
                    round(ratio, 2),
                    "x",
                    "<= 1.5",
                    f"git archive HEAD | gzip -6 = {anchor:.2f} s; ours = {ours['seconds']:.2f} s",
                ),
                Measure(
                    SUITE,
                    "artifact build peak RSS (controller side)",
                    round(ours["rss_mib"], 1),
                    "MiB",
                    "",
                    f"git subprocess peak {ours['git_rss_mib']:.0f} MiB",
                ),
                Measure(
                    SUITE,
                    "no-op reconcile, unchanged revision (p50)",
                    round(p50, 1),
                    "ms",
                    "<= 50",
                    f"p95 {sorted(noop)[int(len(noop) * 0.95) - 1] * 1000:.1f} ms over {len(noop)}",
                ),
            ],
            {"anchor_seconds": anchor, "ours": ours, "noop_ms": [round(t * 1000, 2) for t in noop]},
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--mb", type=float, default=100.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--samples", type=int, default=30)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--build-once", nargs=2, metavar=("URL", "STORAGE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.build_once:
        print(json.dumps(asyncio.run(build_once(args.build_once[0], Path(args.build_once[1])))))
        return
    if args.quick:
        args.files, args.mb, args.repeat, args.samples = 1000, 10.0, 1, 10
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
