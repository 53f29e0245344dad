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
    UnsupportedDigest,
)
from gitops_mesh.artifacts.extract import ExtractLimits, ExtractResult, TreeCache, safe_extract
from gitops_mesh.artifacts.fetch import fetch
from gitops_mesh.artifacts.server import make_app
from gitops_mesh.artifacts.storage import LATEST, Storage, StoredArtifact

__all__ = [
    "LATEST",
    "ArchiveLimitExceeded",
    "ArtifactError",
    "ArtifactTooLarge",
    "ArtifactUnavailable",
    "CorruptArchive",
    "DigestMismatch",
    "ExtractLimits",
    "ExtractResult",
    "InvalidArtifactPath",
    "PackResult",
    "Storage",
    "StorageError",
    "StoredArtifact",
    "TreeCache",
    "UnsafeArchive",
    "UnsupportedDigest",
    "fetch",
    "make_app",
    "pack",
    "pack_async",
    "safe_extract",
]
