"""The names fluxconfig-controller shares between its plan, its checks and its I/O: APIs, labels, object names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

API_VERSION = "clusterconfig.azure.com/v1alpha1"
KIND = "FluxConfig"
FIELD_MANAGER = "fluxconfig-controller"

SOURCE_API = "source.toolkit.fluxcd.io/v1"
KUSTOMIZE_API = "kustomize.toolkit.fluxcd.io/v1"
RBAC_API = "rbac.authorization.k8s.io/v1"

#: Every object the controller makes carries these (Azure's microsoft.flux labels).
MANAGED_LABEL = "clusterconfig.azure.com/is-managed"
NAME_LABEL = "clusterconfig.azure.com/name"
NAMESPACE_LABEL = "clusterconfig.azure.com/namespace"
#: Copied from the FluxConfig's own label or annotation when the agent sets one.
OPERATION_ID = "clusterconfig.azure.com/operation-id"

#: The ServiceAccount the Kustomizations impersonate, one per namespace, shared by its FluxConfigs.
APPLIER = "flux-applier"
#: Where the generated key pair's algorithm is recorded, so a change of request regenerates it.
KEY_ALGORITHM_ANNOTATION = "clusterconfig.azure.com/ssh-key-algorithm"

#: The namespaced kinds a FluxConfig's own objects come in; listed by label to find what the plan dropped.
OWNED_KINDS: tuple[tuple[str, str], ...] = (
    (KUSTOMIZE_API, "Kustomization"),
    (SOURCE_API, "GitRepository"),
    (SOURCE_API, "Bucket"),
    (SOURCE_API, "OCIRepository"),
    ("v1", "Secret"),
)

Spec = Mapping[str, Any]


def protected_secret_name(config: str) -> str:
    """ARM's configurationProtectedSettings arrive in this Secret, written by the agent (or the user)."""
    return f"{config}-protected-parameters"


def auth_secret_name(config: str) -> str:
    return f"{config}-auth"


def key_secret_name(config: str) -> str:
    return f"{config}-ssh-keypair"


def kustomization_name(config: str, entry: str) -> str:
    return f"{config}-{entry}"


def cluster_binding_name(namespace: str) -> str:
    """The cluster-scope binding is cluster-wide, so its name carries the namespace it serves."""
    return f"{APPLIER}-{namespace}"


def binding_name() -> str:
    return f"{APPLIER}-binding"


def own_selector(config: str, namespace: str) -> str:
    """The label selector of the objects one FluxConfig made (the shared RBAC objects carry no name label)."""
    return f"{MANAGED_LABEL}=true,{NAME_LABEL}={config},{NAMESPACE_LABEL}={namespace}"


def source_kind(spec: Spec) -> str:
    return str(spec.get("sourceKind") or "GitRepository")


def scope(spec: Spec) -> str:
    return str(spec.get("scope") or "cluster")
