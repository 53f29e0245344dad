"""HelmChart spec.verify's decisions, pure: which charts can be verified, and Flux's words and conditions for a
verification that could not start, failed or passed. The I/O (the Secret's public keys, the registry's cosign
signatures of the chart's manifest, :mod:`gitops_mesh.oci.cosign`) is :mod:`.helmchart`'s.

Flux verifies only charts pulled from a HelmRepository of type ``oci``: the signature is cosign's, of the chart's
OCI manifest digest, checked at every reconcile (also when the stored chart is kept). For a chart from an HTTP
HelmRepository, a GitRepository or a Bucket, Flux verifies nothing and says nothing; here that spec is refused,
as accepting it would tell its author a chart was verified when it was not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitops_mesh.errors import GitopsMeshError, InvalidSpec, TransientError
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.unsupported import UNSUPPORTED_FIELD
from source_controller.ocirepository_plan import VERIFICATION_ERROR
from source_controller.status_edits import Failure, Mark, StatusEdit

#: Flux's BuildFailed reason (chart.ErrChartVerification) when no signature verifies.
CHART_VERIFICATION_ERROR = "ChartVerificationError"
#: The only provider implemented (notation is refused in :mod:`.unsupported`).
COSIGN = "cosign"

_VERIFICATION_REASONS = frozenset({VERIFICATION_ERROR, CHART_VERIFICATION_ERROR})


def wants_verification(spec: Mapping[str, Any]) -> bool:
    """spec.verify is set (its provider defaults to cosign in the CRD)."""
    return bool(spec.get("verify"))


def unverifiable(spec: Mapping[str, Any], kind: str, oci: bool) -> Failure | None:
    """spec.verify on a chart whose source is not an OCI HelmRepository: refused (Stalled, UnsupportedField)."""
    if not wants_verification(spec) or oci:
        return None
    error = InvalidSpec(
        f"spec.verify is not supported for a chart from a {kind} that is not of type 'oci': signatures are only "
        "verified for charts pulled from an OCI registry (Flux ignores the field here and verifies nothing); "
        "remove spec.verify, or publish the chart to an OCI registry and sign it with cosign",
        reason=UNSUPPORTED_FIELD,
    )
    return Failure(StatusEdit(deletes=(c.ConditionType.SOURCE_VERIFIED,)), error)


def keys_error(detail: str) -> TransientError:
    """The verifier could not be made (the Secret, its keys): Flux's VerificationError, retried."""
    return TransientError(
        f"failed to verify the signature using provider '{COSIGN}': {detail}", reason=VERIFICATION_ERROR
    )


def signature_error(reference: str, error: GitopsMeshError) -> TransientError:
    """No trusted key verified a signature of the chart at ``reference``: Flux's ChartVerificationError."""
    return TransientError(
        f"chart verification error: failed to verify {reference}: {error}", reason=CHART_VERIFICATION_ERROR
    )


def verification_failure(error: GitopsMeshError) -> Failure | None:
    """What a verification error leaves on status, None for any other error.

    As Flux: SourceVerified=False/VerificationError with the message; a signature that does not verify is also
    BuildFailed/ChartVerificationError, a verifier that could not be made FetchFailed/VerificationError.
    """
    if error.reason not in _VERIFICATION_REASONS:
        return None
    message = str(error)
    unverified = Mark(c.ConditionType.SOURCE_VERIFIED, VERIFICATION_ERROR, message, c.ConditionStatus.FALSE)
    failed, other = c.ConditionType.FETCH_FAILED, c.ConditionType.BUILD_FAILED
    if error.reason == CHART_VERIFICATION_ERROR:
        failed, other = other, failed
    return Failure(StatusEdit(marks=(Mark(failed, error.reason, message), unverified), deletes=(other,)), error)


def verified_mark(version: str) -> Mark:
    """SourceVerified=True with Flux's message, once a trusted key verified the chart at ``version``."""
    return Mark(c.ConditionType.SOURCE_VERIFIED, c.Reason.SUCCEEDED, f"verified signature of version {version}")
