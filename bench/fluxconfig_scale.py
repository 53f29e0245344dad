"""fluxconfig-controller at scale: N FluxConfigs x 3 Kustomizations, from creation to all Compliant.

Each FluxConfig is the mission's shape, three entries in a dependency chain (``infra-controllers`` ←
``infra-configs`` ← ``apps``, as fluxcd/flux2-kustomize-helm-example lays out a fleet) on its own
GitRepository (the config's source, named after it) of one repository served by a local smart-HTTP git
server. The entries apply a ServiceAccount and ConfigMap, a ConfigMap, and a Deployment (replicas 0) with a
Service, each named after the config through ``postBuild.substitute`` (so the 100 configs' objects do not
collide in the one namespace), with Azure's defaults otherwise: ``wait: true``, ``prune: false``, 600 s
intervals and timeouts, multi-tenancy enforced (the Kustomizations impersonate ``flux-applier``), here with
``scope: namespace`` (a RoleBinding in the benchmark's namespace rather than a ClusterRoleBinding left behind).

source-, kustomize- and fluxconfig-controller run as real processes against the local stack, over real
Kafka. Measured:
- seconds from creating the N FluxConfigs to every one ``complianceState: Compliant`` (its source and
  three Kustomizations Ready at their generation, the config's own Ready at its generation), seen by the
  bench's own watch of the FluxConfigs; when the first, half, 90% and all were Ready (objects made) and
  Compliant; at the deadline (120 s + 1 s a config, at most 10 minutes) how many were — the bench never hangs;
- peak RSS of fluxconfig-controller's whole process tree, sampled from /proc as bench/helm_scale.py does
  (the controller has no child processes today: the tree is the controller), beside its idle RSS in the
  same run and the other two controllers' VmHWM;
- CPU seconds each controller and stack part spent over the run, and how many times each FluxConfig was
  written (the status feed writes only when compliance changed: a burst of events is one summary).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.helm_scale import TreeWatch, cpu_spent, milestones, sample_tree, stack_cpu
from bench.kustomize_scale import until_gone, vm_hwm_mib
from bench.measures import Measure, emit
from bench.notification_fanout import delete_topics
from fluxconfig_controller.model import API_VERSION, KIND
from gitops_mesh.bus.topics import Topics, ensure_topics
from gitops_mesh.errors import NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.informer import ChangeType, Informer
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.observability.logging import configure_logging
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.mesh import Controller, common_args, free_port
from gitops_mesh_dev.namespaces import drop_finalizers
from gitops_mesh_dev.repos import Repo
from gitops_mesh_dev.stack import read_stack_env

SUITE = "fluxconfig"
COMPLIANT = "Compliant"
#: The repository every config follows: one directory per entry, names substituted per config.
FILES = {
    "infrastructure/controllers/controller.yaml": """apiVersion: v1
kind: ServiceAccount
metadata:
  name: ${config}-controller
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: ${config}-controller
data:
  replicas: "1"
""",
    "infrastructure/configs/settings.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: ${config}-settings
data:
  environment: bench
""",
    "apps/app.yaml": """apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${config}-app
spec:
  replicas: 0
  selector: {matchLabels: {app: "${config}-app"}}
  template:
    metadata: {labels: {app: "${config}-app"}}
    spec:
      containers: [{name: app, image: "ghcr.io/stefanprodan/podinfo:6.7.0", ports: [{containerPort: 9898}]}]
---
apiVersion: v1
kind: Service
metadata:
  name: ${config}-app
spec:
  selector: {app: "${config}-app"}
  ports: [{name: http, port: 9898, targetPort: 9898}]
""",
}


def fluxconfig(ns: str, name: str, url: str) -> KubeObject:
    substitute = {"substitute": {"config": name}}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "scope": "namespace",
            "sourceKind": "GitRepository",
            "gitRepository": {"url": url, "repositoryRef": {"branch": "main"}},
            "kustomizations": {
                "infra-controllers": {"path": "./infrastructure/controllers", "postBuild": substitute},
                "infra-configs": {
                    "path": "./infrastructure/configs",
                    "dependsOn": ["infra-controllers"],
                    "postBuild": substitute,
                },
                "apps": {"path": "./apps", "dependsOn": ["infra-configs"], "postBuild": substitute},
            },
        },
    }


def compliance(obj: KubeObject) -> str:
    return str((obj.get("status") or {}).get("complianceState") or "")


def ready_now(obj: KubeObject) -> bool:
    """The config's own Ready at its generation: the controller made its objects for this spec."""
    return c.is_ready(obj) and (obj.get("status") or {}).get("observedGeneration") == c.generation_of(obj)


