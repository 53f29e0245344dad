"""Test support: sign an artifact as ``cosign sign --key`` does (a simple signing payload under the
``sha256-<hex>.sig`` tag), with a key pair made here, so verification is tested against the real registry."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gitops_mesh.oci import Descriptor, RegistryClient, Repository
from gitops_mesh.oci.cosign import SIGNATURE_ANNOTATION, SIMPLE_SIGNING, signature_tag, simple_signing_payload
from gitops_mesh.oci.manifest import OCI_MANIFEST, image_manifest

#: cosign's signature manifests carry this config media type.
COSIGN_CONFIG = "application/vnd.oci.image.config.v1+json"


@dataclass
class Signer:
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    async def sign(self, client: RegistryClient, repo: Repository, digest: str, *, claim: str | None = None) -> None:
        """Push a signature of manifest ``digest`` (whose payload claims ``claim``, default the same digest)."""
        payload = simple_signing_payload(repo, claim or digest)
        signature = base64.b64encode(self.key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
        config = await client.push_blob(repo, b"{}", COSIGN_CONFIG)
        layer = await client.push_blob(repo, payload, SIMPLE_SIGNING)
        signed = Descriptor(layer.media_type, layer.digest, layer.size, {SIGNATURE_ANNOTATION: signature})
        await client.push_manifest(repo, signature_tag(digest), image_manifest(config, [signed]), OCI_MANIFEST)
