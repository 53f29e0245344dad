"""A node of a test's own: a second kwok process on the stack's apiserver, with the stages build.sh renders.

It proves the stages file the stack starts kwok with even while an older stack is up, and keeps a test's
Pods apart: the node is tainted, so only Pods that tolerate it (``placement``) land there.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_mesh.errors import NotFound
from gitops_mesh.kube import KubeClient
from gitops_mesh_dev.stack import ROOT
from tests.integration.conftest import eventually

TAINT = "gitops-mesh.test/kwok-stages"


@dataclass(frozen=True)
class KwokNode:
    name: str

    def tolerations(self) -> list[dict[str, str]]:
        return [{"key": TAINT, "operator": "Equal", "value": self.name, "effect": "NoSchedule"}]

    def placement(self) -> dict[str, Any]:
        """Pod spec fields that schedule a Pod onto this node, and only there."""
        return {"nodeSelector": {"kubernetes.io/hostname": self.name}, "tolerations": self.tolerations()}


def built_paths() -> dict[str, str]:
    """What deploy/local/build.sh built (KEY=path lines of ``build.sh --print``)."""
    out = subprocess.run(
        [str(ROOT / "deploy" / "local" / "build.sh"), "--print"], capture_output=True, text=True, timeout=60, check=True
    )
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def condition(obj: dict[str, Any], kind: str) -> str | None:
    for c in obj.get("status", {}).get("conditions", []):
        if c.get("type") == kind:
            return str(c.get("status"))
    return None


@contextlib.asynccontextmanager
async def kwok_node(kube: KubeClient, kubeconfig: str, log: Path) -> AsyncIterator[KwokNode]:
    """Start our kwok, create its node, wait until it is Ready; delete the node and stop kwok on exit."""
    paths = built_paths()
    if not Path(paths["KWOK_STAGES"]).is_file():
        raise RuntimeError("deploy/local/build.sh has not rendered the kwok stages: run make setup")
    node = KwokNode(f"kwok-stages-{uuid.uuid4().hex[:8]}")
    with log.open("wb") as out:
        kwok = subprocess.Popen(
            [
                paths["KWOK"],
                "--kubeconfig",
                kubeconfig,
                "--config",
                paths["KWOK_STAGES"],
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={TAINT}={node.name}",
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
                    "name": node.name,
                    "annotations": {TAINT: node.name, "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {"type": "kwok", "kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux"},
                },
                "spec": {"taints": [{"key": TAINT, "value": node.name, "effect": "NoSchedule"}]},
                "status": {"allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"}},
            }
        )

        async def ready() -> bool:
            return condition(await kube.get("v1", "Node", node.name), "Ready") == "True"

        try:
            await eventually(ready, timeout=60)
        except TimeoutError:
            raise RuntimeError(f"kwok never made {node.name} Ready: {log.read_text()[-2000:]}") from None
        yield node
    finally:
        with contextlib.suppress(NotFound):
            await kube.delete("v1", "Node", node.name)
        kwok.terminate()
        kwok.wait(10)
