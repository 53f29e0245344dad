"""The git adapter's own errors: what went wrong with a remote, its credentials, a ref or a signature.

GitopsMeshError
├── TransientError
│   ├── GitOperationFailed          reason GitOperationFailed: unreachable, timeout, anything git reported
│   │   ├── RemoteUnreachable       connection refused, DNS, TLS handshake
│   │   ├── GitTimeout              the operation ran past spec.timeout
│   │   ├── CertificateInvalid      the server's TLS certificate is not trusted (ca.crt missing or wrong)
│   │   ├── HostKeyVerificationFailed  SSH host key unknown or changed (known_hosts)
│   │   ├── RepositoryNotFound      no repository at the URL
│   │   ├── RefNotFound             the branch / tag / ref / commit does not exist, no tag matches the range
│   │   ├── RepositoryTooLarge      the fetch or the checkout is over the size limit
│   │   └── SparseCheckoutMissing   a spec.sparseCheckout directory is not in the commit
│   ├── AuthenticationFailed        reason AuthenticationFailed: the server refused the credentials
│   └── SignatureVerificationFailed reason InvalidCommitSignature / InvalidTagSignature / InvalidGitObject
└── TerminalError
    ├── InvalidAuthSecret           reason AuthenticationFailed: the Secret lacks what the URL needs
    ├── InvalidRef (InvalidSpec)    a malformed ref or semver range
    └── InvalidVerificationMode     Tag verification without a tag reference
"""

from __future__ import annotations

from gitops_mesh.errors import InvalidSpec, TerminalError, TransientError


class GitOperationFailed(TransientError):
    """A git command failed in a way that may heal by itself (network, server, a ref that may appear)."""

    reason = "GitOperationFailed"


class RemoteUnreachable(GitOperationFailed):
    """The remote could not be reached (connection refused, unknown host, reset)."""


class GitTimeout(GitOperationFailed):
    """The git command ran longer than the allowed timeout and was killed."""


class CertificateInvalid(GitOperationFailed):
    """The HTTPS server's certificate could not be verified against the trusted CAs."""


class HostKeyVerificationFailed(GitOperationFailed):
    """The SSH server's host key is not in known_hosts, or differs from the one recorded there."""


class RepositoryNotFound(GitOperationFailed):
    """There is no repository at the URL (or the credentials do not grant access to it)."""


class RefNotFound(GitOperationFailed):
    """The requested branch, tag, ref name or commit does not exist on the remote."""


class RepositoryTooLarge(GitOperationFailed):
    """The fetched objects or the checked-out tree exceed the configured size limit."""


class SparseCheckoutMissing(GitOperationFailed):
    """A directory listed in spec.sparseCheckout does not exist in the fetched commit."""


class AuthenticationFailed(TransientError):
    """The remote rejected the credentials (or required some and none were given)."""

    reason = "AuthenticationFailed"


class SignatureVerificationFailed(TransientError):
    """A commit or tag signature is missing, made by an unknown key, or bad."""

    reason = "InvalidCommitSignature"


class InvalidAuthSecret(TerminalError):
    """The Secret does not hold what the URL's scheme needs (e.g. SSH without known_hosts)."""

    reason = "AuthenticationFailed"


class InvalidRef(InvalidSpec):
    """spec.ref is malformed: an unparsable semver range, an invalid ref name or commit."""


class InvalidVerificationMode(TerminalError):
    """spec.verify asks for a tag signature but the ref does not point at a tag."""

    reason = "InvalidVerificationMode"
