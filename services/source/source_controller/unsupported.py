"""The source kinds' spec fields this controller does not implement, refused when set (see gitops_mesh.reconcile.unsupported).

The audit behind these tables, field by field, is in the README's "what is supported".
"""

from __future__ import annotations

from gitops_mesh.reconcile.unsupported import Unsupported, refuse_unsupported

_SECRET_AUTH = "use spec.secretRef credentials instead"

GIT_REPOSITORY: tuple[Unsupported, ...] = (
    Unsupported(
        "provider",
        f"Azure and GitHub App authentication are not implemented; {_SECRET_AUTH}",
        allowed=frozenset({"generic"}),
    ),
    Unsupported(
        "serviceAccountName",
        f"workload identity (a ServiceAccount's cloud credentials) is not implemented; {_SECRET_AUTH}",
    ),
    Unsupported(
        "proxySecretRef",
        "git through a proxy is not implemented; ignoring it would connect to the repository directly",
    ),
)

HELM_REPOSITORY: tuple[Unsupported, ...] = (
    Unsupported(
        "provider",
        f"cloud registry authentication (aws, azure, gcp) is not implemented; {_SECRET_AUTH}",
        allowed=frozenset({"generic"}),
    ),
    Unsupported(
        "accessFrom",
        "cross-namespace access lists are not implemented (nor by Flux): other namespaces' access would not be restricted",
    ),
)

# spec.verify itself is implemented (cosign public keys, charts from an OCI HelmRepository: see helmchart_verify);
# keyless verification without secretRef is refused by ocirepository_plan.refuse_keyless, as for OCIRepository.
HELM_CHART: tuple[Unsupported, ...] = (
    Unsupported(
        "verify.provider",
        "notation signatures are not implemented; ignoring it would store the chart unverified",
        allowed=frozenset({"cosign"}),
    ),
    Unsupported(
        "verify.matchOIDCIdentity",
        "cosign keyless verification (Fulcio certificates, the Rekor log) is not implemented; "
        "verify with the signers' public keys ('*.pub') in spec.verify.secretRef",
    ),
)

BUCKET: tuple[Unsupported, ...] = (
    Unsupported(
        "provider",
        "the providers are generic, aws, gcp and azure",
        allowed=frozenset({"generic", "aws", "gcp", "azure"}),
    ),
    Unsupported(
        "serviceAccountName",
        f"workload identity and a ServiceAccount's pull secrets are not implemented; {_SECRET_AUTH}",
    ),
)


_KEYLESS = (
    "cosign keyless verification (Fulcio certificates, the Rekor log) is not implemented; "
    "verify with the signers' public keys ('*.pub') in spec.verify.secretRef"
)

OCI_REPOSITORY: tuple[Unsupported, ...] = (
    Unsupported(
        "provider",
        "cloud registry authentication (aws, azure, gcp) is not implemented; "
        "use spec.secretRef (a docker-registry Secret) or spec.serviceAccountName's imagePullSecrets instead",
        allowed=frozenset({"generic"}),
    ),
    Unsupported(
        "verify.provider",
        "notation signatures are not implemented; ignoring it would store the artifact unverified",
        allowed=frozenset({"cosign"}),
    ),
    Unsupported("verify.matchOIDCIdentity", _KEYLESS),
    Unsupported("verify.trustedRootSecretRef", _KEYLESS),
)

__all__ = ["BUCKET", "GIT_REPOSITORY", "HELM_CHART", "HELM_REPOSITORY", "OCI_REPOSITORY", "refuse_unsupported"]
