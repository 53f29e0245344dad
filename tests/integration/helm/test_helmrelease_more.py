"""HelmRelease behaviours through the real source- and helm-controller processes that the first tests leave out.

- a SIGKILL of helm-controller (and its helm child) while an upgrade's post-upgrade hook runs: the release is
  left pending-upgrade; the restarted controller unlocks it as Flux does and upgrades to Ready, and its status
  agrees with `helm history`;
- `helm test` (passing, failing with ignoreFailures) and a failing post-install hook with install remediation
  retries (uninstall, then install again, then Stalled/RetriesExceeded);
- dependsOn: the dependent waits (DependencyNotReady) and installs promptly once the dependency is Ready;
- the mission's v2beta1 HelmRelease and v1beta1 HelmRepository, applied as written, reconciled to Ready;
- upgrade remediation of objects that never become Available: rollback with a retry, and uninstall.

Pods end by kwok stages (deploy/local/kwok-stages.yaml): the chart's hook Job and test Pod succeed or fail by
values, after a delay if asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_mesh import commands
from gitops_mesh.bus.topics import Topic, Topics, ensure_topics
from gitops_mesh.helmcli import helm_env
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh_dev.chartrepo import PODINFO_CHART, ChartRepo
from gitops_mesh_dev.mesh import Controller, common_args, free_port
from helm_controller.releases import release_history
from tests.support.bus import BusLog, recording

pytestmark = [pytest.mark.stack, pytest.mark.timeout(150)]

HR = "helm.toolkit.fluxcd.io/v2"
SRC = "source.toolkit.fluxcd.io/v1"
#: More CPU than a kwok node has (deploy/local/stack.sh: 32): the Pod is never scheduled.
UNSCHEDULABLE = {"resources": {"requests": {"cpu": "1000"}}}
#: Far longer than any wait here: a dependency woken by it would be late, so promptness proves the wake-up.
REQUEUE_DEPENDENCY = 60
DEPRECATED_EXAMPLE = Path(__file__).parents[1] / "crds" / "deprecated" / "podinfo-v2beta1.yaml"


@dataclass
class Stack:
    kube: KubeClient
    namespace: str
    env: dict[str, str]
    home: Path
    source: Controller
    helm_controller: Controller
    bus: BusLog

    async def helm(self, *args: str) -> Any:
        argv = [self.env["HELM"], *args, "--kubeconfig", self.env["KUBECONFIG"], "-o", "json"]
        done = await commands.run(argv, env=helm_env(self.home), timeout=60)
        return json.loads(done.stdout.decode())

    async def history(self, name: str) -> list[tuple[int, str]]:
        """`helm history` as (revision, status), oldest first."""
        return [(int(e["revision"]), str(e["status"])) for e in await self.helm("history", name, "-n", self.namespace)]

    async def get(self, name: str) -> KubeObject:
        return await self.kube.get(HR, "HelmRelease", name, namespace=self.namespace)

    async def until(
        self,
        name: str,
        check: Callable[[KubeObject], bool],
        what: str,
        timeout: float = 60,
        seen: list[Any] | None = None,
    ) -> KubeObject:
        """Poll the HelmRelease until ``check(obj)``; each status seen is kept in ``seen``; fails with the log."""
        deadline, obj = time.monotonic() + timeout, {}
        while time.monotonic() < deadline:
            obj = await self.get(name)
            if seen is not None:
                seen.append(obj.get("status") or {})
            if check(obj):
                return obj
            await asyncio.sleep(0.2)
        raise AssertionError(f"HelmRelease {name} never {what}: {obj.get('status')}\n{self.helm_controller.tail(5000)}")

    async def helm_repository(self, url: str, api_version: str = SRC, name: str = "charts") -> None:
        repo = {"url": url, "interval": "10m"}
        await self.kube.create(
            {
                "apiVersion": api_version,
                "kind": "HelmRepository",
                "metadata": {"name": name, "namespace": self.namespace},
                "spec": repo,
            }
        )


@pytest.fixture
async def repo(stack_env: dict[str, str], tmp_path: Path) -> AsyncIterator[ChartRepo]:
    async with ChartRepo(tmp_path / "charts", helm=stack_env["HELM"]) as r:
        await r.add(PODINFO_CHART, version="1.0.0")
        await r.add(PODINFO_CHART, version="1.1.0", values=UNSCHEDULABLE)
        await r.add(PODINFO_CHART)  # 6.0.0, for the mission's example (">=6.0.0 <7.0.0")
        yield r


@pytest.fixture
async def stack(
    stack_env: dict[str, str], kube: KubeClient, namespace: str, unique: str, tmp_path: Path
) -> AsyncIterator[Stack]:
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
        [
            *common,
            f"--helm-path={stack_env['HELM']}",
            "--health-poll=500ms",
            f"--requeue-dependency={REQUEUE_DEPENDENCY}s",
        ],
        tmp_path / "helm-controller.log",
    )
    which = [Topic.APPLIED, Topic.FAILED]
    async with recording(stack_env["KAFKA_BOOTSTRAP"], topics, f"{unique}-observer", which) as bus:
        try:
            for ctl in (source, helm):
                ctl.start()
            for ctl in (source, helm):
                await ctl.ready()
            yield Stack(kube, namespace, stack_env, tmp_path / "helm-home", source, helm, bus)
        finally:
            for ctl in (source, helm):
                await ctl.stop()


def helmrelease(namespace: str, name: str, version: str = "1.0.0", **spec: Any) -> KubeObject:
    return {
        "apiVersion": HR,
        "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "interval": "10m",
            "timeout": "1m",
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


def is_(type_: str, status: str, reason: str | None = None) -> Callable[[KubeObject], bool]:
    def check(obj: KubeObject) -> bool:
        c = condition(obj, type_)
        return c.get("status") == status and (reason is None or c.get("reason") == reason)

    return check


def ready_at_generation(obj: KubeObject) -> bool:
    return is_("Ready", "True")(obj) and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]


def history_of(obj: KubeObject) -> list[tuple[int, str]]:
    """status.history as (version, status), oldest first, as `helm history` lists."""
    return [(int(h["version"]), str(h["status"])) for h in reversed(obj["status"].get("history") or [])]


def descendants(pid: int) -> list[int]:
    """The children of ``pid`` (every thread's), and theirs: helm runs as the controller's child."""
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                for child in (task / "children").read_text().split():
                    found += [int(child), *descendants(int(child))]
    return found


def cmdline(pid: int) -> list[str]:
    with contextlib.suppress(FileNotFoundError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    return []


async def test_sigkill_mid_upgrade_is_unlocked_and_upgraded_on_restart(stack: Stack, repo: ChartRepo) -> None:
    s = stack
    await s.helm_repository(repo.url)
    await s.kube.create(helmrelease(s.namespace, "web"))
    await s.until("web", ready_at_generation, "installed")

    # The upgrade's post-upgrade hook Job runs for 8s: helm waits for it with the release pending-upgrade.
    hooks = {"hooks": {"enabled": True, "outcome": "succeed", "delay": "8s"}}
    await s.kube.patch(HR, "HelmRelease", "web", {"spec": {"values": hooks}}, namespace=s.namespace)

    async def pending() -> bool:
        records = await release_history(s.kube, s.namespace, "web")
        return bool(records) and records[0].status == "pending-upgrade"

    deadline = time.monotonic() + 30
    while not await pending():
        assert time.monotonic() < deadline, s.helm_controller.tail(4000)
        await asyncio.sleep(0.1)
    assert s.helm_controller.proc is not None
    children = descendants(s.helm_controller.proc.pid)
    helm_upgrades = [pid for pid in children if "upgrade" in cmdline(pid)]
    assert helm_upgrades, f"no helm upgrade running under helm-controller: {[cmdline(p) for p in children]}"
    # SIGKILL the controller and its helm (a session of its own): nothing finishes the upgrade.
    s.helm_controller.kill()
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    await asyncio.sleep(1)
    assert await s.history("web") == [(1, "deployed"), (2, "pending-upgrade")], "the kill must leave it pending"

    s.helm_controller.start()
    await s.helm_controller.ready()
    obj = await s.until("web", ready_at_generation, "recovered and Ready", timeout=90)
    released = condition(obj, "Released")
    assert (released["status"], released["reason"]) == ("True", "UpgradeSucceeded")
    listed = await s.history("web")
    # The pending release was unlocked (failed, as Flux's unlock writes it), then upgraded again.
    assert listed == [(1, "superseded"), (2, "failed"), (3, "deployed")]
    entries = await s.helm("history", "web", "-n", s.namespace)
    assert "unlock" in entries[1]["description"].lower() or "pending" in entries[1]["description"].lower()
    # Nothing lost: the status' history is helm's, newest first, and the release has the new values.
    assert history_of(obj) == [e for e in listed if e[0] in {int(h["version"]) for h in obj["status"]["history"]}]
    assert obj["status"]["history"][0]["version"] == 3
    assert (await s.helm("get", "values", "web", "-n", s.namespace))["hooks"]["delay"] == "8s"
    job = await s.kube.get("batch/v1", "Job", "web-podinfo-hook", namespace=s.namespace)
    assert condition(job, "Complete").get("status") == "True"


async def test_tests_pass_then_fail_ignored_and_a_failing_hook_is_remediated_by_uninstall(
    stack: Stack, repo: ChartRepo
) -> None:
    s = stack
    await s.helm_repository(repo.url)
    tests = {"tests": {"enabled": True, "outcome": "succeed"}}
    await s.kube.create(helmrelease(s.namespace, "tested", values=tests, test={"enable": True}))
    # A failing post-install hook, one retry: install, uninstall, install again, then out of retries.
    failing_hook = {"hooks": {"enabled": True, "outcome": "fail"}}
    await s.kube.create(
        helmrelease(s.namespace, "hooked", values=failing_hook, install={"remediation": {"retries": 1}})
    )
    seen: list[Any] = []
    watching = asyncio.create_task(s.until("hooked", is_("Stalled", "True"), "Stalled", seen=seen, timeout=90))

    obj = await s.until("tested", lambda o: ready_at_generation(o) and is_("TestSuccess", "True")(o), "tested")
    tested = condition(obj, "TestSuccess")
    assert tested["reason"] == "TestSucceeded"
    hooks = obj["status"]["history"][0]["testHooks"]
    assert {name: h.get("phase") for name, h in hooks.items()} == {"tested-podinfo-test": "Succeeded"}

    # A failing test under ignoreFailures: TestSuccess False/TestFailed, the release stays Ready.
    patch = {"spec": {"values": {"tests": {"outcome": "fail"}}, "test": {"ignoreFailures": True}}}
    await s.kube.patch(HR, "HelmRelease", "tested", patch, namespace=s.namespace)
    obj = await s.until(
        "tested", lambda o: ready_at_generation(o) and is_("TestSuccess", "False")(o), "test failed, ignored"
    )
    assert condition(obj, "TestSuccess")["reason"] == "TestFailed"
    assert condition(obj, "Released")["reason"] == "UpgradeSucceeded"
    assert await s.history("tested") == [(1, "superseded"), (2, "deployed")]
    hooks = obj["status"]["history"][0]["testHooks"]
    assert {name: h.get("phase") for name, h in hooks.items()} == {"tested-podinfo-test": "Failed"}

    obj = await watching
    assert condition(obj, "Ready")["status"] == "False"
    assert condition(obj, "Stalled")["reason"] == "RetriesExceeded"
    released = condition(obj, "Released")
    assert (released["status"], released["reason"]) == ("False", "InstallFailed")
    assert obj["status"]["installFailures"] == 2
    reasons = {(c["type"], c["reason"]) for status in seen for c in status.get("conditions") or []}
    assert ("Remediated", "UninstallSucceeded") in reasons, reasons
    # The second install's record, failed as helm wrote it; the first went with the uninstall.
    assert await s.history("hooked") == [(1, "failed")]
    failed = await s.until("hooked", lambda o: bool(s.bus.of("failed", "hooked")), "failed on the bus", timeout=10)
    assert failed["status"]["lastAttemptedReleaseAction"] == "install"


async def test_a_dependent_installs_promptly_once_its_dependency_is_ready(stack: Stack, repo: ChartRepo) -> None:
    s = stack
    await s.helm_repository(repo.url)
    # a's post-install hook takes 6s: b waits for it.
    slow = {"hooks": {"enabled": True, "outcome": "succeed", "delay": "6s"}}
    await s.kube.create(helmrelease(s.namespace, "a", values=slow))
    await s.kube.create(helmrelease(s.namespace, "b", dependsOn=[{"name": "a"}]))

    obj = await s.until("b", is_("Ready", "False", "DependencyNotReady"), "waiting for a")
    assert "a" in condition(obj, "Ready")["message"]
    a = await s.until("a", ready_at_generation, "Ready", timeout=60)
    a_ready = time.monotonic()
    assert not (await s.get("b"))["status"].get("history"), "b released before a was Ready"
    await s.until("b", ready_at_generation, "installed after a", timeout=30)
    # Well before --requeue-dependency: b was woken by a's news, not by its own timer.
    assert time.monotonic() - a_ready < REQUEUE_DEPENDENCY / 3
    applied = s.bus.of("applied", "a")
    assert applied
    assert applied[0].revision == a["status"]["history"][0]["chartVersion"] == "1.0.0"
    assert [r[1] for r in await s.history("b")] == ["deployed"]


async def test_the_missions_v2beta1_manifests_are_reconciled(stack: Stack, repo: ChartRepo) -> None:
    s = stack
    docs = [d for d in yaml.safe_load_all(DEPRECATED_EXAMPLE.read_text()) if d]
    by_kind = {d["kind"]: d for d in docs}
    assert by_kind["HelmRepository"]["apiVersion"] == "source.toolkit.fluxcd.io/v1beta1"
    assert by_kind["HelmRelease"]["apiVersion"] == "helm.toolkit.fluxcd.io/v2beta1"
    # As written, but the repository served here and this test's namespace as the target.
    by_kind["HelmRepository"]["spec"]["url"] = repo.url
    by_kind["HelmRelease"]["spec"]["targetNamespace"] = s.namespace
    for doc in docs:
        doc["metadata"]["namespace"] = s.namespace
        await s.kube.create(doc)

    obj = await s.until("podinfo", ready_at_generation, "Ready", timeout=60)
    assert condition(obj, "Released")["reason"] == "InstallSucceeded"
    assert condition(obj, "TestSuccess")["status"] == "True"  # test.enable: the chart's tests are off: none ran
    assert obj["status"]["history"][0]["chartVersion"] == "6.0.0"
    (listed,) = await s.helm("list", "-n", s.namespace)
    assert (listed["name"], listed["status"], listed["chart"]) == ("podinfo", "deployed", "podinfo-6.0.0")
    values = await s.helm("get", "values", "podinfo", "-n", s.namespace)
    assert values == {"replicaCount": 2, "ui": {"message": "hello from v2beta1"}}
    # Read back in the version it was written in: the same object, with its status.
    old = await s.kube.get("helm.toolkit.fluxcd.io/v2beta1", "HelmRelease", "podinfo", namespace=s.namespace)
    assert condition(old, "Ready")["status"] == "True"
    assert old["spec"]["install"]["remediation"]["retries"] == 3


async def test_upgrade_remediation_rolls_back_with_a_retry_or_uninstalls(stack: Stack, repo: ChartRepo) -> None:
    s = stack
    await s.helm_repository(repo.url)
    await s.kube.create(helmrelease(s.namespace, "back"))
    await s.kube.create(helmrelease(s.namespace, "gone"))
    await s.until("back", ready_at_generation, "installed")
    await s.until("gone", ready_at_generation, "installed")

    # 1.1.0 never becomes Available: each upgrade fails after upgrade.timeout.
    def broken(remediation: dict[str, Any]) -> dict[str, Any]:
        return {
            "spec": {
                "chart": {"spec": {"version": "1.1.0"}},
                "upgrade": {"timeout": "5s", "remediation": remediation},
                "install": {"timeout": "5s"},
            }
        }

    await s.kube.patch(HR, "HelmRelease", "back", broken({"retries": 1}), namespace=s.namespace)
    await s.kube.patch(
        HR,
        "HelmRelease",
        "gone",
        broken({"retries": 0, "remediateLastFailure": True, "strategy": "uninstall"}),
        namespace=s.namespace,
    )

    # Both watched from now on: a remediation's condition lasts only until the next action starts.
    seen_back: list[Any] = []
    seen_gone: list[Any] = []
    back = asyncio.create_task(s.until("back", is_("Stalled", "True"), "Stalled", seen=seen_back, timeout=90))
    gone = asyncio.create_task(s.until("gone", is_("Stalled", "True"), "Stalled", seen=seen_gone, timeout=90))

    # rollback, retries 1: upgrade, rollback, upgrade again, rollback (the last failure remediated), Stalled.
    obj = await back
    assert condition(obj, "Stalled")["reason"] == "RetriesExceeded"
    remediated = condition(obj, "Remediated")
    assert (remediated["status"], remediated["reason"]) == ("True", "RollbackSucceeded")
    assert obj["status"]["upgradeFailures"] == 2
    listed = await s.history("back")
    assert listed == [(1, "superseded"), (2, "failed"), (3, "superseded"), (4, "failed"), (5, "deployed")]
    (entry,) = await s.helm("list", "-n", s.namespace, "--filter", "^back$")
    assert entry["chart"] == "podinfo-1.0.0"
    assert history_of(obj) == [e for e in listed if e[0] in {int(h["version"]) for h in obj["status"]["history"]}]

    # uninstall: the failed upgrade is remediated by uninstalling the release, then installed again (Absent);
    # that install of 1.1.0 fails too, with no install retries: Stalled.
    obj = await gone
    remediations = [c for status in seen_gone for c in status.get("conditions") or [] if c["type"] == "Remediated"]
    assert any(c["status"] == "True" and c["reason"] == "UninstallSucceeded" for c in remediations), remediations
    assert obj["status"]["upgradeFailures"] == 1
    assert obj["status"]["installFailures"] == 1
    assert condition(obj, "Released")["reason"] == "InstallFailed"
    assert condition(obj, "Ready")["status"] == "False"
    assert await s.history("gone") == [(1, "failed")]  # the upgraded history went with the uninstall
