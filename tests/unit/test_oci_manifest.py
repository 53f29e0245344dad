"""gitops_mesh.oci.manifest: single-image manifests checked, indexes and other media types refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gitops_mesh.oci import Descriptor, InvalidManifest
from gitops_mesh.oci.manifest import (
    DOCKER_MANIFEST,
    FLUX_CONFIG,
    FLUX_CONTENT,
    OCI_INDEX,
    OCI_MANIFEST,
    image_manifest,
    parse_manifest,
)

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
SERVED = Descriptor(OCI_MANIFEST, "sha256:" + "f" * 64, 123)


def doc(**changes: Any) -> bytes:
    base: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": FLUX_CONFIG, "digest": D1, "size": 2},
        "layers": [{"mediaType": FLUX_CONTENT, "digest": D2, "size": 10, "annotations": {"k": "v"}}],
        "annotations": {"org.opencontainers.image.source": "https://x"},
    }
    base.update(changes)
    return json.dumps(base).encode()


def test_a_flux_artifact_manifest_reads_back() -> None:
    m = parse_manifest(doc(), SERVED)
    assert m.descriptor.digest == SERVED.digest
    assert m.config == Descriptor(FLUX_CONFIG, D1, 2)
    assert m.layers == (Descriptor(FLUX_CONTENT, D2, 10, {"k": "v"}),)
    assert m.annotations == {"org.opencontainers.image.source": "https://x"}


def test_written_manifests_parse_as_what_was_written() -> None:
    data = image_manifest(Descriptor(FLUX_CONFIG, D1, 2), [Descriptor(FLUX_CONTENT, D2, 10)], {"a": "b"})
    m = parse_manifest(data, Descriptor(OCI_MANIFEST, SERVED.digest, len(data)))
    assert (m.config.digest, m.layers[0].digest, m.annotations) == (D1, D2, {"a": "b"})


def test_the_content_type_decides_when_the_document_has_no_media_type() -> None:
    data = doc(mediaType=None)
    assert parse_manifest(data, Descriptor(DOCKER_MANIFEST, SERVED.digest, 1)).descriptor.media_type == DOCKER_MANIFEST
    with pytest.raises(InvalidManifest, match="unsupported manifest media type 'text/html'"):
        parse_manifest(data, Descriptor("text/html", SERVED.digest, 1))


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"<html>", "not JSON"),
        (b"[1]", "not a JSON object"),
        (doc(mediaType=OCI_INDEX), "names an index"),
        (doc(mediaType="application/vnd.docker.distribution.manifest.v1+json"), "unsupported manifest media type"),
        (doc(schemaVersion=1), "schemaVersion"),
        (doc(layers=None), "no layers list"),
        (doc(layers=[{"mediaType": FLUX_CONTENT, "digest": "sha256:zz", "size": 1}]), "layer[0] has no valid digest"),
        (doc(layers=[{"mediaType": FLUX_CONTENT, "digest": D2, "size": -1}]), "layer[0] has no valid size"),
        (doc(layers=[{"mediaType": FLUX_CONTENT, "digest": D2, "size": True}]), "layer[0] has no valid size"),
        (doc(config="x"), "config is not a descriptor"),
        (doc(annotations={"a": 1}), "annotations are not a string map"),
        (doc(layers=[{"mediaType": FLUX_CONTENT, "digest": D2, "size": 1}] * 1025), "more than 1024 layers"),
    ],
)
def test_malformed_manifests_are_refused_with_what_is_wrong(data: bytes, words: str) -> None:
    with pytest.raises(InvalidManifest) as caught:
        parse_manifest(data, SERVED)
    assert words in str(caught.value)
