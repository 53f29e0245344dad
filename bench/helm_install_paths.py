"""helm-controller's two install paths side by side: the direct install and helm's own, one release at a time.

The same chart (bench/charts/podinfo with flux-hr-bench's values) and the same request (server-side apply, Flux's
origin labels, the apiserver validating fields) go through ``HelmActions.install`` twice over: once where the
direct install takes it (``helm install --dry-run=server -o json`` renders; helm-controller applies and writes the
release record) and once with direct installs off (``helm install`` with the origin-label post-renderer plugin).
Per release: wall time, the CPU of the helm processes (and the plugin) from RUSAGE_CHILDREN, the controller's
own CPU in this process, and the apiserver's and etcd's CPU from /proc. Each path installs into its own
namespace, removed afterwards. The first install of each path is a warm-up and not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.helm_scale import CHART, FLUX_HR_VALUES, cpu_of
from bench.measures import Measure, emit
from gitops_mesh.helmcli import helm_env
from gitops_mesh.kube import KubeClient
from gitops_mesh_dev.namespaces import drop_finalizers
from gitops_mesh_dev.stack import STACK_DIR, read_stack_env
from helm_controller.actions import ActionRequest, HelmActions, KubeAccess
from helm_controller.post_renderers import PostRender

SUITE = "helm"


def _pid(part: str) -> int:
    return int((STACK_DIR / "run" / f"{part}.pid").read_text().strip())


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def one_path(
    kube: KubeClient, env: dict[str, str], chart: Path, work: Path, direct: bool, n: int
) -> dict[str, Any]:
    name = "direct" if direct else "helm"
    ns = f"bench-install-{name}-{int(time.time())}"
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    actions = HelmActions(env["HELM"], work / name, direct_installs=direct)
    access = KubeAccess(Path(env["KUBECONFIG"]), client=kube, server_validates_fields=True)
    origin = {"helm.toolkit.fluxcd.io/name": "podinfo", "helm.toolkit.fluxcd.io/namespace": ns}

    def request(i: int) -> ActionRequest:
        return ActionRequest(
            release_name=f"podinfo-{i}",
            target_namespace=ns,
            storage_namespace=ns,
            chart_path=chart,
            values=FLUX_HR_VALUES,
            timeout=60,
            max_history=5,
            kube=access,
            post_render=PostRender((), labels=origin),
        )

    try:
        await actions.install(request(-1))  # warm-up: discovery cache, first connections
        apiserver, etcd = _pid("kube-apiserver"), _pid("etcd")
        children, own, api0, etcd0 = _children_cpu(), time.process_time(), cpu_of(apiserver), cpu_of(etcd)
        started = time.perf_counter()
        for i in range(n):
            await actions.install(request(i))
        wall = time.perf_counter() - started
        per_release = {
            "wall_s": wall / n,
            "helm_cpu_s": (_children_cpu() - children) / n,
            "controller_cpu_s": (time.process_time() - own) / n,
            "apiserver_cpu_s": (cpu_of(apiserver) - api0) / n,
            "etcd_cpu_s": (cpu_of(etcd) - etcd0) / n,
        }
        total = sum(v for k, v in per_release.items() if k != "wall_s")
        result: dict[str, Any] = {k: round(v, 3) for k, v in per_release.items()}
        result |= {"installs": dict(actions.installs), "total_cpu_s": round(total, 3)}
        return result
    finally:
        await drop_finalizers(kube, ns)
        await kube.delete("v1", "Namespace", ns)


def package_chart(helm: str, work: Path) -> Path:
    """bench/charts/podinfo as the archive helm-controller installs from."""
    home = work / "home"
    home.mkdir()
    subprocess.run([helm, "package", str(CHART), "-d", str(work)], check=True, capture_output=True, env=helm_env(home))
    return next(work.glob("*.tgz"))


async def main_async(args: argparse.Namespace) -> None:
    env = read_stack_env()
    work = Path(tempfile.mkdtemp(prefix="bench-install-"))
    try:
        chart = await asyncio.to_thread(package_chart, env["HELM"], work)
        n = 5 if args.quick else args.releases
        async with await KubeClient.connect(env["KUBECONFIG"]) as kube:
            direct = await one_path(kube, env, chart, work, True, n)
            helm = await one_path(kube, env, chart, work, False, n)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = round(helm["total_cpu_s"] / direct["total_cpu_s"], 2) if direct["total_cpu_s"] else 0.0
    emit(
        [
            Measure(
                SUITE,
                "direct install, wall per release (one at a time)",
                direct["wall_s"],
                "s",
                "",
                f"helm install: {helm['wall_s']} s",
            ),
            Measure(
                SUITE,
                "direct install, CPU per release (helm + controller + apiserver + etcd)",
                direct["total_cpu_s"],
                "s",
                "",
                f"helm install: {helm['total_cpu_s']} s ({ratio}x)",
            ),
        ],
        {"releases": n, "direct": direct, "helm": helm, "cores": os.cpu_count()},
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--releases", type=int, default=20, help="installs per path (after one warm-up)")
    p.add_argument("--quick", action="store_true")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
