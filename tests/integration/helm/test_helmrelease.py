"""A HelmRelease end to end on the real stack: source- and helm-controller as processes, Kafka, the real helm 4.

A HelmRepository points at a ChartRepo on loopback; the HelmRelease of the podinfo test chart installs, upgrades
on a values change, fails (and says so in status, as an Event and on the bus) on a chart version that does not
render while the previous release keeps serving, and is uninstalled with its HelmChart when deleted. What helm
itself lists (`helm list`, `helm history`) is compared with the HelmRelease's status at each step.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gitops_mesh import commands
from gitops_mesh.bus.envelope import Event
from gitops_mesh.bus.topics import Topic, Topics, ensure_topics
from gitops_mesh.errors import NotFound
from gitops_mesh.helmcli import helm_env
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh_dev.chartrepo import PODINFO_CHART, ChartRepo
from gitops_mesh_dev.mesh import Mesh, mesh_for
from helm_controller.releases import release_history
from tests.support.bus import BusLog, recording

HR = "helm.toolkit.fluxcd.io/v2"
SRC = "source.toolkit.fluxcd.io/v1"
#: A template of chart version 1.1.0 that stops rendering: ui.message is "" by default.
REQUIRED = '{{ required "this chart version needs ui.message" .Values.ui.message }}\n'


@dataclass
class Running:
    mesh: Mesh
    bus: BusLog
    home: Path
    env: dict[str, str]

    def log(self) -> str:
        assert self.mesh.helm is not None
        return self.mesh.helm.tail(4000)

    def events(self, kind: str) -> Callable[[], Awaitable[list[Event]]]:
        """A check for ``until``: the bus events of that kind about the HelmRelease so far."""

        async def of() -> list[Event]:
            return self.bus.of(kind, "web")

        return of

    async def helm(self, *args: str) -> Any:
        argv = [self.env["HELM"], *args, "--kubeconfig", self.env["KUBECONFIG"], "-o", "json"]
        done = await commands.run(argv, env=helm_env(self.home), timeout=60)
        return json.loads(done.stdout.decode())


@pytest.fixture
async def running(stack_env: dict[str, str], namespace: str, unique: str, tmp_path: Path) -> AsyncIterator[Running]:
    topics = Topics(f"{unique}.")
    await ensure_topics(stack_env["KAFKA_BOOTSTRAP"], topics.all(), partitions=1)
    mesh = mesh_for(stack_env, topics, namespace, tmp_path, f"{unique}-nc", helm=True)
    which = [Topic.ARTIFACT_READY, Topic.APPLIED, Topic.FAILED]
    async with recording(stack_env["KAFKA_BOOTSTRAP"], topics, f"{unique}-observer", which) as bus:
        await mesh.start()
        try:
            yield Running(mesh, bus, tmp_path / "helm-home", stack_env)
        finally:
            await mesh.stop()


@pytest.fixture
async def repo(stack_env: dict[str, str], tmp_path: Path) -> AsyncIterator[ChartRepo]:
    broken = tmp_path / "broken" / "podinfo"
    shutil.copytree(PODINFO_CHART, broken)
    (broken / "templates" / "required.yaml").write_text(REQUIRED)
    async with ChartRepo(tmp_path / "charts", helm=stack_env["HELM"]) as r:
        await r.add(PODINFO_CHART, version="1.0.0", app_version="6.0.0")
        await r.add(PODINFO_CHART, version="1.0.1", app_version="6.0.1")
        await r.add(broken, version="1.1.0", app_version="6.1.0")
        yield r


def condition(obj: KubeObject, type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


async def until(run: Running, what: str, check: Callable[[], Awaitable[Any]], timeout: float = 45) -> Any:
    """Poll ``check`` until it returns something truthy; fails with helm-controller's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await check()
        if got:
            return got
        await asyncio.sleep(0.2)
    raise AssertionError(f"never {what}\n{run.log()}")


