"""`make demo`: the mesh reconciling a sample repository on the local stack, then a push through a Receiver.

Starts (in the background, pid files in .stack/run/, logs in .stack/logs/) a local git server and webhook
sink, and source-, kustomize- and notification-controller; pushes deploy/examples/podinfo to a local git
repository; creates a GitRepository, two Kustomizations (apps dependsOn infra), a generic Provider + Alert
and a Receiver; shows what was applied and notified; commits a change, calls the Receiver like a git host
and shows the change applied and notified, with latencies. Then helm-controller: a HelmRelease of the podinfo
chart (deploy/examples/charts/podinfo, packaged as 6.0.0 and 6.0.1 into a local Helm repository) is installed,
upgraded to 6.0.1 with new values (revision 2), and what `helm list` and the sink saw of it is shown. Then the
other sources (deploy/local/demo_sources.py): a directory pushed to the stack's OCI registry with
`gitops-mesh push artifact` and an OCIRepository, manifests in an S3 bucket (SeaweedFS) and a Bucket, and the
Git repository's apps/ split out by an ArtifactGenerator into an ExternalArtifact — each applied by a
Kustomization. Last, fluxconfig-controller (deploy/local/demo_fluxconfig.py): a FluxConfig ``fleet`` (an
infrastructure Kustomization with a HelmRepository and a HelmRelease, apps depending on it) shown going
Pending → Compliant. Leaves everything running (`make demo-down`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

# A sibling module: running this file puts deploy/local first on sys.path.
from demo_fluxconfig import show_fluxconfig
from demo_sources import show_sources

from gitops_mesh.errors import NotFound
from gitops_mesh.helmcli import helm_env
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.chartrepo import ChartRepo
from gitops_mesh_dev.mesh import BIN
from gitops_mesh_dev.stack import ROOT, StackNotUp, read_stack_env

STACK = ROOT / ".stack"
DEMO = STACK / "demo"
RUN = STACK / "run"
LOGS = STACK / "logs"
NS = "flux-system"
HR = "helm.toolkit.fluxcd.io/v2"
#: The HelmRelease's target namespace; the release is named <target>-<name> as Flux names it.
HELM_NS = "podinfo-helm"
CHARTS = DEMO / "charts"
APPLY: dict[str, Any] = {"field_manager": "gitops-mesh-demo", "force": True}
TOKEN = "demo-receiver-token"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "demo",
    "GIT_AUTHOR_EMAIL": "demo@example.com",
    "GIT_COMMITTER_NAME": "demo",
    "GIT_COMMITTER_EMAIL": "demo@example.com",
}


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def git(*args: str, cwd: Path) -> str:
    out = subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env={**os.environ, **GIT_ENV}
    )
    return out.stdout.strip()


def spawn(name: str, argv: list[str]) -> None:
    """Start a background process (its own session, so make's exit leaves it running)."""
    pidfile = RUN / f"demo-{name}.pid"
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text()), 0)
            return  # already running
        except (ProcessLookupError, ValueError):
            pass
    with (LOGS / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    pidfile.write_text(str(proc.pid))


async def wait_ready(metrics: dict[str, int], timeout: float = 60) -> None:
    """Until every controller's /readyz answers 200: the Receiver and the informers are up before the demo acts
    (a re-run whose Kustomizations are already applied would otherwise call the Receiver before it listens)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        for name, port in metrics.items():
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"[demo] {name}-controller is not ready; see .stack/logs/{name}-controller.log")
                await asyncio.sleep(0.2)


def make_repo() -> Path:
    work, bare = DEMO / "work", DEMO / "repos" / "podinfo.git"
    if not bare.exists():
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(ROOT / "deploy" / "examples" / "podinfo", work)
        git("init", "-q", "--initial-branch=main", cwd=work)
        git("add", "-A", cwd=work)
        git("commit", "-qm", "podinfo sample", cwd=work)
        bare.parent.mkdir(parents=True, exist_ok=True)
        git("clone", "-q", "--bare", str(work), str(bare), cwd=DEMO)
        git("remote", "add", "origin", str(bare), cwd=work)
    return work


def manifests(git_url: str, sink_url: str, chart_url: str) -> list[dict[str, Any]]:
    ks = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization"}
    src = {"kind": "GitRepository", "name": "podinfo"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "receiver-token", "namespace": NS},
            "stringData": {"token": TOKEN},
        },
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "podinfo", "namespace": NS},
            "spec": {"url": git_url, "interval": "10m", "ref": {"branch": "main"}},
        },
        {
            **ks,
            "metadata": {"name": "infra", "namespace": NS},
            "spec": {"interval": "10m", "path": "./infra", "prune": True, "sourceRef": src},
        },
        {
            **ks,
            "metadata": {"name": "apps", "namespace": NS},
            "spec": {
                "interval": "10m",
                "path": "./apps",
                "prune": True,
                "wait": True,
                "timeout": "2m",
                "sourceRef": src,
                "dependsOn": [{"name": "infra"}],
            },
        },
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmRepository",
            "metadata": {"name": "charts", "namespace": NS},
            "spec": {"url": chart_url, "interval": "10m"},
        },
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Provider",
            "metadata": {"name": "sink", "namespace": NS},
            "spec": {"type": "generic", "address": sink_url},
        },
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Alert",
            "metadata": {"name": "all", "namespace": NS},
            "spec": {
                "providerRef": {"name": "sink"},
                "eventSeverity": "info",
                "eventSources": [
                    {"kind": "GitRepository", "name": "*"},
                    {"kind": "Kustomization", "name": "*"},
                    {"kind": "HelmRelease", "name": "*"},
                ],
            },
        },
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1",
            "kind": "Receiver",
            "metadata": {"name": "podinfo", "namespace": NS},
            "spec": {
                "type": "generic",
                "secretRef": {"name": "receiver-token"},
                "resources": [
                    {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "name": "podinfo"}
                ],
            },
        },
    ]


async def show_refusal(kube: KubeClient) -> None:
    """A tenant's Kustomization meant for another cluster: refused, not applied here (docs/security.md)."""
    remote = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "remote-cluster", "namespace": NS},
        "spec": {
            "interval": "10m",
            "path": "./apps",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "podinfo"},
            "kubeConfig": {"secretRef": {"name": "other-cluster-kubeconfig"}},
        },
    }
    say("applying Kustomization remote-cluster with spec.kubeConfig (a manifest meant for another cluster)")
    await kube.apply(remote, field_manager="gitops-mesh-demo", force=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        obj = await kube.get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "remote-cluster", namespace=NS)
        ready = next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == "Ready"), None)
        if ready and ready["status"] == "False":
            say(f"  refused, nothing applied: Ready=False {ready['reason']}: {ready['message']}")
            return
        await asyncio.sleep(0.2)
    raise SystemExit("[demo] Kustomization remote-cluster was not refused; see .stack/logs/kustomize-controller.log")


