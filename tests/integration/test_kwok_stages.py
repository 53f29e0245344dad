"""kwok's Pod stages of the local stack (deploy/local/kwok-stages.yaml): Pods end by annotation, Jobs follow.

The test runs its own kwok (tests/support/kwok_node.py) — the stack's binary and the stages file build.sh
renders, which stack.sh gives the stack's kwok — on a node of its own, so it proves the file the stack starts
with even while an older stack is up, and never disturbs the stack's nodes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from tests.integration.conftest import eventually
from tests.support.kwok_node import KwokNode, condition, kwok_node

pytestmark = [pytest.mark.stack, pytest.mark.timeout(120)]

OUTCOME = "gitops-mesh.test/outcome"
DELAY = "gitops-mesh.test/outcome-delay"


@pytest.fixture(scope="module")
async def node(
    stack_env: dict[str, str], kube: KubeClient, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[KwokNode]:
    async with kwok_node(kube, stack_env["KUBECONFIG"], tmp_path_factory.mktemp("kwok") / "kwok.log") as ours:
        yield ours


def pod_spec(node: KwokNode, **extra: Any) -> dict[str, Any]:
    return {
        "containers": [{"name": "main", "image": "busybox"}, {"name": "side", "image": "busybox"}],
        "restartPolicy": "Never",
        **node.placement(),
        **extra,
    }


async def make_pod(kube: KubeClient, namespace: str, node: KwokNode, name: str, annotations: dict[str, str]) -> None:
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": pod_spec(node),
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


async def test_annotated_pods_succeed_or_fail(kube: KubeClient, namespace: str, node: KwokNode) -> None:
    await make_pod(kube, namespace, node, "ok", {OUTCOME: "succeed"})
    await make_pod(kube, namespace, node, "bad", {OUTCOME: "fail"})

    ok = await wait_phase(kube, namespace, "ok", "Succeeded")
    assert exit_codes(ok) == [0, 0]
    assert condition(ok, "Ready") == "False"

    bad = await wait_phase(kube, namespace, "bad", "Failed")
    assert exit_codes(bad) == [1, 1]
    assert {s["state"]["terminated"]["reason"] for s in bad["status"]["containerStatuses"]} == {"Error"}


async def test_an_unannotated_pod_keeps_running(kube: KubeClient, namespace: str, node: KwokNode) -> None:
    """Hooks and tests without the annotation never end: the way tests make a Helm action time out."""
    await make_pod(kube, namespace, node, "forever", {})
    pod = await wait_phase(kube, namespace, "forever", "Running")
    assert condition(pod, "Ready") == "True"
    await asyncio.sleep(3)
    assert await phase_of(kube, namespace, "forever") == "Running"


async def test_the_delay_annotation_holds_the_outcome_back(kube: KubeClient, namespace: str, node: KwokNode) -> None:
    start = time.monotonic()
    await make_pod(kube, namespace, node, "slow", {OUTCOME: "succeed", DELAY: "3s"})
    await wait_phase(kube, namespace, "slow", "Running")
    running_after = time.monotonic() - start
    await wait_phase(kube, namespace, "slow", "Succeeded")
    assert time.monotonic() - start >= 2.5, f"ended before its delay (running after {running_after:.1f}s)"


def job(name: str, namespace: str, node: KwokNode, annotations: dict[str, str]) -> KubeObject:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations},
                "spec": pod_spec(node),
            },
        },
    }


@pytest.mark.parametrize(
    ("annotations", "ending"),
    [({}, "Complete"), ({OUTCOME: "succeed"}, "Complete"), ({OUTCOME: "fail"}, "Failed")],
    ids=["unannotated", "succeed", "fail"],
)
async def test_jobs_complete_or_fail_by_their_pods(
    kube: KubeClient, namespace: str, node: KwokNode, annotations: dict[str, str], ending: str
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


async def test_a_deployment_becomes_available(kube: KubeClient, namespace: str, node: KwokNode) -> None:
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
                    "spec": pod_spec(node, restartPolicy="Always"),
                },
            },
        }
    )

    async def available() -> bool:
        obj = await kube.get("apps/v1", "Deployment", "web", namespace=namespace)
        return condition(obj, "Available") == "True" and obj["status"].get("readyReplicas") == 2

    await eventually(available, timeout=60)
