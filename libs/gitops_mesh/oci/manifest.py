"""Pure: OCI image manifests and descriptors as read from a registry, checked; and the media types of Flux's
artifact format (what ``flux push artifact`` writes and OCIRepository reads).

Only single-platform manifests are artifacts: an image index (or a Docker manifest list) is refused with a
message naming it, as Flux's pull of an index fails. Schema 1 Docker manifests are never asked for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gitops_mesh.oci.errors import InvalidManifest
from gitops_mesh.oci.reference import is_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
#: What a pull asks for: the two single-image forms, and the lists so that their refusal can name them.
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_LIST))
IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})

# Flux's artifact format (fluxcd/pkg oci: CanonicalConfigMediaType, CanonicalContentMediaType, annotations).
FLUX_CONFIG = "application/vnd.cncf.flux.config.v1+json"
FLUX_CONTENT = "application/vnd.cncf.flux.content.v1.tar+gzip"
SOURCE_ANNOTATION = "org.opencontainers.image.source"
REVISION_ANNOTATION = "org.opencontainers.image.revision"
CREATED_ANNOTATION = "org.opencontainers.image.created"

#: A manifest is a few KiB; containerd and distribution cap them at 4 MiB.
DEFAULT_MAX_MANIFEST_BYTES = 4 << 20
MAX_LAYERS = 1024


@dataclass(frozen=True, slots=True)
class Descriptor:
    """What a manifest (or a HEAD) says about a blob or a manifest: its media type, digest and size."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True, slots=True)
class Manifest:
    """A single-image manifest: its own descriptor (digest of the bytes served), config, layers, annotations."""

    descriptor: Descriptor
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str]


def _descriptor(value: object, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise InvalidManifest(f"{where} is not a descriptor object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise InvalidManifest(f"{where} has no mediaType")
    if not isinstance(digest, str) or not is_digest(digest):
        raise InvalidManifest(f"{where} has no valid digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidManifest(f"{where} has no valid size")
    return Descriptor(media_type, digest, size, _annotations(value.get("annotations"), where))


def _annotations(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidManifest(f"{where}'s annotations are not a string map")
    return dict(value)


def parse_manifest(data: bytes, descriptor: Descriptor) -> Manifest:
    """The manifest ``data`` (served with ``descriptor``: its digest already checked by the client), checked.

    The media type is the document's own ``mediaType`` when it has one (it must agree with the served
    Content-Type), else the Content-Type: an index, a schema 1 manifest or anything else is refused.
    """
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidManifest("the manifest is not JSON") from e
    if not isinstance(doc, dict):
        raise InvalidManifest("the manifest is not a JSON object")
    media_type = doc.get("mediaType") or descriptor.media_type
    if not isinstance(media_type, str):
        raise InvalidManifest("the manifest's mediaType is not a string")
    if media_type in INDEXES:
        raise InvalidManifest(
            f"the reference names an index ({media_type}), not an artifact: point at a single manifest's digest or tag"
        )
    if media_type not in IMAGE_MANIFESTS:
        raise InvalidManifest(
            f"unsupported manifest media type {media_type[:120]!r} (expected {OCI_MANIFEST} or {DOCKER_MANIFEST})"
        )
    if doc.get("schemaVersion") != 2:
        raise InvalidManifest("the manifest's schemaVersion is not 2")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise InvalidManifest("the manifest has no layers list")
    if len(layers) > MAX_LAYERS:
        raise InvalidManifest(f"the manifest has more than {MAX_LAYERS} layers")
    return Manifest(
        descriptor=Descriptor(media_type, descriptor.digest, descriptor.size),
        config=_descriptor(doc.get("config"), "the manifest's config"),
        layers=tuple(_descriptor(layer, f"layer[{i}]") for i, layer in enumerate(layers)),
        annotations=_annotations(doc.get("annotations"), "the manifest"),
    )


def image_manifest(config: Descriptor, layers: list[Descriptor], annotations: Mapping[str, str] | None = None) -> bytes:
    """An OCI image manifest's bytes (compact JSON, the digest is of these bytes)."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return json.dumps(doc, separators=(",", ":"), sort_keys=False).encode()
