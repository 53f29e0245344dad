"""`make demo`: the mesh reconciling a sample repository on the local stack, then a push through a Receiver.

Starts (in the background, pid files in .stack/run/, logs in .stack/logs/) a local git server and webhook
sink, and source-, kustomize- and notification-controller; pushes deploy/examples/podinfo to a local git
repository; creates a GitRepository, two Kustomizations (apps dependsOn infra), a generic Provider + Alert
and a Receiver; shows what was applied and notified; commits a change, calls the Receiver like a git host
and shows the change applied and notified, with latencies. Leaves everything running (`make demo-down`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from gitops_mesh.kube.client import KubeClient
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.mesh import BIN
from gitops_mesh_dev.stack import ROOT, StackNotUp, read_stack_env

STACK = ROOT / ".stack"
DEMO = STACK / "demo"
RUN = STACK / "run"
LOGS = STACK / "logs"
NS = "flux-system"
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


def manifests(git_url: str, sink_url: str) -> list[dict[str, Any]]:
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
                "eventSources": [{"kind": "GitRepository", "name": "*"}, {"kind": "Kustomization", "name": "*"}],
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


def notifications(since: float) -> list[dict[str, Any]]:
    path = DEMO / "notifications.jsonl"
    if not path.exists():
        return []
    out = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return [n for n in out if n["received"] >= since]


def show_notifications(since: float) -> None:
    got = notifications(since)
    say(f"notifications received by the sink: {len(got)}")
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
    if not ports_file.exists() or not (RUN / "demo-peers.pid").exists():
        ports_file.unlink(missing_ok=True)
        spawn(
            "peers",
            [
                py,
                str(ROOT / "deploy/local/demo_servers.py"),
                str(DEMO / "repos"),
                str(DEMO / "notifications.jsonl"),
                str(ports_file),
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
    storage_port, receiver_port = 29090, 29292
    metrics = {"source": 28101, "kustomize": 28102, "notification": 28103}
    common = [f"--kubeconfig={env['KUBECONFIG']}", f"--kafka-bootstrap={env['KAFKA_BOOTSTRAP']}"]
    say("starting source-controller, kustomize-controller, notification-controller")
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
    work = make_repo()
    commit = git("rev-parse", "HEAD", cwd=work)
    kube = await KubeClient.connect(env["KUBECONFIG"])
    try:
        started, wall = time.monotonic(), time.time()
        say(
            f"applying GitRepository, Kustomizations infra and apps (apps dependsOn infra), Provider, Alert, Receiver in {NS}"
        )
        for obj in manifests(git_url, sink_url):
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
    finally:
        await kube.close()
    extra = (
        f"export RECEIVER_URL=http://127.0.0.1:{receiver_port}{hook}\n"
        f"export ARTIFACT_URL=http://127.0.0.1:{storage_port}\n"
        f"export GIT_URL={git_url}\nexport SINK_URL={sink_url}\n"
        + "".join(f"export METRICS_URL_{k.upper()}=http://127.0.0.1:{v}/metrics\n" for k, v in metrics.items())
    )
    lines = [
        ln
        for ln in (STACK / "env").read_text().splitlines(keepends=True)
        if not ln.startswith(
            ("export RECEIVER_URL", "export ARTIFACT_URL", "export GIT_URL", "export SINK_URL", "export METRICS_URL_")
        )
    ]
    (STACK / "env").write_text("".join(lines) + extra)
    say("the mesh keeps running; addresses added to .stack/env; `make demo-down` stops it")


if __name__ == "__main__":
    asyncio.run(main())
