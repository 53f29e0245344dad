"""Artifacts: Flux's tarball, storage and HTTP conventions, shared by the source (producer) and its consumers."""

from gitops_mesh.artifacts.archive import PackResult, pack, pack_async
from gitops_mesh.artifacts.errors import (
    ArchiveLimitExceeded,
    ArtifactError,
    ArtifactTooLarge,
    ArtifactUnavailable,
    CorruptArchive,
    DigestMismatch,
    InvalidArtifactPath,
    StorageError,
    UnsafeArchive,
    UnsafePath,
    UnsupportedDigest,
)
from gitops_mesh.artifacts.extract import TreeCache, safe_extract
from gitops_mesh.artifacts.fetch import fetch
from gitops_mesh.artifacts.server import make_app
from gitops_mesh.artifacts.storage import LATEST, Storage, StoredArtifact
from gitops_mesh.artifacts.untar import ArchiveEntry, EntryCheck, ExtractLimits, ExtractResult, read_members

__all__ = [
    "LATEST",
    "ArchiveEntry",
    "ArchiveLimitExceeded",
    "ArtifactError",
    "ArtifactTooLarge",
    "ArtifactUnavailable",
    "CorruptArchive",
    "DigestMismatch",
    "EntryCheck",
    "ExtractLimits",
    "ExtractResult",
    "InvalidArtifactPath",
    "PackResult",
    "Storage",
    "StorageError",
    "StoredArtifact",
    "TreeCache",
    "UnsafeArchive",
    "UnsafePath",
    "UnsupportedDigest",
    "fetch",
    "make_app",
    "pack",
    "pack_async",
    "read_members",
    "safe_extract",
]
