"""The Secrets each source kind reads, as watch index values: a labelled Secret's change wakes its users."""

from __future__ import annotations

from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.watches import ref_key


def _secret_names(obj: KubeObject, *paths: tuple[str, ...]) -> list[str]:
    ns = (obj.get("metadata") or {}).get("namespace") or ""
    out = []
    for path in paths:
        value: object = obj.get("spec") or {}
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str) and value:
            out.append(ref_key("Secret", ns, value))
    return out


def git_repository_secrets(obj: KubeObject) -> list[str]:
    """spec.secretRef (credentials) and spec.verify.secretRef (signing keys)."""
    return _secret_names(obj, ("secretRef", "name"), ("verify", "secretRef", "name"))


def helm_repository_secrets(obj: KubeObject) -> list[str]:
    """spec.secretRef (credentials) and spec.certSecretRef (TLS material)."""
    return _secret_names(obj, ("secretRef", "name"), ("certSecretRef", "name"))


def bucket_secrets(obj: KubeObject) -> list[str]:
    """spec.secretRef (credentials), spec.certSecretRef (TLS material) and spec.proxySecretRef (proxy)."""
    return _secret_names(obj, ("secretRef", "name"), ("certSecretRef", "name"), ("proxySecretRef", "name"))


def oci_repository_secrets(obj: KubeObject) -> list[str]:
    """spec.secretRef (pull credentials), certSecretRef (TLS), proxySecretRef and verify.secretRef (public keys)."""
    return _secret_names(
        obj,
        ("secretRef", "name"),
        ("certSecretRef", "name"),
        ("proxySecretRef", "name"),
        ("verify", "secretRef", "name"),
    )