async def wait_applied(kube: KubeClient, name: str, commit: str, started: float, timeout: float = 180) -> float:
    last = ""
    while time.monotonic() - started < timeout:
        obj = await kube.get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", name, namespace=NS)
        status = obj.get("status") or {}
        if c.is_ready(obj) and status.get("lastAppliedRevision") == f"main@sha1:{commit}":
            return time.monotonic() - started
        msg = c.get_message(obj, "Ready") or "waiting"
        if msg != last:
            say(f"  {name}: {msg}")
            last = msg
        await asyncio.sleep(0.2)
    raise SystemExit(f"[demo] {name} was not applied within {timeout:.0f}s; see .stack/logs/*.log")


async def package_charts(helm: str) -> None:
    """The demo chart as 6.0.0 and 6.0.1 (appVersion 6.0.1) in the local Helm repository, once."""
    CHARTS.mkdir(parents=True, exist_ok=True)
    repo = ChartRepo(CHARTS, helm=helm)  # only packages and indexes here; demo_servers.py serves the directory
    chart = ROOT / "deploy" / "examples" / "charts" / "podinfo"
    for version in ("6.0.0", "6.0.1"):
        if not (CHARTS / f"podinfo-{version}.tgz").exists():
            await repo.add(chart, version=version, app_version=version)


def helm_release(version: str, values: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": HR,
        "kind": "HelmRelease",
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {
            "interval": "10m",
            "timeout": "2m",
            "targetNamespace": HELM_NS,  # the release is stored there too (services/helm/README.md)
            "install": {"createNamespace": True},
            "chart": {
                "spec": {
                    "chart": "podinfo",
                    "version": version,
                    "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                    "interval": "10m",
                }
            },
            "values": values,
        },
    }


