"""FluxConfig fields fluxconfig-controller does not implement, refused when set (see gitops_mesh.reconcile.unsupported)."""

from __future__ import annotations

from gitops_mesh.reconcile.unsupported import Unsupported, refuse_unsupported

FLUXCONFIG: tuple[Unsupported, ...] = (
    Unsupported(
        "waitForReconciliation",
        "waiting for the Kustomizations before reporting provisioningState is not implemented; the "
        "configuration's progress is in status.complianceState",
    ),
    Unsupported(
        "reconciliationWaitDuration",
        "waiting for the Kustomizations before reporting provisioningState is not implemented",
    ),
    Unsupported(
        "azureBlob.managedIdentity",
        "managed identity / workload identity is not available to the sources here; use accountKey, sasToken, "
        "a service principal or localAuthRef",
    ),
    Unsupported(
        "ociRepository.useWorkloadIdentity",
        "workload identity is not available to the sources here; use localAuthRef",
    ),
    Unsupported(
        "ociRepository.verify",
        "verification keys given inline (verificationConfig) are not turned into a Flux verify Secret yet",
    ),
)

__all__ = ["FLUXCONFIG", "refuse_unsupported"]
