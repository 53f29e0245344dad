"""The OCI registry client's errors: what a registry answered, classified for retry; callers word them as Flux does.

OciError
├── RegistryUnavailable     transient: unreachable, timed out, 5xx, 429 (with Retry-After)
├── RegistryAuthFailed      transient: 401/403 after authenticating (the Secret may be fixed or rotated)
├── ManifestNotFound        transient: no such tag, digest or repository (it may be pushed later)
├── UnexpectedAnswer        transient: not a registry's answer (HTML, wrong content type, unreadable JSON)
├── InvalidManifest         transient: a manifest of the wrong media type, malformed, or not matching its digest
├── BlobInvalid             transient: a blob that is not what its descriptor says (digest, size)
├── TooLarge                transient: a manifest, token, tag list or blob over the client's cap
└── InvalidReference        terminal: a URL, tag or digest that cannot name anything (an edit of the spec)

None of them carries a credential: messages name the registry, the repository and the status only.
"""

from __future__ import annotations

from gitops_mesh.errors import GitopsMeshError, TerminalError, TransientError


class OciError(GitopsMeshError):
    """Any failure talking to a registry; ``status`` is the HTTP status when there was one."""

    status: int | None = None


class RegistryUnavailable(OciError, TransientError):
    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        TransientError.__init__(self, message, retry_after=retry_after)
        self.status = status


class _Answered(OciError, TransientError):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        TransientError.__init__(self, message)
        self.status = status


class RegistryAuthFailed(_Answered):
    reason = "AuthenticationFailed"


class ManifestNotFound(_Answered):
    pass


class UnexpectedAnswer(_Answered):
    pass


class InvalidManifest(_Answered):
    pass


class BlobInvalid(_Answered):
    pass


class TooLarge(_Answered):
    pass


class InvalidReference(OciError, TerminalError):
    reason = "URLInvalid"
