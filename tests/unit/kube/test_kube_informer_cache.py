"""What an informer keeps of an object: everything but metadata.managedFields, as Flux's caches."""

from __future__ import annotations

from typing import Any

from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.informer import Informer


def obj(rv: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "a",
            "namespace": "ns",
            "resourceVersion": rv,
            "managedFields": [{"manager": "x", "operation": "Apply", "fieldsV1": {"f:data": {}}}],
        },
        "data": {"k": "v"},
    }


async def test_cached_objects_carry_no_managed_fields() -> None:
    informer = Informer(KubeClient.__new__(KubeClient), "v1", "ConfigMap")
    seen: list[dict[str, Any]] = []
    informer.on_event(lambda change, o, old: seen.append(o))
    await informer._apply("ADDED", obj("1"), None)
    cached = informer.get("ns", "a")
    assert cached is not None
    assert "managedFields" not in cached["metadata"]
    assert cached["data"] == {"k": "v"}
    assert cached["metadata"]["resourceVersion"] == "1"
    await informer.observe(obj("2"))  # our own write's answer goes through the same door
    assert informer.get("ns", "a") == {**cached, "metadata": {**cached["metadata"], "resourceVersion": "2"}}
    assert all("managedFields" not in o["metadata"] for o in seen)
