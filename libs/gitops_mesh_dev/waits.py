"""Dev tooling: waiting on what the mesh reports in status, a Kustomization applied at a commit, a Receiver's webhook path."""

from __future__ import annotations

import asyncio
import time

from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c

KS = "kustomize.toolkit.fluxcd.io/v1"
RECEIVER = "notification.toolkit.fluxcd.io/v1"


async def until_applied(
    kube: KubeClient,
    namespace: str,
    name: str,
    sha: str,
    *,
    branch: str = "main",
    timeout: float = 90,
    poll: float = 0.1,
) -> KubeObject:
    """The Kustomization once Ready with ``lastAppliedRevision`` ``<branch>@sha1:<sha>``; AssertionError after."""
    deadline = time.monotonic() + timeout
    while True:
        obj = await kube.get(KS, "Kustomization", name, namespace=namespace)
        if c.is_ready(obj) and (obj.get("status") or {}).get("lastAppliedRevision") == f"{branch}@sha1:{sha}":
            return obj
        if time.monotonic() > deadline:
            raise AssertionError(
                f"Kustomization {name} not applied at {sha[:12]} within {timeout}s: {obj.get('status')}"
            )
        await asyncio.sleep(poll)


async def receiver_path(kube: KubeClient, namespace: str, name: str, *, timeout: float = 30) -> str:
    """A Ready Receiver's ``status.webhookPath``."""
    deadline = time.monotonic() + timeout
    while True:
        receiver = await kube.get(RECEIVER, "Receiver", name, namespace=namespace)
        path = (receiver.get("status") or {}).get("webhookPath")
        if c.is_ready(receiver) and path:
            return str(path)
        if time.monotonic() > deadline:
            raise AssertionError(f"Receiver {name} not Ready with a webhookPath: {receiver.get('status')}")
        await asyncio.sleep(0.2)
