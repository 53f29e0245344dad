"""source-controller's flags: the shared ones plus Flux's storage flags."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gitops_mesh.settings import Settings, parse_as


@dataclass(frozen=True, slots=True)
class SourceSettings(Settings):
    storage_path: str = "/data"
    storage_addr: str = ":9090"
    storage_adv_addr: str = ""
    artifact_retention_records: int = 2
    #: a fetched repository (objects and checked-out tree) larger than this fails with RepositoryTooLarge
    max_repository_size: int = 1 << 30
    helm_path: str = ""
    #: Bucket limits (not Flux flags: Flux has no caps on what a Bucket fetches)
    max_bucket_object_size: int = 64 << 20
    max_bucket_objects: int = 50_000
    max_bucket_size: int = 1 << 30


_HELP = {
    "storage_path": "directory artifacts are stored in",
    "storage_addr": "address the artifact server binds",
    "storage_adv_addr": "address artifacts are advertised at in status.artifact.url (default: storage-addr)",
    "artifact_retention_records": "artifacts kept per object (the current one included)",
    "max_repository_size": "bytes a fetched repository may take",
    "helm_path": "the helm v3 binary that packages charts (default: $HELM, else `helm` on PATH)",
    "max_bucket_object_size": "bytes one object of a Bucket may have (BucketOperationFailed past it)",
    "max_bucket_objects": "objects a Bucket may fetch into one artifact",
    "max_bucket_size": "bytes all the objects a Bucket fetches into one artifact may have",
}


def parse(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> SourceSettings:
    return parse_as(SourceSettings(), argv, prog="source-controller", help=_HELP, env=env)


def advertised(settings: SourceSettings) -> str:
    """The host:port in artifact URLs: --storage-adv-addr, else --storage-addr with a usable host."""
    if settings.storage_adv_addr:
        return settings.storage_adv_addr
    host, _, port = settings.storage_addr.rpartition(":")
    return f"{host or '127.0.0.1'}:{port}"
