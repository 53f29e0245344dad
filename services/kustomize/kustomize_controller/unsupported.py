"""Kustomization spec fields this controller does not implement, refused when set (see gitops_mesh.reconcile.unsupported).

Refused before anything is fetched, built or applied: a field ignored here would change what lands where
(``kubeConfig``: another cluster's manifests applied and pruned on this one, as the controller).
"""

from __future__ import annotations

from gitops_mesh.reconcile.unsupported import Unsupported, refuse_unsupported

KUSTOMIZATION: tuple[Unsupported, ...] = (
    Unsupported(
        "kubeConfig",
        "applying to a remote cluster is not implemented; ignoring it would apply (and prune) the manifests "
        "on this cluster",
    ),
    Unsupported(
        "healthCheckExprs",
        "CEL health checks are not implemented; ignoring them would report custom resources healthy unchecked",
    ),
    Unsupported(
        "dependsOn[].readyExpr",
        "CEL readiness expressions are not implemented; ignoring one would proceed on a dependency's Ready alone",
    ),
    Unsupported(
        "decryption.serviceAccountName",
        "KMS workload identity is not implemented; give sops its keys in spec.decryption.secretRef",
    ),
    Unsupported(
        "deletionPolicy",
        "deleting the Kustomization does not wait for its objects to terminate; use Delete",
        allowed=frozenset({"MirrorPrune", "Delete", "Orphan"}),
    ),
)

__all__ = ["KUSTOMIZATION", "refuse_unsupported"]
