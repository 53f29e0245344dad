"""kwok's Pod stages of the local stack (deploy/local/kwok-stages.yaml): Pods end by annotation, Jobs follow.

The test runs its own kwok — the stack's binary and the stages file build.sh renders, which stack.sh gives the
stack's kwok — on a node of its own (tainted, so no other test's Pods land there), so it proves the file the
stack starts with even while an older stack is up, and never disturbs the stack's nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gitops_mesh.errors import NotFound
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh_dev.stack import ROOT
from tests.integration.conftest import eventually

pytestmark = [pytest.mark.stack, pytest.mark.timeout(120)]

OUTCOME = "gitops-mesh.test/outcome"
DELAY = "gitops-mesh.test/outcome-delay"
TAINT = "gitops-mesh.test/kwok-stages"


def built_paths() -> dict[str, str]:
    out = subprocess.run(
        [str(ROOT / "deploy" / "local" / "build.sh"), "--print"], capture_output=True, text=True, timeout=60, check=True
    )
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


@pytest.fixture(scope="module")
async def node(
    stack_env: dict[str, str], kube: KubeClient, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A node of our own, managed by our own kwok with the stack's stages; its name."""
    paths = built_paths()
    assert Path(paths["KWOK_STAGES"]).is_file(), "deploy/local/build.sh has not rendered the kwok stages"
    name = f"kwok-stages-{uuid.uuid4().hex[:8]}"
    log = tmp_path_factory.mktemp("kwok") / "kwok.log"
    with log.open("wb") as out:
        kwok = subprocess.Popen(
            [
                paths["KWOK"],
                "--kubeconfig",
                stack_env["KUBECONFIG"],
                "--config",
                paths["KWOK_STAGES"],
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={TAINT}={name}",
                "--manage-nodes-with-label-selector=",
                "--cidr=10.245.0.1/16",
                "--node-ip=10.241.0.1",
                "--node-lease-duration-seconds=40",
                "--server-address=127.0.0.1:0",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        await kube.create(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {TAINT: name, "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
                },
                "spec": {"taints": [{"key": TAINT, "value": name, "effect": "NoSchedule"}]},
                "status": {"allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"}},
            }
        )

        async def ready() -> bool:
            obj = await kube.get("v1", "Node", name)
            return condition(obj, "Ready") == "True"

        try:
            await eventually(ready, timeout=60)
        except TimeoutError:
            pytest.fail(f"kwok never made {name} Ready: {log.read_text()[-2000:]}", pytrace=False)
        yield name
    finally:
        with contextlib.suppress(NotFound):
            await kube.delete("v1", "Node", name)
        kwok.terminate()
        kwok.wait(10)


def condition(obj: KubeObject, kind: str) -> str | None:
    for c in obj.get("status", {}).get("conditions", []):
        if c.get("type") == kind:
            return str(c.get("status"))
    return None


def pod_spec(node: str, **placement: Any) -> dict[str, Any]:
    return {
        "containers": [{"name": "main", "image": "busybox"}, {"name": "side", "image": "busybox"}],
        "restartPolicy": "Never",
        "tolerations": [{"key": TAINT, "operator": "Equal", "value": node, "effect": "NoSchedule"}],
        **placement,
    }


async def make_pod(kube: KubeClient, namespace: str, node: str, name: str, annotations: dict[str, str]) -> None:
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": pod_spec(node, nodeName=node),
        }
    )


async def phase_of(kube: KubeClient, namespace: str, name: str) -> str:
    return str((await kube.get("v1", "Pod", name, namespace=namespace)).get("status", {}).get("phase", ""))


async def wait_phase(kube: KubeClient, namespace: str, name: str, phase: str, timeout: float = 30) -> KubeObject:
    async def reached() -> bool:
        return await phase_of(kube, namespace, name) == phase

    await eventually(reached, timeout=timeout)
    return await kube.get("v1", "Pod", name, namespace=namespace)


def exit_codes(pod: KubeObject) -> list[int]:
    return sorted(s["state"]["terminated"]["exitCode"] for s in pod["status"]["containerStatuses"])


async def test_annotated_pods_succeed_or_fail(kube: KubeClient, namespace: str, node: str) -> None:
    await make_pod(kube, namespace, node, "ok", {OUTCOME: "succeed"})
    await make_pod(kube, namespace, node, "bad", {OUTCOME: "fail"})

    ok = await wait_phase(kube, namespace, "ok", "Succeeded")
    assert exit_codes(ok) == [0, 0]
    assert condition(ok, "Ready") == "False"

    bad = await wait_phase(kube, namespace, "bad", "Failed")
    assert exit_codes(bad) == [1, 1]
    assert {s["state"]["terminated"]["reason"] for s in bad["status"]["containerStatuses"]} == {"Error"}


async def test_an_unannotated_pod_keeps_running(kube: KubeClient, namespace: str, node: str) -> None:
    """Hooks and tests without the annotation never end: the way tests make a Helm action time out."""
    await make_pod(kube, namespace, node, "forever", {})
    pod = await wait_phase(kube, namespace, "forever", "Running")
    assert condition(pod, "Ready") == "True"
    await asyncio.sleep(3)
    assert await phase_of(kube, namespace, "forever") == "Running"


async def test_the_delay_annotation_holds_the_outcome_back(kube: KubeClient, namespace: str, node: str) -> None:
    start = time.monotonic()
    await make_pod(kube, namespace, node, "slow", {OUTCOME: "succeed", DELAY: "3s"})
    await wait_phase(kube, namespace, "slow", "Running")
    running_after = time.monotonic() - start
    await wait_phase(kube, namespace, "slow", "Succeeded")
    assert time.monotonic() - start >= 2.5, f"ended before its delay (running after {running_after:.1f}s)"


def job(name: str, namespace: str, node: str, annotations: dict[str, str]) -> KubeObject:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations},
                "spec": pod_spec(node, nodeSelector={"kubernetes.io/hostname": node}),
            },
        },
    }


@pytest.mark.parametrize(
    ("annotations", "ending"),
    [({}, "Complete"), ({OUTCOME: "succeed"}, "Complete"), ({OUTCOME: "fail"}, "Failed")],
    ids=["unannotated", "succeed", "fail"],
)
async def test_jobs_complete_or_fail_by_their_pods(
    kube: KubeClient, namespace: str, node: str, annotations: dict[str, str], ending: str
) -> None:
    await kube.create(job("work", namespace, node, annotations))

    async def ended() -> bool:
        obj = await kube.get("batch/v1", "Job", "work", namespace=namespace)
        return condition(obj, "Complete") == "True" or condition(obj, "Failed") == "True"

    await eventually(ended, timeout=60)
    done = await kube.get("batch/v1", "Job", "work", namespace=namespace)
    assert condition(done, ending) == "True", done.get("status")
    status = done["status"]
    assert (status.get("succeeded", 0), status.get("failed", 0)) == ((1, 0) if ending == "Complete" else (0, 1))


async def test_a_deployment_becomes_available(kube: KubeClient, namespace: str, node: str) -> None:
    """The stages for hooks leave the Deployment path alone: its Pods run and are Ready."""
    labels = {"app": "web"}
    await kube.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": pod_spec(node, nodeSelector={"kubernetes.io/hostname": node}, restartPolicy="Always"),
                },
            },
        }
    )

    async def available() -> bool:
        obj = await kube.get("apps/v1", "Deployment", "web", namespace=namespace)
        return condition(obj, "Available") == "True" and obj["status"].get("readyReplicas") == 2

    await eventually(available, timeout=60)
