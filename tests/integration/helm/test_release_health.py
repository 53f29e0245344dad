"""A HelmRelease waits for its objects on the real stack: helm (4) runs with --wait=hookOnly, the controller polls.

source-controller serves the podinfo test chart from a local Helm repository; helm-controller installs it and
is Ready only once kwok made the Deployment Available. Version 1.1.0 of the chart asks for more CPU than any
kwok node has, so its Deployment never becomes Available: the upgrade fails when upgrade.timeout passes, as
Helm's own wait would (UpgradeFailed, the record failed in Helm's storage, counted), and the remediation rolls
back to the release that works (then Stalled: no retries left).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gitops_mesh import commands
from gitops_mesh.bus.topics import Topics, ensure_topics
from gitops_mesh.helmcli import helm_env
from gitops_mesh.kube import KubeClient, health
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh_dev.chartrepo import PODINFO_CHART, ChartRepo
from gitops_mesh_dev.mesh import Controller, common_args, free_port
from helm_controller import status as st
from helm_controller.releases import mark_failed, release_history

HR = "helm.toolkit.fluxcd.io/v2"
SRC = "source.toolkit.fluxcd.io/v1"
#: More CPU than a kwok node has (deploy/local/stack.sh: 32): the Pod is never scheduled.
UNSCHEDULABLE = {"resources": {"requests": {"cpu": "1000"}}}


async def helm(stack_env: dict[str, str], home: Path, *args: str) -> str:
    argv = [stack_env["HELM"], *args, "--kubeconfig", stack_env["KUBECONFIG"]]
    done = await commands.run(argv, env=helm_env(home), timeout=120)
    return done.stdout.decode()


async def helm_major(helm: str, home: Path) -> int:
    done = await commands.run([helm, "version", "--short"], env=helm_env(home), timeout=30)
    return int(done.stdout.decode().strip().lstrip("v").split(".")[0])


async def test_the_objects_of_a_release_helm_made_are_checked_and_a_failed_wait_is_recorded_as_helm_would(
    stack_env: dict[str, str], kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    """The pieces under the wait, with whatever helm the stack has (3 and 4 share the storage format): the
    manifest's objects from Helm's record, their health through kwok, and a failed wait written to storage."""
    home = tmp_path / "home"
    await helm(stack_env, home, "install", "good", str(PODINFO_CHART), "-n", namespace)
    await helm(
        stack_env, home, "install", "stuck", str(PODINFO_CHART), "-n", namespace, "--set", "resources.requests.cpu=1000"
    )

    (good,) = await release_history(kube, namespace, "good")
    refs = good.objects()
    assert [r.subject for r in refs] == [f"Service/{namespace}/good-podinfo", f"Deployment/{namespace}/good-podinfo"]
    deadline = time.monotonic() + 60
    while (report := await health.check(kube, refs)).verdict() is not health.Verdict.HEALTHY:
        assert time.monotonic() < deadline, report.message()
        await asyncio.sleep(0.2)

    (stuck,) = await release_history(kube, namespace, "stuck")
    await asyncio.sleep(2)  # kwok and the scheduler had their chance: the Pod cannot be placed
    report = await health.check(kube, stuck.objects())
    verdict = report.verdict(elapsed=10, timeout=8)
    assert verdict is health.Verdict.TIMED_OUT
    error = report.message(verdict)
    assert error.startswith(f"timeout waiting for: [Deployment/{namespace}/stuck-podinfo status: 'InProgress': ")

    failed = await mark_failed(kube, stuck, st.helm_wait_failure("install", "stuck", error))
    assert failed is not None
    assert (failed.version, failed.status) == (1, "failed")
    listed = await helm(stack_env, home, "history", "stuck", "-n", namespace, "-o", "json")
    (entry,) = json.loads(listed)
    assert entry["status"] == "failed"
    assert entry["description"].startswith('Release "stuck" failed: timeout waiting for: [Deployment/')
    assert failed.digest() != stuck.digest()  # the snapshot in status changes with the record
    # Only a deployed record of that version is failed: nothing is written twice.
    assert await mark_failed(kube, stuck, "again") is None
    (again,) = await release_history(kube, namespace, "stuck")
    assert again.description == failed.description


@pytest.fixture
async def controllers(
    stack_env: dict[str, str], namespace: str, unique: str, tmp_path: Path
) -> AsyncIterator[list[Controller]]:
    """source- and helm-controller for this namespace, once the stack carries Helm 4 and the controller is whole."""
    if await helm_major(stack_env["HELM"], tmp_path / "helm-home") < 4:
        pytest.skip("the stack's helm is not Helm 4 yet (HELM in .stack/env); helm-controller runs helm 4 only")
    pytest.importorskip("helm_controller.values", reason="helm-controller's values module is not in the tree yet")
    pytest.importorskip("helm_controller.chart_template", reason="helm-controller's HelmChart template is not in yet")
    topics = Topics(f"{unique}.")
    await ensure_topics(stack_env["KAFKA_BOOTSTRAP"], topics.all(), partitions=1)
    common = common_args(stack_env, topics, namespace)
    source = Controller(
        "source-controller",
        [*common, f"--storage-path={tmp_path / 'storage'}", f"--storage-addr=127.0.0.1:{free_port()}"],
        tmp_path / "source-controller.log",
    )
    helm = Controller(
        "helm-controller",
        [*common, f"--helm-path={stack_env['HELM']}", "--health-poll=500ms", "--requeue-dependency=2s"],
        tmp_path / "helm-controller.log",
    )
    running = [source, helm]
    try:
        for ctl in running:
            ctl.start()
        for ctl in running:
            await ctl.ready()
        yield running
    finally:
        for ctl in running:
            await ctl.stop()


@pytest.fixture
async def repo(stack_env: dict[str, str], tmp_path: Path) -> AsyncIterator[ChartRepo]:
    async with ChartRepo(tmp_path / "charts", helm=stack_env["HELM"]) as r:
        await r.add(PODINFO_CHART, version="1.0.0")
        await r.add(PODINFO_CHART, version="1.1.0", values=UNSCHEDULABLE)
        yield r


def helmrelease(namespace: str, version: str, **spec: Any) -> KubeObject:
    return {
        "apiVersion": HR,
        "kind": "HelmRelease",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "interval": "10m",
            "chart": {
                "spec": {
                    "chart": "podinfo",
                    "version": version,
                    "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                    "interval": "10m",
                }
            },
            **spec,
        },
    }


def condition(obj: KubeObject, type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


async def until(
    kube: KubeClient, namespace: str, check: Any, what: str, logs: list[Controller], timeout: float = 90
) -> KubeObject:
    """Poll the HelmRelease until ``check(obj)``; fails with its status and helm-controller's log."""
    deadline, obj = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        obj = await kube.get(HR, "HelmRelease", "web", namespace=namespace)
        if check(obj):
            return obj
        await asyncio.sleep(0.2)
    raise AssertionError(f"HelmRelease never {what}: {obj.get('status')}\n{logs[-1].tail(4000)}")


