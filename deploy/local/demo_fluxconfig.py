"""`make demo`, the FluxConfig: one configuration becomes the source, an infrastructure and the apps on it.

Where it sits: deploy/local/demo.py calls :func:`show_fluxconfig` last, with the demo's git server and Helm
repository. deploy/examples/fleet is pushed as the repository ``fleet``; the FluxConfig ``fleet`` (the shape
Azure's ``az k8s-configuration flux create`` sends) asks for an ``infrastructure`` Kustomization (a
HelmRepository and a HelmRelease of the demo chart) and ``apps`` depending on it. fluxconfig-controller makes
the GitRepository, both Kustomizations and the RBAC they run as; source-, kustomize- and helm-controller do the
rest. The demo prints the config's ``complianceState`` each time it changes (Pending → Compliant, with what
it still waits for), then its ``statuses[]`` — the HelmRelease the infrastructure applied among them — and the
Event the controller recorded.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gitops_mesh.errors import NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.stack import ROOT

API = "clusterconfig.azure.com/v1alpha1"
HR = "helm.toolkit.fluxcd.io/v2"
NS = "flux-system"
NAME = "fleet"
#: The HelmRelease deploy/examples/fleet/infrastructure makes (deleted with the config, waited for on a re-run).
RELEASE = "fleet-podinfo"


def fluxconfig(git_url: str, chart_url: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "FluxConfig",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {
            "scope": "cluster",
            "sourceKind": "GitRepository",
            "gitRepository": {"url": git_url, "repositoryRef": {"branch": "main"}, "syncIntervalInSeconds": 120},
            "kustomizations": {
                "infrastructure": {
                    "path": "./infrastructure",
                    "prune": True,
                    "postBuild": {"substitute": {"chart_url": chart_url}},
                },
                "apps": {"path": "./apps", "prune": True, "dependsOn": ["infrastructure"]},
            },
        },
    }


def push_repo(demo: Path, git: Callable[..., str]) -> str:
    """deploy/examples/fleet as the bare repository ``fleet`` the demo's git server serves, once; its head."""
    work, bare = demo / "fleet-work", demo / "repos" / "fleet.git"
    if not bare.exists():
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(ROOT / "deploy" / "examples" / "fleet", work)
        git("init", "-q", "--initial-branch=main", cwd=work)
        git("add", "-A", cwd=work)
        git("commit", "-qm", "fleet: infrastructure and apps", cwd=work)
        git("clone", "-q", "--bare", str(work), str(bare), cwd=demo)
    return git("rev-parse", "HEAD", cwd=bare)


async def gone(kube: KubeClient, api: str, kind: str, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await kube.get(api, kind, name, namespace=NS)
        except NotFound:
            return
        await asyncio.sleep(0.3)
    raise SystemExit(f"[demo] {kind} {name} of an earlier run was not deleted; see .stack/logs/*.log")


async def delete_earlier(kube: KubeClient, say: Callable[[str], None]) -> None:
    """Each run starts from no FluxConfig, so it shows Pending → Compliant again."""
    try:
        await kube.delete(API, "FluxConfig", NAME, namespace=NS)
    except NotFound:
        return
    say(f"deleting the FluxConfig {NAME} of an earlier run (its Kustomizations prune what they applied)")
    await gone(kube, API, "FluxConfig", NAME, 120)
    await gone(kube, HR, "HelmRelease", RELEASE, 120)  # uninstalled by helm-controller's finalizer


def waiting_for(status: dict[str, Any]) -> str:
    """The managed objects not Compliant yet, as ``Kind/name (state)``."""
    rest = [
        f"{s['kind']}/{s['name']}" + ("" if s["complianceState"] == "Pending" else f" ({s['complianceState']})")
        for s in status.get("statuses") or []
        if s.get("complianceState") != "Compliant"
    ]
    return ", ".join(rest) if rest else "its objects to be made"


async def follow_compliance(kube: KubeClient, started: float, say: Callable[[str], None]) -> dict[str, Any]:
    """Print the config's complianceState on each change (and what it waits for) until Compliant."""
    last: tuple[str, str] | None = None
    while time.monotonic() - started < 180:
        try:
            obj = await kube.get(API, "FluxConfig", NAME, namespace=NS)
        except NotFound:
            obj = {}
        status = obj.get("status") or {}
        state = status.get("complianceState") or "(not reported yet)"
        detail = "" if state == "Compliant" else f" — waiting for {waiting_for(status)}"
        if status.get("errorMessage"):
            detail += f": {status['errorMessage']}"
        if (state, detail) != last:  # a change of state, or of what it waits for
            say(f"  {time.monotonic() - started:5.1f}s complianceState {state}{detail}")
            last = (state, detail)
        if state == "Compliant" and c.is_ready(obj):
            return obj
        await asyncio.sleep(0.2)
    raise SystemExit(
        f"[demo] FluxConfig {NAME} was not Compliant within 180s; see .stack/logs/fluxconfig-controller.log"
    )


def describe(entry: dict[str, Any]) -> str:
    text = f"  {entry['kind']}/{entry['namespace']}/{entry['name']}: {entry['complianceState']}"
    if "appliedBy" in entry:
        text += f", applied by Kustomization/{entry['appliedBy']['name']}"
    props = entry.get("helmReleaseProperties") or {}
    if props:
        chart = props.get("helmChartRef") or {}
        text += f", release revision {props.get('lastRevisionApplied', '?')}"
        if chart:
            text += f", HelmChart {chart.get('namespace')}/{chart.get('name')}"
    return text


async def show_fluxconfig(
    kube: KubeClient,
    demo: Path,
    git_base: str,
    chart_url: str,
    git: Callable[..., str],
    say: Callable[[str], None],
    show_notifications: Callable[[float], None],
) -> None:
    """Apply the FluxConfig ``fleet`` and show it reach Compliant (``git_base``: the demo git server's URL)."""
    await delete_earlier(kube, say)
    head = push_repo(demo, git)
    started, wall = time.monotonic(), time.time()
    say(
        f"applying FluxConfig {NAME} in {NS}: GitRepository {git_base}/fleet.git, Kustomizations infrastructure "
        "(a HelmRepository and a HelmRelease) and apps (dependsOn infrastructure)"
    )
    await kube.apply(fluxconfig(f"{git_base}/fleet.git", chart_url), field_manager="gitops-mesh-demo", force=True)
    obj = await follow_compliance(kube, started, say)
    status = obj["status"]
    say(
        f"FluxConfig {NAME} Compliant in {time.monotonic() - started:.1f}s at {status.get('sourceSyncedCommitId')} "
        f"(main@sha1:{head[:12]}), provisioningState {status.get('provisioningState')}; statuses[]:"
    )
    for entry in status.get("statuses") or []:
        say(describe(entry))
    events = await kube.list(
        "v1", "Event", namespace=NS, field_selector=f"involvedObject.kind=FluxConfig,involvedObject.name={NAME}"
    )
    for event in sorted(events.items, key=lambda e: str(e.get("lastTimestamp") or "")):
        if str(event.get("lastTimestamp") or "") >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)):
            say(f"  Event {event.get('type')} {event.get('reason')}: {event.get('message')}")
    await asyncio.sleep(1.0)
    show_notifications(wall)


__all__ = ["show_fluxconfig"]
