"""Helm's storage as the real helm writes it, read by us; actions through the real helm (4) on the stack.

The storage tests run with whatever helm the stack has (Helm 3 and 4 share the Secret format); the action
tests need Helm 4's command line and are skipped until the stack carries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path

import pytest

from gitops_mesh import commands
from gitops_mesh.helmcli import helm_env
from gitops_mesh.kube import KubeClient
from helm_controller.actions import ActionRequest, HelmActionFailed, HelmActions, KubeAccess
from helm_controller.releases import last_release, pending, release_history, unlock

HOOK_POD = """apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-pre-upgrade
  annotations:
    "helm.sh/hook": pre-upgrade
    "helm.sh/hook-delete-policy": before-hook-creation
spec:
  containers:
    - name: wait
      image: busybox
"""


async def helm(stack_env: dict[str, str], home: Path, *args: str, timeout: float = 120) -> str:
    argv = [stack_env["HELM"], *args, "--kubeconfig", stack_env["KUBECONFIG"]]
    done = await commands.run(argv, env=helm_env(home), timeout=timeout)
    return done.stdout.decode()


@pytest.fixture
async def chart(stack_env: dict[str, str], tmp_path: Path) -> Path:
    """A tiny chart made by ``helm create``, with a pre-upgrade hook Pod that never completes under kwok."""
    home = tmp_path / "home"
    home.mkdir()
    await helm(stack_env, home, "create", str(tmp_path / "tiny"))
    templates = tmp_path / "tiny" / "templates"
    for extra in ("tests", "hpa.yaml", "ingress.yaml", "httproute.yaml"):
        p = templates / extra
        if p.is_dir():
            for f in p.iterdir():
                f.unlink()
            p.rmdir()
        elif p.exists():
            p.unlink()
    (templates / "hook.yaml").write_text("{{- if .Values.stuckHook }}\n" + HOOK_POD + "{{- end }}\n")
    # A chart that refuses to render when asked, quoting the value it refuses (a secret, in the test below).
    (templates / "refuse.yaml").write_text('{{- with .Values.refuse }}{{ fail (printf "refused: %v" .) }}{{- end }}\n')
    # An object the apiserver's strict field validation refuses.
    (templates / "bogus.yaml").write_text(
        "{{- if .Values.bogus }}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-bogus\n"
        "bogus: field\ndata: {}\n{{- end }}\n"
    )
    out = await helm(stack_env, home, "package", str(tmp_path / "tiny"), "-d", str(tmp_path))
    return Path(out.strip().rsplit(": ", 1)[1])


async def test_history_and_unlock_of_a_killed_upgrade(
    stack_env: dict[str, str], kube: KubeClient, namespace: str, chart: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    base = ["-n", namespace]
    await helm(stack_env, home, "install", "tiny", str(chart), *base, "--set", "replicaCount=2")
    await helm(stack_env, home, "upgrade", "tiny", str(chart), *base, "--set", "replicaCount=3")

    history = await release_history(kube, namespace, "tiny")
    theirs = json.loads(await helm(stack_env, home, "history", "tiny", *base, "-o", "json"))
    assert [(r.version, r.status) for r in history] == [(2, "deployed"), (1, "superseded")]
    assert sorted((h["revision"], h["status"]) for h in theirs) == sorted((r.version, r.status) for r in history)
    assert history[0].config == {"replicaCount": 3}
    assert (history[0].chart_name, history[0].chart_version) == ("tiny", "0.1.0")
    assert history[0].storage_namespace == namespace
    assert history[0].digest() != history[1].digest()

    # An upgrade whose pre-upgrade hook never ends, killed with SIGKILL once Helm marked it pending.
    argv = [stack_env["HELM"], "upgrade", "tiny", str(chart), *base, "--kubeconfig", stack_env["KUBECONFIG"]]
    argv += ["--set", "stuckHook=true", "--timeout", "5m"]
    upgrade = asyncio.create_task(commands.run(argv, env=helm_env(home), timeout=300))
    try:
        for _ in range(300):
            latest = await last_release(kube, namespace, "tiny")
            if latest is not None and latest.version == 3:
                break
            await asyncio.sleep(0.1)
    finally:
        upgrade.cancel()  # commands.run kills helm's process group with SIGKILL and reaps it
        with contextlib.suppress(asyncio.CancelledError):
            await upgrade
    stuck = await last_release(kube, namespace, "tiny")
    assert stuck is not None
    assert (stuck.version, stuck.status) == (3, "pending-upgrade")
    assert pending(stuck)

    await unlock(kube, stuck)
    recovered = await last_release(kube, namespace, "tiny")
    assert recovered is not None
    assert (recovered.version, recovered.status) == (3, "failed")
    assert recovered.description == "Release unlocked from stale 'pending-upgrade' state"
    secret = await kube.get("v1", "Secret", recovered.secret_name, namespace=namespace)
    assert secret["metadata"]["labels"]["status"] == "failed"
    # helm agrees, and can act on the release again.
    status = json.loads(await helm(stack_env, home, "status", "tiny", *base, "-o", "json"))
    assert status["info"]["status"] == "failed"
    await helm(stack_env, home, "upgrade", "tiny", str(chart), *base, "--set", "replicaCount=4")
    assert [r.status for r in await release_history(kube, namespace, "tiny")][:2] == ["deployed", "failed"]


async def helm_major(stack_env: dict[str, str], home: Path) -> int:
    out = await helm(stack_env, home, "version", "--short")
    return int(out.strip().lstrip("v").split(".")[0])


async def test_actions_with_helm4(
    stack_env: dict[str, str], kube: KubeClient, namespace: str, chart: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    if await helm_major(stack_env, home) < 4:
        pytest.skip("the stack's helm is not Helm 4 yet")
    kubeconfig = Path(stack_env["KUBECONFIG"])
    run = HelmActions(stack_env["HELM"], tmp_path / "work")

    def request(**values: object) -> ActionRequest:
        return ActionRequest(
            release_name="tiny",
            target_namespace=namespace,
            storage_namespace=namespace,
            chart_path=chart,
            values=values,
            timeout=60,
            max_history=5,
            kube=KubeAccess(kubeconfig, client=kube),
            secrets=frozenset({"hunter2-secret"}),
        )

    installed = await run.install(request(replicaCount=1, password="hunter2-secret"))
    assert (installed.version, installed.status, installed.apply_method) == (1, "deployed", "ssa")
    upgraded = await run.upgrade(request(replicaCount=2))
    assert (upgraded.version, upgraded.status) == (2, "deployed")
    assert upgraded.config == {"replicaCount": 2}
    rolled = await run.rollback(request(), None)
    assert (rolled.version, rolled.config) == (3, {"replicaCount": 1, "password": "hunter2-secret"})
    listed = json.loads(await helm(stack_env, home, "list", "-n", namespace, "-o", "json"))
    assert [(r["name"], int(r["revision"]), r["status"]) for r in listed] == [("tiny", 3, "deployed")]
    tested = await run.test(request())
    assert tested.version == 3
    # A failing action: helm's message, Flux's reason, no secret in it.
    with pytest.raises(HelmActionFailed) as failed:
        await run.upgrade(request(refuse="hunter2-secret"))
    assert failed.value.reason == "UpgradeFailed"
    assert "refused: " in str(failed.value)  # helm's own message, the secret redacted out of it
    assert "hunter2" not in str(failed.value)
    await run.uninstall(request(), keep_history=False, deletion_propagation="background")
    assert await release_history(kube, namespace, "tiny") == []
    # every private work directory removed; the discovery cache the helm calls share stays
    assert [e.name for e in os.scandir(tmp_path / "work")] == ["kube-cache"]


@pytest.mark.parametrize("server_validates_fields", [False, True])
async def test_unknown_fields_refused_with_or_without_helms_client_check(
    stack_env: dict[str, str],
    kube: KubeClient,
    namespace: str,
    chart: Path,
    tmp_path: Path,
    server_validates_fields: bool,
) -> None:
    """--disable-openapi-validation (set where the server validates) refuses what helm's own check refuses."""
    if await helm_major(stack_env, tmp_path / "home") < 4:
        pytest.skip("the stack's helm is not Helm 4 yet")
    run = HelmActions(stack_env["HELM"], tmp_path / "work")
    access = KubeAccess(Path(stack_env["KUBECONFIG"]), client=kube, server_validates_fields=server_validates_fields)
    request = ActionRequest(
        release_name="strict",
        target_namespace=namespace,
        storage_namespace=namespace,
        chart_path=chart,
        values={"bogus": True},
        timeout=60,
        max_history=5,
        kube=access,
    )
    with pytest.raises(HelmActionFailed) as failed:
        await run.install(request)
    assert failed.value.reason == "InstallFailed"
    # The apiserver's refusal in both modes: on a 1.27+ server helm's client check never validated anything.
    assert ".bogus: field not declared in schema" in str(failed.value)
    assert [r.status for r in await release_history(kube, namespace, "strict")] == ["failed"]
