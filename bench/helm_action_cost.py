"""The cost of one Helm action on this machine: the real helm 4 against the stack's apiserver (issue #12's design question).

How a HelmRelease's action can run, and what each costs per release:

- **install / upgrade, one helm subprocess per action** (what helm-controller does): helm-controller's own argv
  (``helm_controller.actions.install_args`` / ``upgrade_args``: ``--wait=hookOnly``, server-side apply, values in
  a file), so the figure is the controller's. Wall and CPU time per release, peak RSS per helm process, and
  releases per second with 1, 2 and 4 helm processes at once (the controller's ``--concurrent``).
- **helm template** (render only): the floor if we rendered with helm and applied ourselves while writing Helm's
  release records; what install costs beyond it is the apply, the storage writes and the client's setup.
- **helm version**: the floor of any helm process (start a Go binary, parse flags, exit).
- **install without OpenAPI validation**: the same install with ``--disable-openapi-validation``; the difference
  is what each helm process spends fetching and parsing the apiserver's OpenAPI schema — work a long-lived
  helper (one process serving many actions) would do once, and the part of the per-process cost it could save.

Each helm process is waited for with ``os.wait4``, so its CPU (user + system) and peak RSS (ru_maxrss) are its
own, exact, not sampled. Chart: the benchmark's podinfo-like chart (bench/charts/podinfo), with flux-hr-bench's
values (0 replicas, ServiceAccount, Ingress, resource requests).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.helm_scale import CHART, cpu_of
from bench.helm_scale import FLUX_HR_VALUES as BENCH_VALUES
from bench.measures import Measure, emit, percentile
from gitops_mesh import commands
from gitops_mesh.errors import NotFound
from gitops_mesh.helmcli import helm_env
from gitops_mesh.kube.client import KubeClient
from gitops_mesh_dev.stack import read_stack_env
from helm_controller.actions import ActionRequest, KubeAccess, install_args, upgrade_args

SUITE = "helm-action"
#: one helm process never takes this long here; past it the process group is killed and the run fails
PROCESS_DEADLINE = 120.0
#: releases per second that 1000 HelmReleases in <= 3 min (the issue's target) need
NEEDED_RATE = round(1000 / 180, 1)


@dataclass(frozen=True, slots=True)
class Run:
    """One helm process: wall seconds, CPU seconds (user + system), peak RSS in MiB, exit status."""

    wall: float
    cpu: float
    rss_mib: float
    status: int


def run_helm_measured(helm: str, args: Sequence[str], home: Path) -> Run:
    """helm ``args`` to its end in its own session, reaped by ``wait4`` for its own rusage."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [helm, *args],
        env=helm_env(home),
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    # A hung helm must not hang the bench: the whole group is killed at the deadline.
    watchdog = threading.Timer(PROCESS_DEADLINE, lambda: _kill_group(proc.pid))
    watchdog.start()
    try:
        assert proc.stderr is not None
        err = proc.stderr.read()  # to EOF, so a chatty helm never blocks on a full pipe
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        watchdog.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(
            f"helm {args[0]} exited {proc.returncode}: {commands.one_line(err.decode(errors='replace'))}"
        )
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def values_file(work: Path, values: dict[str, Any]) -> Path:
    path = work / "values.json"  # JSON is YAML, as the controller writes it
    path.write_bytes(orjson.dumps(values))
    return path


def request(name: str, namespace: str, chart: Path, kubeconfig: Path) -> ActionRequest:
    return ActionRequest(
        release_name=name,
        target_namespace=namespace,
        storage_namespace=namespace,
        chart_path=chart,
        values=BENCH_VALUES,
        timeout=300.0,
        max_history=5,
        kube=KubeAccess(kubeconfig=kubeconfig),
    )