async def test_install_upgrade_fail_and_delete(
    kube: KubeClient, namespace: str, repo: ChartRepo, running: Running
) -> None:
    run = running
    await kube.create(
        {
            "apiVersion": SRC,
            "kind": "HelmRepository",
            "metadata": {"name": "charts", "namespace": namespace},
            "spec": {"url": repo.url, "interval": "10m"},
        }
    )
    await kube.create(
        {
            "apiVersion": HR,
            "kind": "HelmRelease",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "interval": "10m",
                "timeout": "1m",
                "chart": {
                    "spec": {
                        "chart": "podinfo",
                        "version": "1.0.0",
                        "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                        "interval": "10m",
                    }
                },
            },
        }
    )

    async def hr_when(check: Callable[[KubeObject], bool]) -> KubeObject | None:
        obj = await kube.get(HR, "HelmRelease", "web", namespace=namespace)
        return obj if check(obj) else None

    # Install: Ready, Released=True/InstallSucceeded, history[0] as helm lists the release.
    obj = await until(
        run, "installed and Ready", lambda: hr_when(lambda o: condition(o, "Ready").get("status") == "True")
    )
    released = condition(obj, "Released")
    assert (released["status"], released["reason"]) == ("True", "InstallSucceeded")
    status = obj["status"]
    helm_chart = f"{namespace}/{namespace}-web"
    assert status["helmChart"] == helm_chart
    assert status["lastAttemptedRevision"] == "1.0.0"
    assert status["lastAttemptedReleaseAction"] == "install"
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    (first,) = status["history"]
    (listed,) = await run.helm("list", "-n", namespace)
    assert (listed["name"], listed["namespace"], int(listed["revision"]), listed["status"]) == (
        "web",
        namespace,
        first["version"],
        first["status"],
    )
    assert listed["chart"] == f"{first['chartName']}-{first['chartVersion']}" == "podinfo-1.0.0"
    assert listed["app_version"] == first["appVersion"] == "6.0.0"
    (entry,) = await run.helm("history", "web", "-n", namespace)
    assert (entry["revision"], entry["status"], entry["chart"]) == (1, "deployed", "podinfo-1.0.0")
    assert first["configDigest"] == status["lastAttemptedConfigDigest"]
    applied = await until(run, "applied on the bus", run.events("applied"))
    assert applied[0].revision == "1.0.0"

    # New values and chart version at once: one upgrade, to revision 2, with the new chart — never one with the
    # HelmChart's old artifact (source-controller has not reconciled its new version yet) then another.
    patch = {"spec": {"values": {"replicaCount": 2}, "chart": {"spec": {"version": "1.0.1"}}}}
    await kube.patch(HR, "HelmRelease", "web", patch, namespace=namespace)

    def upgraded(o: KubeObject) -> bool:
        return (
            condition(o, "Released").get("reason") == "UpgradeSucceeded"
            and condition(o, "Ready").get("status") == "True"
            and o["status"].get("observedGeneration") == o["metadata"]["generation"]
        )

    obj = await until(run, "upgraded", lambda: hr_when(upgraded))
    history = obj["status"]["history"]
    assert [(h["version"], h["status"]) for h in history] == [(2, "deployed"), (1, "superseded")]
    assert (history[0]["chartVersion"], history[0]["appVersion"]) == ("1.0.1", "6.0.1")
    assert history[0]["configDigest"] != history[1]["configDigest"]
    assert await run.helm("get", "values", "web", "-n", namespace) == {"replicaCount": 2}
    entries = await run.helm("history", "web", "-n", namespace)
    assert [(e["revision"], e["status"], e["chart"]) for e in entries] == [
        (1, "superseded", "podinfo-1.0.0"),
        (2, "deployed", "podinfo-1.0.1"),
    ]
    deployment = await kube.get("apps/v1", "Deployment", "web-podinfo", namespace=namespace)
    assert deployment["spec"]["replicas"] == 2

    # A chart version that does not render: Ready=False with helm's message, UpgradeFailed, a Warning Event,
    # `failed` on the bus, and revision 2 still the deployed release.
    await kube.patch(HR, "HelmRelease", "web", {"spec": {"chart": {"spec": {"version": "1.1.0"}}}}, namespace=namespace)

    def failed(o: KubeObject) -> bool:
        return condition(o, "Ready").get("status") == "False" and o["status"].get("lastAttemptedRevision") == "1.1.0"

    obj = await until(run, "failed on 1.1.0", lambda: hr_when(failed))
    ready, released = condition(obj, "Ready"), condition(obj, "Released")
    assert (released["status"], released["reason"]) == ("False", "UpgradeFailed")
    assert ready["reason"] == "UpgradeFailed"
    assert released["message"].startswith(f"Helm upgrade failed for release {namespace}/web with chart podinfo@1.1.0: ")
    assert "this chart version needs ui.message" in released["message"]
    assert ready["message"] == released["message"]

    async def warned() -> bool:
        events = await kube.list("v1", "Event", namespace=namespace)
        return any(
            e["type"] == "Warning"
            and e["reason"] == "UpgradeFailed"
            and e["involvedObject"]["kind"] == "HelmRelease"
            and "this chart version needs ui.message" in str(e.get("message"))
            for e in events.items
        )

    await until(run, "a Warning Event", warned)
    on_bus = await until(run, "failed on the bus", run.events("failed"))
    assert on_bus[-1].reason == "UpgradeFailed"
    assert "this chart version needs ui.message" in on_bus[-1].message
    (listed,) = await run.helm("list", "-n", namespace)
    assert (int(listed["revision"]), listed["status"], listed["chart"]) == (2, "deployed", "podinfo-1.0.1")
    assert obj["status"]["history"][0]["version"] == 2  # nothing stored by a chart that did not render

    # Delete: the release is uninstalled and the HelmChart we created is gone.
    await kube.delete(HR, "HelmRelease", "web", namespace=namespace)

    async def gone() -> bool:
        try:
            await kube.get(HR, "HelmRelease", "web", namespace=namespace)
        except NotFound:
            return True
        return False

    await until(run, "HelmRelease finalized", gone)
    assert await run.helm("list", "-n", namespace) == []
    assert await release_history(kube, namespace, "web") == []  # no record kept (uninstall.keepHistory unset)

    async def chart_gone() -> bool:
        try:
            await kube.get(SRC, "HelmChart", f"{namespace}-web", namespace=namespace)
        except NotFound:
            return True
        return False

    await until(run, "HelmChart deleted", chart_gone, timeout=15)
