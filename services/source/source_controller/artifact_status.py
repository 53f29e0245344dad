"""status.artifact as Flux writes it, and the bus's artifact block, from what storage stored."""

from __future__ import annotations

from typing import Any

from gitops_mesh.artifacts.storage import Storage, StoredArtifact
from gitops_mesh.bus.envelope import Artifact
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.timestamps import rfc3339


def artifact_status(stored: StoredArtifact, revision: str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "path": stored.path,
        "url": stored.url,
        "revision": revision,
        "digest": stored.digest,
        "lastUpdateTime": rfc3339(stored.last_update_time),
        "size": stored.size,
    }
    if metadata:
        status["metadata"] = metadata
    return status


def bus_artifact(status: dict[str, Any]) -> Artifact:
    return Artifact(url=status["url"], digest=status["digest"], revision=status["revision"], size=status.get("size"))


def in_storage(storage: Storage, obj: KubeObject) -> bool:
    """status.artifact's file is in storage (a restart on an empty volume, a manual clean-up: rebuild)."""
    path = ((obj.get("status") or {}).get("artifact") or {}).get("path")
    return isinstance(path, str) and bool(path) and storage.exists(path)