@dataclass(frozen=True, slots=True)
class Round:
    """``releases`` helm processes, ``concurrency`` at a time: each process's figures and the round's wall time."""

    runs: list[Run]
    wall: float
    #: CPU seconds the stack's kube-apiserver spent during the round (other users of the stack included)
    apiserver_cpu: float

    @property
    def rate(self) -> float:
        return len(self.runs) / self.wall

    def summary(self) -> dict[str, float]:
        walls, cpus, rss = [r.wall for r in self.runs], [r.cpu for r in self.runs], [r.rss_mib for r in self.runs]
        return {
            "releases": len(self.runs),
            "round_seconds": round(self.wall, 2),
            "per_second": round(self.rate, 2),
            "wall_p50": round(percentile(walls, 50), 3),
            "wall_p95": round(percentile(walls, 95), 3),
            "cpu_mean": round(sum(cpus) / len(cpus), 3),
            "rss_max_mib": round(max(rss), 1),
            "rss_p50_mib": round(percentile(rss, 50), 1),
            "apiserver_cpu_per_release": round(self.apiserver_cpu / len(self.runs), 3),
        }


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of ``pid`` from /proc (0 when there is none to read)."""
    return 0.0 if pid is None else cpu_of(pid)


def apiserver_pid(stack_dir: str) -> int | None:
    """The kube-apiserver of this stack (its command line names the stack's directory), if it runs here."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"kube-apiserver") and any(stack_dir.encode() in a for a in argv):
            return int(entry.name)
    return None


def run_round(n: int, concurrency: int, one: Callable[[int], Run], apiserver: int | None) -> Round:
    cpu0, started = cpu_seconds(apiserver), time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        runs = list(pool.map(one, range(n)))
    return Round(runs, time.perf_counter() - started, cpu_seconds(apiserver) - cpu0)


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def package(helm: str, work: Path) -> Path:
    """The bench chart as helm packages it: the .tgz a HelmChart's artifact would be."""
    out = work / "chart"
    await commands.run(
        [helm, "package", str(CHART), "--destination", str(out)], env=helm_env(work / "pkg-home"), timeout=60
    )
    (archive,) = out.glob("*.tgz")
    return archive


async def namespace(kube: KubeClient, name: str) -> None:
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


async def drop_namespace(kube: KubeClient, name: str) -> None:
    with contextlib.suppress(NotFound):
        await kube.delete("v1", "Namespace", name)


@dataclass
class Results:
    version: Round
    template: Round
    #: install as the controller runs it, plus --disable-openapi-validation: what a helm process spends on
    #: fetching and parsing the apiserver's OpenAPI schema, which a long-lived helper would do once
    install_no_openapi: Round
    #: concurrency -> action -> round
    levels: dict[int, dict[str, Round]]


def measure_all(
    helm: str, kubeconfig: Path, chart: Path, work: Path, tag: str, n: int, levels: Sequence[int], apiserver: int | None
) -> Results:
    """Every round, in threads (each helm process is waited for by its own thread)."""
    vals = values_file(work, BENCH_VALUES)

    def home(kind: str, i: int) -> Path:
        return work / "homes" / f"{kind}-{i}-{time.monotonic_ns()}"  # private, as the controller's per action

    def version(i: int) -> Run:
        return run_helm_measured(helm, ["version"], home("version", i))

    def template(i: int) -> Run:
        args = ["template", f"podinfo-{i}", str(chart), "--namespace", f"{tag}-t", "--values", str(vals)]
        return run_helm_measured(helm, args, home("template", i))

    def install(ns: str, extra: Sequence[str] = ()) -> Callable[[int], Run]:
        def one(i: int) -> Run:
            args = install_args(request(f"podinfo-{i}", ns, chart, kubeconfig), vals)
            return run_helm_measured(helm, [*args, *extra], home("install", i))

        return one

    def upgrade(ns: str) -> Callable[[int], Run]:
        def one(i: int) -> Run:
            args = upgrade_args(request(f"podinfo-{i}", ns, chart, kubeconfig), vals, last_apply_method="ssa")
            return run_helm_measured(helm, args, home("upgrade", i))

        return one

    by_level: dict[int, dict[str, Round]] = {}
    for c in levels:
        ns = f"{tag}-c{c}"
        by_level[c] = {
            "install": run_round(n, c, install(ns), apiserver),
            "upgrade": run_round(n, c, upgrade(ns), apiserver),
        }
    return Results(
        version=run_round(n, 1, version, apiserver),
        template=run_round(n, 1, template, apiserver),
        install_no_openapi=run_round(n, 1, install(f"{tag}-x", ["--disable-openapi-validation"]), apiserver),
        levels=by_level,
    )


async def main_async(args: argparse.Namespace) -> None:
    env = read_stack_env()
    helm, kubeconfig = env["HELM"], Path(env["KUBECONFIG"])
    tag = f"bench-helm-cost-{int(time.time())}"
    namespaces = [*(f"{tag}-c{c}" for c in args.concurrency), f"{tag}-x"]
    apiserver = apiserver_pid(env.get("STACK_DIR", ""))
    kube = await KubeClient.connect(str(kubeconfig))
    try:
        with workdir("bench-helm-cost-") as work:
            chart = await package(helm, work)
            for ns in namespaces:
                await namespace(kube, ns)
            try:
                r = await asyncio.to_thread(
                    measure_all, helm, kubeconfig, chart, work, tag, args.releases, args.concurrency, apiserver
                )
            finally:
                for ns in namespaces:
                    await drop_namespace(kube, ns)
    finally:
        await kube.close()
    emit(*report(r, args.releases, apiserver is not None))


def report(r: Results, n: int, saw_apiserver: bool) -> tuple[list[Measure], dict[str, Any]]:
    version, template, lean = r.version.summary(), r.template.summary(), r.install_no_openapi.summary()
    first = r.levels[min(r.levels)]
    inst, upg = first["install"].summary(), first["upgrade"].summary()
    floor = f"helm template {template['wall_p50']} s, {template['cpu_mean']} s CPU, {template['rss_max_mib']} MiB"
    measures = [
        Measure(SUITE, "helm install subprocess, wall per release (1 at a time)", inst["wall_p50"], "s", "", floor),
        Measure(SUITE, "helm install subprocess, CPU per release", inst["cpu_mean"], "s", "", floor),
        Measure(SUITE, "helm install, peak RSS of one helm process", inst["rss_max_mib"], "MiB", "", floor),
        Measure(
            SUITE,
            "helm install without OpenAPI validation, CPU per release",
            lean["cpu_mean"],
            "s",
            "",
            f"schema fetched+parsed per process; {lean['rss_max_mib']} MiB",
        ),
        Measure(SUITE, "helm upgrade subprocess, wall per release (1 at a time)", upg["wall_p50"], "s", "", floor),
        Measure(SUITE, "helm upgrade subprocess, CPU per release", upg["cpu_mean"], "s", "", floor),
        Measure(
            SUITE,
            "helm template (render only), wall per release",
            template["wall_p50"],
            "s",
            "",
            f"helm version {version['wall_p50']} s, {version['cpu_mean']} s CPU, {version['rss_max_mib']} MiB",
        ),
        Measure(SUITE, "helm template (render only), CPU per release", template["cpu_mean"], "s"),
        Measure(SUITE, "helm template, peak RSS of one helm process", template["rss_max_mib"], "MiB"),
    ]
    for c, rounds in sorted(r.levels.items()):
        s = rounds["install"].summary()
        measures.append(
            Measure(
                SUITE,
                f"helm installs per second, {c} helm at once",
                s["per_second"],
                "/s",
                f">= {NEEDED_RATE}",
                "1000 HelmReleases in 180 s need it",
            )
        )
    details: dict[str, Any] = {
        "releases_per_round": n,
        "helm_version": version,
        "helm_template": template,
        "helm_install_no_openapi_validation": lean,
        "by_concurrency": {
            str(c): {action: rnd.summary() for action, rnd in rounds.items()} for c, rounds in sorted(r.levels.items())
        },
        "cpus": os.cpu_count(),
        "rusage": "each helm process reaped with wait4: its own user+system CPU and ru_maxrss",
        "apiserver_cpu": "delta of the stack's kube-apiserver utime+stime over each round, per release; the stack "
        "is shared, so other users' load is included"
        if saw_apiserver
        else "kube-apiserver not found on this machine: not measured",
    }
    return measures, details


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--releases", type=int, default=40, help="helm processes per round")
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.releases = 8
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