async def test_ready_only_once_the_deployment_is_available_then_a_stuck_upgrade_fails_and_rolls_back(
    kube: KubeClient, namespace: str, repo: ChartRepo, controllers: list[Controller]
) -> None:
    await kube.create(
        {
            "apiVersion": SRC,
            "kind": "HelmRepository",
            "metadata": {"name": "charts", "namespace": namespace},
            "spec": {"url": repo.url, "interval": "10m"},
        }
    )
    seen_waiting: list[str] = []

    def ready(obj: KubeObject) -> bool:
        r = condition(obj, "Ready")
        if r.get("status") == "Unknown" and "waiting for" in str(r.get("message")):
            seen_waiting.append(str(r["message"]))
        return r.get("status") == "True"

    await kube.create(helmrelease(namespace, "1.0.0", timeout="1m"))
    obj = await until(kube, namespace, ready, "Ready", controllers)
    released = condition(obj, "Released")
    assert (released["status"], released["reason"]) == ("True", "InstallSucceeded")
    status = obj["status"]
    assert status["lastAttemptedReleaseActionDuration"]  # the action (with its wait) ended
    deployment = await kube.get("apps/v1", "Deployment", "web-podinfo", namespace=namespace)
    available = condition(deployment, "Available")
    assert available.get("status") == "True", deployment.get("status")
    history = await release_history(kube, namespace, "web")
    assert [(r.version, r.status) for r in history] == [(1, "deployed")]
    for message in seen_waiting:  # what Ready said while kwok rolled the Deployment out
        assert message.startswith("Running 'install' action with timeout of 1m0s: waiting for: [")

    # 1.1.0 never becomes Available: the upgrade fails past upgrade.timeout and is rolled back.
    started = time.monotonic()
    patch = {
        "spec": {
            "chart": {"spec": {"version": "1.1.0"}},
            # No retry, but the last failure remediated: one rollback, then Stalled (a stable end state).
            "upgrade": {"timeout": "8s", "remediation": {"retries": 0, "remediateLastFailure": True}},
        }
    }
    await kube.patch(HR, "HelmRelease", "web", patch, namespace=namespace)

    def upgrade_failed(o: KubeObject) -> bool:
        return condition(o, "Released").get("reason") == "UpgradeFailed"

    obj = await until(kube, namespace, upgrade_failed, "UpgradeFailed", controllers)
    assert time.monotonic() - started >= 8  # not before the timeout: no object failed, it only never got ready
    released = condition(obj, "Released")
    assert released["status"] == "False"
    assert released["message"].startswith(f"Helm upgrade failed for release {namespace}/web with chart podinfo@1.1.0: ")
    assert "timeout waiting for: [Deployment/" in released["message"]
    assert obj["status"]["upgradeFailures"] >= 1
    assert obj["status"]["failures"] >= 1

    history = await release_history(kube, namespace, "web")
    failed = next(r for r in history if r.version == 2)
    assert failed.status == "failed"  # as Helm records a failed wait: `helm history` shows it
    assert failed.description.startswith('Upgrade "web" failed: timeout waiting for: [Deployment/')

    def rolled_back(o: KubeObject) -> bool:
        return condition(o, "Remediated").get("reason") == "RollbackSucceeded"

    obj = await until(kube, namespace, rolled_back, "rolled back", controllers)
    remediated = condition(obj, "Remediated")
    assert remediated["status"] == "True"
    assert f"rollback to previous release {namespace}/web.v1 with chart podinfo@1.0.0" in remediated["message"]
    assert condition(obj, "Ready")["status"] == "False"  # a remediated release is not Ready
    obj = await until(
        kube, namespace, lambda o: condition(o, "Stalled").get("status") == "True", "Stalled", controllers
    )
    assert condition(obj, "Stalled")["reason"] == "RetriesExceeded"
    history = await release_history(kube, namespace, "web")
    rollback = next(r for r in history if r.version == 3)
    assert (rollback.status, rollback.chart_version) == ("deployed", "1.0.0")


async def test_a_paused_deployment_is_not_waited_for_by_a_release(kube: KubeClient, namespace: str) -> None:
    """Helm's wait (and Flux's for releases) skips a paused Deployment: its rollout would never complete."""
    labels = {"app": "paused"}
    await kube.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "paused", "namespace": namespace},
            "spec": {
                "paused": True,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "1000"}}}]
                    },
                },
            },
        }
    )
    ref = health.ObjectRef("apps/v1", "Deployment", namespace, "paused")
    released = await health.check(kube, [ref], skip_paused=True)
    assert released.results[ref] == health.Health(health.Status.CURRENT, "Deployment is paused")
    kustomized = await health.check(kube, [ref])  # kustomize's health checks look at it as kstatus does
    assert not kustomized.healthy