@dataclass
class Progress:
    """The bench's watch of the FluxConfigs: when each was first Ready and first Compliant, and how often
    each was written."""

    want: int
    started: float = 0.0
    #: set once ``want`` configs have been Compliant
    all_compliant: asyncio.Event = field(default_factory=asyncio.Event)
    ready_at: dict[str, float] = field(default_factory=dict)
    compliant_at: dict[str, float] = field(default_factory=dict)
    writes: Counter[str] = field(default_factory=Counter)
    states: dict[str, str] = field(default_factory=dict)

    def on_change(self, change: ChangeType, obj: KubeObject, old: KubeObject | None) -> None:
        name = str(obj["metadata"]["name"])
        if change == "MODIFIED":
            self.writes[name] += 1
        now = time.perf_counter() - self.started
        self.states[name] = compliance(obj)
        if ready_now(obj):
            self.ready_at.setdefault(name, now)
        if compliance(obj) == COMPLIANT:
            self.compliant_at.setdefault(name, now)
            if len(self.compliant_at) >= self.want:
                self.all_compliant.set()

    @staticmethod
    def curve(times: dict[str, float]) -> list[tuple[float, int]]:
        return [(t, i + 1) for i, t in enumerate(sorted(times.values()))]


def deadline_for(n: int, most: float) -> float:
    """Seconds a run of ``n`` configs may take: 1 s a config past two minutes, at most ``most``."""
    return min(most, 120 + 1.0 * n)


@dataclass(frozen=True, slots=True)
class Options:
    concurrent: int
    deadline: float
    settle: float
    sample: float