async def wait_released(kube: KubeClient, version: int, started: float, timeout: float = 120) -> dict[str, Any]:
    """The HelmRelease Ready with release revision ``version`` at its current generation."""
    last = ""
    while time.monotonic() - started < timeout:
        obj = await kube.get(HR, "HelmRelease", "podinfo", namespace=NS)
        status = obj.get("status") or {}
        history = status.get("history") or [{}]
        if (
            c.is_ready(obj)
            and status.get("observedGeneration") == obj["metadata"]["generation"]
            and history[0].get("version") == version
        ):
            return obj
        msg = c.get_message(obj, "Ready") or "waiting"
        if msg != last:
            say(f"  podinfo: {msg}")
            last = msg
        await asyncio.sleep(0.2)
    raise SystemExit(
        f"[demo] HelmRelease podinfo did not reach revision {version}; see .stack/logs/helm-controller.log"
    )


def show_release(obj: dict[str, Any], helm: str, kubeconfig: str, took: float) -> None:
    latest = obj["status"]["history"][0]
    released = next(x for x in obj["status"]["conditions"] if x["type"] == "Released")
    say(
        f"HelmRelease podinfo Ready in {took:.1f}s: release {latest['namespace']}/{latest['name']} revision "
        f"{latest['version']} ({latest['status']}), chart {latest['chartName']}@{latest['chartVersion']}, "
        f"app {latest['appVersion']}"
    )
    say(f"  Released={released['status']} {released['reason']}: {released['message']}")
    home = DEMO / "helm-home"
    listed = subprocess.run(
        [helm, "list", "-n", HELM_NS, "--kubeconfig", kubeconfig],
        check=True,
        capture_output=True,
        text=True,
        env=helm_env(home),
    )
    for line in listed.stdout.strip().splitlines():
        say(f"  helm list: {' '.join(line.split())}")


async def show_helm_release(kube: KubeClient, helm: str, kubeconfig: str) -> None:
    """helm-controller: install 6.0.0 from the local Helm repository, upgrade to 6.0.1 with new values."""
    try:  # each run starts from a fresh install, so it shows revision 1 then 2
        await kube.delete(HR, "HelmRelease", "podinfo", namespace=NS)
        say("deleting the HelmRelease podinfo of an earlier run (its release is uninstalled)")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await kube.get(HR, "HelmRelease", "podinfo", namespace=NS)
            await asyncio.sleep(0.2)
        raise SystemExit("[demo] the earlier HelmRelease podinfo was not deleted; see .stack/logs/helm-controller.log")
    except NotFound:
        pass
    started, wall = time.monotonic(), time.time()
    say(f"applying HelmRepository charts (the local Helm repository) and HelmRelease podinfo (chart 6.0.0) in {NS}")
    await kube.apply(helm_release("6.0.0", {"ui": {"message": "hello from make demo"}}), **APPLY)
    obj = await wait_released(kube, 1, started)
    show_release(obj, helm, kubeconfig, time.monotonic() - started)
    await asyncio.sleep(1.0)
    show_notifications(wall, kind="HelmRelease")

    started, wall = time.monotonic(), time.time()
    say("upgrading HelmRelease podinfo to chart 6.0.1 with replicaCount 2")
    await kube.apply(helm_release("6.0.1", {"ui": {"message": "hello from make demo"}, "replicaCount": 2}), **APPLY)
    obj = await wait_released(kube, 2, started)
    show_release(obj, helm, kubeconfig, time.monotonic() - started)
    dep = await kube.get("apps/v1", "Deployment", f"{HELM_NS}-podinfo", namespace=HELM_NS)
    say(
        f"  Deployment {HELM_NS}-podinfo has {dep['spec']['replicas']} replicas, "
        f"{dep['status'].get('availableReplicas', 0)} available"
    )
    await asyncio.sleep(1.0)
    show_notifications(wall, kind="HelmRelease")


def notifications(since: float) -> list[dict[str, Any]]:
    path = DEMO / "notifications.jsonl"
    if not path.exists():
        return []
    out = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return [n for n in out if n["received"] >= since]


