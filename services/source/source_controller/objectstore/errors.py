"""The Bucket's errors with Flux's reasons: a failed listing or fetch, refused credentials, a client not built.

All are transient, as in Flux: the bucket, its objects or the Secret may change without an edit of the spec.
"""

from __future__ import annotations

from gitops_mesh.errors import TransientError

#: Flux's reason for a failed listing or download (``BucketOperationFailedReason``).
BUCKET_OPERATION_FAILED = "BucketOperationFailed"
AUTHENTICATION_FAILED = "AuthenticationFailed"
#: Flux's reason when the provider's client cannot be built from the spec and Secret.
CLIENT_ERROR = "ClientError"


class BucketOperationFailed(TransientError):
    reason = BUCKET_OPERATION_FAILED


class AuthenticationFailed(TransientError):
    reason = AUTHENTICATION_FAILED


class ClientError(TransientError):
    reason = CLIENT_ERROR


class ObjectNotFound(BucketOperationFailed):
    """A listed object is gone by the time it is fetched: Flux drops it from the index and goes on."""