async def run_once(kube: KubeClient, env: dict[str, str], url: str, n: int, o: Options, work: Path) -> dict[str, Any]:
    tag = f"bench-fc{n}-{int(time.time())}"
    ns = tag
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    topics = Topics(f"{tag}.")
    await ensure_topics(env["KAFKA_BOOTSTRAP"], topics.all(), partitions=3)
    common = [*common_args(env, topics, ns), "--log-level=info", f"--concurrent={o.concurrent}"]
    source = Controller(
        "source-controller",
        [*common, f"--storage-path={work / tag / 'storage'}", f"--storage-addr=127.0.0.1:{free_port()}"],
        work / f"{tag}-source.log",
    )
    kustomize = Controller(
        "kustomize-controller",
        [
            *common,
            f"--kustomize-path={env['KUSTOMIZE']}",
            f"--tree-cache-dir={work / tag / 'trees'}",
            "--health-poll=1s",
            # A dependency's `applied` wakes its dependants at once; this is only the fallback.
            "--requeue-dependency=5s",
        ],
        work / f"{tag}-kustomize.log",
    )
    fluxconfig_ctl = Controller("fluxconfig-controller", common, work / f"{tag}-fluxconfig.log")
    controllers = (source, kustomize, fluxconfig_ctl)
    result: dict[str, Any] = {"namespace": ns}
    configs = Informer(kube, API_VERSION, KIND, namespace=ns)
    progress = Progress(want=n)
    configs.on_event(progress.on_change)
    try:
        for ctl in controllers:
            ctl.start()
        for ctl in controllers:
            await ctl.ready()
        assert source.proc is not None
        assert kustomize.proc is not None
        assert fluxconfig_ctl.proc is not None
        await asyncio.sleep(o.settle)
        result["idle_rss_mib"] = round(sample_tree(fluxconfig_ctl.proc.pid).rss_mib, 1)
        configs.start()
        await configs.wait_synced(60)
        pids = {
            "source-controller": source.proc.pid,
            "kustomize-controller": kustomize.proc.pid,
            "fluxconfig-controller": fluxconfig_ctl.proc.pid,
        }
        cpu_before = stack_cpu(pids)
        watch = TreeWatch(fluxconfig_ctl.proc.pid, o.sample)
        with watch.watching():
            progress.started = started = time.perf_counter()
            gate = asyncio.Semaphore(32)

            async def create(i: int) -> None:
                async with gate:
                    await kube.create(fluxconfig(ns, f"cfg{i}", url))

            await asyncio.gather(*(create(i) for i in range(n)))
            result["create_seconds"] = round(time.perf_counter() - started, 1)
            deadline = deadline_for(n, o.deadline)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(progress.all_compliant.wait(), deadline - (time.perf_counter() - started))
            elapsed = time.perf_counter() - started
        cpu = cpu_spent(cpu_before, stack_cpu(pids))
        await configs.stop()
        writes = sorted(progress.writes[f"cfg{i}"] for i in range(n))
        not_compliant = Counter(s or "(none)" for name, s in progress.states.items() if s != COMPLIANT)
        result.update(
            seconds=round(max(progress.compliant_at.values()) if len(progress.compliant_at) == n else elapsed, 1),
            deadline=deadline,
            compliant=len(progress.compliant_at),
            all_compliant=len(progress.compliant_at) == n,
            not_compliant_states=dict(not_compliant),
            ready_at=milestones(Progress.curve(progress.ready_at), n),
            compliant_at=milestones(Progress.curve(progress.compliant_at), n),
            writes_per_config={"min": writes[0], "median": writes[len(writes) // 2], "max": writes[-1]},
            peak_tree_rss_mib=round(watch.peak_rss_mib, 1),
            peak_tree_pss_mib=round(watch.peak_pss_mib, 1),
            samples=watch.samples,
            fluxconfig_hwm_mib=round(vm_hwm_mib(fluxconfig_ctl.proc.pid), 1),
            source_hwm_mib=round(vm_hwm_mib(source.proc.pid), 1),
            kustomize_hwm_mib=round(vm_hwm_mib(kustomize.proc.pid), 1),
            cpu_seconds=cpu,
            cpu_seconds_total=round(sum(cpu.values()), 1),
        )
    finally:
        # Leave nothing behind: the controllers stop, their finalizers are dropped, the namespace goes.
        await configs.stop()  # a second stop is a no-op
        for ctl in reversed(controllers):
            await ctl.stop()
        await drop_finalizers(kube, ns)
        with contextlib.suppress(NotFound):
            await kube.delete("v1", "Namespace", ns)
        await until_gone(kube, [ns])
        await delete_topics(env["KAFKA_BOOTSTRAP"], topics.all())
    return result


def measures_for(n: int, r: dict[str, Any]) -> list[Measure]:
    out = [
        Measure(
            SUITE,
            f"{n} FluxConfigs x 3 Kustomizations to Compliant",
            r["seconds"],
            "s",
            "",
            f"all Ready (objects made) in {r['ready_at']['all']} s; no published figure for Azure's microsoft.flux",
        ),
        Measure(
            SUITE,
            f"fluxconfig-controller peak RSS, {n} FluxConfigs",
            r["peak_tree_rss_mib"],
            "MiB",
            "",
            f"idle {r['idle_rss_mib']} MiB in the same run",
        ),
    ]
    if not r["all_compliant"]:
        out.append(
            Measure(
                SUITE,
                f"FluxConfigs Compliant within {r['deadline']:.0f} s, of {n}",
                r["compliant"],
                "",
                f">= {n}",
                f"not Compliant: {r['not_compliant_states']}",
            )
        )
    return out


async def main_async(args: argparse.Namespace) -> None:
    env = read_stack_env()
    work = Path(tempfile.mkdtemp(prefix="bench-fc-"))
    options = Options(concurrent=args.concurrent, deadline=args.deadline, settle=args.settle, sample=args.sample)
    try:
        repo = Repo(work / "repos", "fleet", branch="main")
        repo.commit(FILES)
        repo.push()
        kube = await KubeClient.connect(env["KUBECONFIG"])
        measures: list[Measure] = []
        details: dict[str, Any] = {}
        try:
            async with GitServer(work / "repos") as server:
                for n in args.sizes:
                    r = await run_once(kube, env, server.url("fleet"), n, options, work)
                    details[str(n)] = r
                    measures.extend(measures_for(n, r))
        finally:
            await kube.close()
        emit(
            measures,
            {
                "runs": details,
                "concurrent": args.concurrent,
                "shape": "per config: its own GitRepository of one repository; Kustomizations infra-controllers "
                "<- infra-configs <- apps (dependsOn), wait true, impersonating flux-applier (scope namespace)",
                "rss": "sum over fluxconfig-controller's process tree of Rss from /proc/<pid>/smaps_rollup, sampled "
                f"every {args.sample} s (bench/helm_scale.py's TreeWatch)",
                "clock": "from the first create to the bench's watch seeing the last FluxConfig Compliant",
            },
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[100])
    p.add_argument("--concurrent", type=int, default=10, help="--concurrent of each controller")
    p.add_argument("--deadline", type=float, default=600, help="the most seconds a run may take")
    p.add_argument("--settle", type=float, default=2.0, help="seconds idle before the idle sample")
    p.add_argument("--sample", type=float, default=0.25, help="seconds between samples of the process tree")
    p.add_argument("--quick", action="store_true", help="10 FluxConfigs")
    args = p.parse_args()
    if args.quick:
        args.sizes = [10]
    # stdout is the JSON report.
    configure_logging(level="warning")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