def show_notifications(since: float, kind: str | None = None) -> None:
    got = notifications(since)
    if kind is not None:
        got = [n for n in got if ((n["body"] or {}).get("involvedObject") or {}).get("kind") == kind]
    say(f"notifications received by the sink{f' about {kind}s' if kind else ''}: {len(got)}")
    for n in got:
        b = n["body"] or {}
        o = b.get("involvedObject", {})
        say(
            f"  {b.get('severity', '?'):5} {o.get('kind')}/{o.get('namespace')}/{o.get('name')}: "
            f"{b.get('reason')} — {str(b.get('message', '')).splitlines()[0] if b.get('message') else ''}"
        )


async def main() -> None:
    try:
        env = read_stack_env()
    except StackNotUp as e:
        raise SystemExit(f"[demo] {e}") from None
    for d in (DEMO, RUN, LOGS):
        d.mkdir(parents=True, exist_ok=True)
    ports_file = DEMO / "ports"
    py = sys.executable
    await package_charts(env["HELM"])
    peers_pid = RUN / "demo-peers.pid"
    if ports_file.exists() and peers_pid.exists() and "CHART_PORT" not in ports_file.read_text():
        # The peers of a demo from before the Helm repository: replaced by ones that serve it too.
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(peers_pid.read_text()), signal.SIGTERM)
        peers_pid.unlink()
        await asyncio.sleep(0.5)
    if not ports_file.exists() or not peers_pid.exists():
        ports_file.unlink(missing_ok=True)
        spawn(
            "peers",
            [
                py,
                str(ROOT / "deploy/local/demo_servers.py"),
                str(DEMO / "repos"),
                str(DEMO / "notifications.jsonl"),
                str(ports_file),
                str(CHARTS),
                env["HELM"],
            ],
        )
        (DEMO / "repos").mkdir(exist_ok=True)
    for _ in range(100):
        if ports_file.exists():
            break
        await asyncio.sleep(0.1)
    ports = dict(line.split("=") for line in ports_file.read_text().split())
    git_url = f"http://127.0.0.1:{ports['GIT_PORT']}/podinfo.git"
    sink_url = f"http://127.0.0.1:{ports['SINK_PORT']}/alerts"
    chart_url = f"http://127.0.0.1:{ports['CHART_PORT']}"
    storage_port, receiver_port = 29090, 29292
    metrics = {"source": 28101, "kustomize": 28102, "notification": 28103, "helm": 28104, "fluxconfig": 28105}
    common = [
        f"--kubeconfig={env['KUBECONFIG']}",
        f"--kafka-bootstrap={env['KAFKA_BOOTSTRAP']}",
        # Only the demo's namespace: a demo left running must not reconcile the objects of tests and benchmarks
        # sharing the stack (their own controllers do).
        "--watch-all-namespaces=false",
        f"--watch-namespace={NS}",
    ]
    say(
        "starting source-controller, kustomize-controller, notification-controller, helm-controller, fluxconfig-controller"
    )
    spawn(
        "source-controller",
        [
            str(BIN / "source-controller"),
            *common,
            f"--metrics-addr=127.0.0.1:{metrics['source']}",
            f"--storage-path={STACK / 'artifacts'}",
            f"--storage-addr=127.0.0.1:{storage_port}",
        ],
    )
    spawn(
        "kustomize-controller",
        [
            str(BIN / "kustomize-controller"),
            *common,
            f"--metrics-addr=127.0.0.1:{metrics['kustomize']}",
            f"--kustomize-path={env['KUSTOMIZE']}",
            "--health-poll=500ms",
            "--requeue-dependency=5s",
        ],
    )
    spawn(
        "notification-controller",
        [
            str(BIN / "notification-controller"),
            *common,
            f"--metrics-addr=127.0.0.1:{metrics['notification']}",
            f"--receiver-addr=127.0.0.1:{receiver_port}",
            "--offset-reset=earliest",
        ],
    )
    spawn(
        "helm-controller",
        [
            str(BIN / "helm-controller"),
            *common,
            f"--metrics-addr=127.0.0.1:{metrics['helm']}",
            f"--helm-path={env['HELM']}",
            f"--kustomize-path={env['KUSTOMIZE']}",
            "--health-poll=500ms",
            "--requeue-dependency=5s",
        ],
    )
    spawn(
        "fluxconfig-controller",
        [str(BIN / "fluxconfig-controller"), *common, f"--metrics-addr=127.0.0.1:{metrics['fluxconfig']}"],
    )
    await wait_ready(metrics)
    work = make_repo()
    commit = git("rev-parse", "HEAD", cwd=work)
    kube = await KubeClient.connect(env["KUBECONFIG"])
    try:
        started, wall = time.monotonic(), time.time()
        say(
            f"applying GitRepository, Kustomizations infra and apps (apps dependsOn infra), Provider, Alert, Receiver in {NS}"
        )
        for obj in manifests(git_url, sink_url, chart_url):
            await kube.apply(obj, field_manager="gitops-mesh-demo", force=True)
        infra = await wait_applied(kube, "infra", commit, started)
        apps = await wait_applied(kube, "apps", commit, started)
        say(
            f"revision main@sha1:{commit[:12]} applied: infra in {infra:.1f}s, apps in {apps:.1f}s (from creating the objects)"
        )
        for name in ("infra", "apps"):
            obj = await kube.get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", name, namespace=NS)
            for entry in obj["status"]["inventory"]["entries"]:
                ns, oname, _group, kind = entry["id"].split("_")
                say(f"  {name}: {kind}/{ns or '-'}/{oname}")
        await asyncio.sleep(1.0)
        show_notifications(wall)

        receiver = await kube.get("notification.toolkit.fluxcd.io/v1", "Receiver", "podinfo", namespace=NS)
        hook = (receiver.get("status") or {}).get("webhookPath")
        if not hook:
            raise SystemExit("[demo] the Receiver has no webhookPath; see .stack/logs/notification-controller.log")
        deployment = work / "apps" / "deployment.yaml"
        replicas = 3 if "replicas: 2" in deployment.read_text() else 2
        deployment.write_text(deployment.read_text().replace(f"replicas: {5 - replicas}", f"replicas: {replicas}"))
        git("commit", "-qam", f"scale podinfo to {replicas}", cwd=work)
        git("push", "-q", "origin", "main", cwd=work)
        new = git("rev-parse", "HEAD", cwd=work)
        say(f"pushed main@sha1:{new[:12]} (replicas {replicas}); calling the Receiver like a git host would")
        pushed, wall = time.monotonic(), time.time()
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"http://127.0.0.1:{receiver_port}{hook}", json={"ref": "main"}) as r,
        ):
            say(f"  receiver answered {r.status}")
        took = await wait_applied(kube, "apps", new, pushed)
        dep = await kube.get("apps/v1", "Deployment", "podinfo", namespace="podinfo")
        say(
            f"push → applied (and rolled out, apps waits for health) in {took:.2f}s; Deployment podinfo has "
            f"{dep['spec']['replicas']} replicas, {dep['status'].get('availableReplicas', 0)} available"
        )
        await asyncio.sleep(1.0)
        show_notifications(wall)
        await show_refusal(kube)
        await show_helm_release(kube, env["HELM"], env["KUBECONFIG"])
        say("the other sources: an OCI artifact, an S3 bucket, and the Git repository split by an ArtifactGenerator")
        await show_sources(kube, env, DEMO, say, lambda since: show_notifications(since, "Kustomization"))
        say("a FluxConfig: the configuration Azure's microsoft.flux takes, made into a source and Kustomizations")
        git_base = f"http://127.0.0.1:{ports['GIT_PORT']}"
        await show_fluxconfig(kube, DEMO, git_base, chart_url, git, say, show_notifications)
    finally:
        await kube.close()
    extra = (
        f"export RECEIVER_URL=http://127.0.0.1:{receiver_port}{hook}\n"
        f"export ARTIFACT_URL=http://127.0.0.1:{storage_port}\n"
        f"export GIT_URL={git_url}\nexport SINK_URL={sink_url}\nexport CHART_REPO_URL={chart_url}\n"
        + "".join(f"export METRICS_URL_{k.upper()}=http://127.0.0.1:{v}/metrics\n" for k, v in metrics.items())
    )
    lines = [
        ln
        for ln in (STACK / "env").read_text().splitlines(keepends=True)
        if not ln.startswith(
            (
                "export RECEIVER_URL",
                "export ARTIFACT_URL",
                "export GIT_URL",
                "export SINK_URL",
                "export CHART_REPO_URL",
                "export METRICS_URL_",
            )
        )
    ]
    (STACK / "env").write_text("".join(lines) + extra)
    say("the mesh keeps running; addresses added to .stack/env; `make demo-down` stops it")


if __name__ == "__main__":
    asyncio.run(main())
