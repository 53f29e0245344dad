"""GitRepository's git adapter: the git CLI behind resolve / checkout / verify, plus pure ref, semver and ignore logic."""

from source_controller.git.auth import GitAuth, Scrubber, redact_url
from source_controller.git.errors import (
    AuthenticationFailed,
    CertificateInvalid,
    GitOperationFailed,
    GitTimeout,
    HostKeyVerificationFailed,
    InvalidAuthSecret,
    InvalidRef,
    InvalidVerificationMode,
    RefNotFound,
    RemoteUnreachable,
    RepositoryNotFound,
    RepositoryTooLarge,
    SignatureVerificationFailed,
    SparseCheckoutMissing,
)
from source_controller.git.ignore import IgnoreFilter, build_filter, included_files
from source_controller.git.objects import Signature, TagObject
from source_controller.git.refs import GitRef, RefChoice, RefKind, Resolved, choose, revision
from source_controller.git.remote import DEFAULT_MAX_SIZE, DEFAULT_TIMEOUT, Commit, checkout, resolve
from source_controller.git.verify import Verified, VerifyMode, verify

__all__ = [
    "DEFAULT_MAX_SIZE",
    "DEFAULT_TIMEOUT",
    "AuthenticationFailed",
    "CertificateInvalid",
    "Commit",
    "GitAuth",
    "GitOperationFailed",
    "GitRef",
    "GitTimeout",
    "HostKeyVerificationFailed",
    "IgnoreFilter",
    "InvalidAuthSecret",
    "InvalidRef",
    "InvalidVerificationMode",
    "RefChoice",
    "RefKind",
    "RefNotFound",
    "RemoteUnreachable",
    "RepositoryNotFound",
    "RepositoryTooLarge",
    "Resolved",
    "Scrubber",
    "Signature",
    "SignatureVerificationFailed",
    "SparseCheckoutMissing",
    "TagObject",
    "Verified",
    "VerifyMode",
    "build_filter",
    "checkout",
    "choose",
    "included_files",
    "redact_url",
    "resolve",
    "revision",
    "verify",
]
