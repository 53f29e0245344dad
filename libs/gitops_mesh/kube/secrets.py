"""Reading Secrets and ConfigMaps that specs point at (auth, values, substitutions), decoded."""

from __future__ import annotations

import base64
import binascii

from gitops_mesh.errors import InvalidSpec, NotFound
from gitops_mesh.kube.client import KubeClient


async def secret_data(client: KubeClient, namespace: str, name: str) -> dict[str, bytes]:
    """The Secret's ``data`` decoded (``stringData`` is folded into data by the apiserver).

    Raises NotFound when the Secret does not exist, InvalidSpec when its data is not base64.
    """
    secret = await client.get("v1", "Secret", name, namespace=namespace)
    out: dict[str, bytes] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as e:
            raise InvalidSpec(f"Secret '{namespace}/{name}' key '{key}' is not valid base64") from e
    return out


async def configmap_data(client: KubeClient, namespace: str, name: str) -> dict[str, str]:
    """The ConfigMap's ``data`` (binaryData is left out: specs only read text from ConfigMaps)."""
    cm = await client.get("v1", "ConfigMap", name, namespace=namespace)
    return dict(cm.get("data") or {})


__all__ = ["NotFound", "configmap_data", "secret_data"]
