"""The Secrets a FluxConfig reads, as the runtime's reference index wants them (``Secret/<ns>/<name>``), pure."""

from __future__ import annotations

from fluxconfig_controller import model as m
from fluxconfig_controller.plan import source_block
from gitops_mesh.kube.objects import KubeObject


def secret_refs(obj: KubeObject) -> list[str]:
    meta = obj.get("metadata") or {}
    ns, name = meta.get("namespace") or "", meta.get("name") or ""
    refs = [f"Secret/{ns}/{m.protected_secret_name(name)}"]
    local = source_block(obj.get("spec") or {}).get("localAuthRef")
    if local:
        refs.append(f"Secret/{ns}/{local}")
    return refs
