"""Kube access, shared vocabulary: objects are plain dicts, addressed by (namespace, name)."""

from __future__ import annotations

from typing import Any

#: A Kubernetes object as the apiserver's JSON, parsed by orjson; no generated model classes.
KubeObject = dict[str, Any]

#: A cache key: (namespace, name); namespace is "" for cluster-scoped objects.
ObjectKey = tuple[str, str]


def metadata(obj: KubeObject) -> dict[str, Any]:
    """``obj.metadata``, or an empty dict when absent."""
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def object_key(obj: KubeObject) -> ObjectKey:
    meta = metadata(obj)
    return (meta.get("namespace") or "", meta.get("name") or "")


def resource_version(obj: KubeObject) -> str:
    return str(metadata(obj).get("resourceVersion") or "")


def uid(obj: KubeObject) -> str:
    return str(metadata(obj).get("uid") or "")


def split_api_version(api_version: str) -> tuple[str, str]:
    """``"apps/v1"`` → ``("apps", "v1")``; ``"v1"`` → ``("", "v1")``."""
    group, _, version = api_version.rpartition("/")
    return group, version


def has_metadata_value(obj: KubeObject | None, key: str, value: str) -> bool:
    """Flux's AnyInMetadata for one pair: a label or annotation ``key`` equal to ``value``, ignoring case.

    Flux's per-object opt-outs (kustomize's ``reconcile: disabled``, helm's ``driftDetection: disabled``)
    may be written either way, so both maps are read.
    """
    if obj is None:
        return False
    meta = metadata(obj)
    for field in ("labels", "annotations"):
        found = (meta.get(field) or {}).get(key)
        if isinstance(found, str) and found and found.lower() == value.lower():
            return True
    return False
