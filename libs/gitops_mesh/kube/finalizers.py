"""Kube access, deletion guards: add or remove one finalizer, refused (Conflict) if the object moved on.

No retry here: a Conflict is a TransientError, so the reconcile that asked is requeued and reads the
object again from its cache (kept current by the watch) before it tries again.
"""

from __future__ import annotations

from typing import Any

from gitops_mesh.errors import NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.objects import KubeObject, metadata


def finalizers(obj: KubeObject) -> list[str]:
    return list(metadata(obj).get("finalizers") or [])


def has_finalizer(obj: KubeObject, finalizer: str) -> bool:
    return finalizer in finalizers(obj)


def finalizer_patch(obj: KubeObject, wanted: list[str]) -> dict[str, Any]:
    """A merge patch setting the whole list, guarded by the resourceVersion it was computed from.

    The apiserver compares a resourceVersion in a patch with the stored one and answers 409 on a mismatch,
    so a finalizer list changed by someone else in between is never overwritten.
    """
    return {"metadata": {"finalizers": wanted, "resourceVersion": metadata(obj).get("resourceVersion")}}


async def _patch(client: KubeClient, obj: KubeObject, wanted: list[str]) -> KubeObject:
    meta = metadata(obj)
    return await client.patch(
        str(obj.get("apiVersion")),
        str(obj.get("kind")),
        str(meta.get("name")),
        finalizer_patch(obj, wanted),
        namespace=meta.get("namespace") or None,
    )


async def add_finalizer(client: KubeClient, obj: KubeObject, finalizer: str) -> KubeObject:
    """The object with ``finalizer`` added (unchanged if present); raises Conflict if the object moved on."""
    current = finalizers(obj)
    if finalizer in current:
        return obj
    return await _patch(client, obj, [*current, finalizer])


async def remove_finalizer(client: KubeClient, obj: KubeObject, finalizer: str) -> KubeObject:
    """The object without ``finalizer``; if that was the last one of a deleting object it is now gone.

    Raises Conflict if the object moved on since it was read.
    """
    current = finalizers(obj)
    if finalizer not in current:
        return obj
    try:
        return await _patch(client, obj, [f for f in current if f != finalizer])
    except NotFound:
        # Already deleted: there is nothing left for the finalizer to guard.
        meta = {**metadata(obj), "finalizers": [f for f in current if f != finalizer]}
        return {**obj, "metadata": meta}
