"""Idle RSS of each controller: started against the local stack with nothing to reconcile, settled, measured."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from pathlib import Path

from bench.kustomize_scale import vm_hwm_mib
from bench.measures import Measure, emit
from gitops_mesh.bus.topics import Topics, ensure_topics
from gitops_mesh_dev.mesh import common_args, free_port, running
from gitops_mesh_dev.stack import read_stack_env

SUITE = "idle"


def vm_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def main_async(settle: float) -> None:
    env = read_stack_env()
    work = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    topics = Topics("bench-idle.")
    await ensure_topics(env["KAFKA_BOOTSTRAP"], topics.all(), partitions=1)
    common = common_args(env, topics, "bench-idle-empty")
    controllers = {
        "source-controller": [*common, f"--storage-path={work / 'storage'}", f"--storage-addr=127.0.0.1:{free_port()}"],
        "kustomize-controller": [*common, f"--kustomize-path={env['KUSTOMIZE']}", f"--tree-cache-dir={work / 'trees'}"],
        "notification-controller": [*common, f"--receiver-addr=127.0.0.1:{free_port()}"],
    }
    measures, details = [], {}
    try:
        for name, args in controllers.items():
            async with running(name, args, work / f"{name}.log") as proc:
                await asyncio.sleep(settle)
                rss, peak = vm_rss_mib(proc.pid), vm_hwm_mib(proc.pid)
            details[name] = {"rss_mib": rss, "peak_mib": peak}
            measures.append(Measure(SUITE, f"{name} idle RSS", round(rss, 1), "MiB", "<= 60", f"peak {peak:.0f} MiB"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    emit(measures, {"settle_seconds": settle, **details})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--settle", type=float, default=10.0)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    asyncio.run(main_async(3.0 if args.quick else args.settle))


if __name__ == "__main__":
    main()
