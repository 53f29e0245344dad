"""Artifacts, error edge: what storing, serving, fetching and unpacking an artifact can raise.

ArtifactError (a marker: ``except ArtifactError`` catches every artifact problem)
├── StorageError            TransientError  disk full, permissions, rename failed (StorageOperationFailed)
├── ArtifactUnavailable     TransientError  unreachable, timeout, 404 (the source may be GC-racing), 5xx
├── DigestMismatch          TransientError  the bytes fetched (or stored) are not the ones announced
├── InvalidArtifactPath     TerminalError   a kind/namespace/name/file that cannot be a storage path
├── UnsupportedDigest       TerminalError   an algorithm we cannot verify
├── ArtifactTooLarge        TerminalError   the download is over the size cap
└── UnsafeArchive           TerminalError   an entry that must not be unpacked (names the entry): a link,
    │                                       a device, a duplicate, a file where a directory is
    ├── UnsafePath                          absolute, '..', backslash or NUL: it would leave the destination
    ├── ArchiveLimitExceeded                total size, entry count, file size, header or name over the cap
    └── CorruptArchive                      not gzip, truncated, bad tar header

Too large and unsafe archives are terminal for the consumer's *spec*, but the producer may publish a new
revision that fits; consumers re-reconcile on the source's artifact events, so nothing is lost.
"""

from __future__ import annotations

from gitops_mesh.errors import GitopsMeshError, TerminalError, TransientError

#: Flux's reasons: consumers (kustomize/helm) say ArtifactFailed, the producer StorageOperationFailed.
ARTIFACT_FAILED = "ArtifactFailed"
STORAGE_OPERATION_FAILED = "StorageOperationFailed"


class ArtifactError(GitopsMeshError):
    """Any artifact problem; the concrete class decides transient or terminal."""

    reason = ARTIFACT_FAILED


class StorageError(ArtifactError, TransientError):
    """The storage directory could not be written or read."""

    reason = STORAGE_OPERATION_FAILED


class ArtifactUnavailable(ArtifactError, TransientError):
    """The artifact could not be downloaded now; a later attempt may succeed."""

    def __init__(self, message: str, *, url: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.url = url
        self.status = status


class DigestMismatch(ArtifactError, TransientError):
    """The content's digest is not the announced one (a truncated or replaced file)."""

    def __init__(self, *, what: str, expected: str, got: str) -> None:
        super().__init__(f"digest mismatch for {what}: expected {expected}, got {got}")
        self.what = what
        self.expected = expected
        self.got = got


class InvalidArtifactPath(ArtifactError, TerminalError):
    """A path component is empty, '.', '..', hidden, or contains a separator."""

    reason = STORAGE_OPERATION_FAILED


class UnsupportedDigest(ArtifactError, TerminalError):
    """The digest is malformed or uses an algorithm we cannot compute."""


class ArtifactTooLarge(ArtifactError, TerminalError):
    """The download is bigger than the configured maximum."""

    def __init__(self, *, url: str, limit: int, seen: int) -> None:
        super().__init__(f"artifact {url} is larger than the limit of {limit} bytes (at least {seen} bytes)")
        self.url = url
        self.limit = limit
        self.seen = seen


class UnsafeArchive(ArtifactError, TerminalError):
    """An archive entry that would escape the destination or is of a forbidden type."""

    def __init__(self, message: str, *, entry: str | None) -> None:
        super().__init__(f"{message}: {entry!r}" if entry is not None else message)
        self.entry = entry


class UnsafePath(UnsafeArchive):
    """An entry name that is absolute, climbs out with '..', or holds a backslash or NUL."""


class ArchiveLimitExceeded(UnsafeArchive):
    """The archive unpacks to more bytes or entries than allowed, or a file, header or name is too big."""


class CorruptArchive(UnsafeArchive):
    """The archive is not a well-formed gzip-compressed tar stream."""
