"""Cosign's key-based signatures of an OCI artifact: find them in the registry, verify them with trusted public keys.

Cosign stores the signatures of manifest ``sha256:<hex>`` as the manifest tagged ``sha256-<hex>.sig`` in the
same repository: each layer is a *simple signing* payload (``application/vnd.dev.cosign.simplesigning.v1+json``,
a JSON document naming the signed manifest's digest) and carries its signature, base64, in the annotation
``dev.cosignproject.cosign/signature``. A signature is valid when one trusted key verifies it over the
payload's bytes **and** the payload names the manifest being verified (else a signature of another
artifact, copied over, would pass).

The cryptography is the ``cryptography`` package's (maintained, OpenSSL underneath): ECDSA with SHA-256
(cosign's default keys, P-256), RSA PKCS#1 v1.5 with SHA-256 and Ed25519, as cosign verifies each.
Not here (refused by the caller with a clear message): keyless verification (Fulcio certificates and the
Rekor transparency log) and signatures stored as OCI 1.1 referrers or Sigstore bundles.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from gitops_mesh.errors import TransientError
from gitops_mesh.oci.client import RegistryClient
from gitops_mesh.oci.errors import ManifestNotFound, OciError
from gitops_mesh.oci.manifest import parse_manifest
from gitops_mesh.oci.reference import Repository

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"
#: A payload is a few hundred bytes; a signature manifest holds one layer per signing.
MAX_PAYLOAD_BYTES = 1 << 20
MAX_SIGNATURES = 64

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class VerificationFailed(OciError, TransientError):
    """No trusted key verified a signature of the artifact (or it has none): Flux's VerificationError."""

    reason = "VerificationError"

    def __init__(self, message: str) -> None:
        TransientError.__init__(self, message)


class InvalidPublicKey(ValueError):
    """A trusted key that does not load (the message names the Secret's key, never its content)."""


@dataclass(frozen=True, slots=True)
class Verified:
    """The signature that verified: which trusted key (its name in the Secret) signed which manifest."""

    key: str
    digest: str


def signature_tag(digest: str) -> str:
    """The tag cosign stores the signatures of manifest ``digest`` under: ``sha256-<hex>.sig``."""
    algo, _, hexpart = digest.partition(":")
    return f"{algo}-{hexpart}.sig"


def load_public_keys(items: Mapping[str, bytes]) -> dict[str, PublicKey]:
    """The PEM public keys among a Secret's data: the keys whose name ends ``.pub``, as Flux takes them."""
    keys: dict[str, PublicKey] = {}
    for name, data in sorted(items.items()):
        if not name.endswith(".pub"):
            continue
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm) as e:
            raise InvalidPublicKey(f"'{name}' is not a PEM public key") from e
        if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
            raise InvalidPublicKey(f"'{name}' is a {type(key).__name__}: cosign keys are ECDSA, RSA or Ed25519")
        keys[name] = key
    return keys


def verify_signature(key: PublicKey, payload: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``key``'s over ``payload`` (pure, no exception for a bad signature)."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, payload)
    except (InvalidSignature, ValueError):
        return False
    return True


def signed_digest(payload: bytes) -> str | None:
    """The manifest digest a simple signing payload claims, None when it is not a cosign signature payload."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    critical = doc.get("critical") if isinstance(doc, dict) else None
    if not isinstance(critical, dict) or critical.get("type") != SIGNATURE_TYPE:
        return None
    image = critical.get("image")
    digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    return digest if isinstance(digest, str) else None


def simple_signing_payload(repository: Repository, digest: str) -> bytes:
    """The payload cosign signs for manifest ``digest`` of ``repository`` (what ``cosign sign`` writes)."""
    doc = {
        "critical": {
            "identity": {"docker-reference": str(repository)},
            "image": {"docker-manifest-digest": digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": None,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def check_signature(payload: bytes, signature_b64: str, digest: str, keys: Mapping[str, PublicKey]) -> Verified | None:
    """The key that signed ``payload`` (which must name ``digest``), None when none did (pure)."""
    if signed_digest(payload) != digest:
        return None
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    for name, key in keys.items():
        if verify_signature(key, payload, signature):
            return Verified(name, digest)
    return None


async def verify(
    client: RegistryClient,
    repo: Repository,
    digest: str,
    keys: Mapping[str, PublicKey],
) -> Verified:
    """Find the signatures of manifest ``digest`` and return the first one a trusted key verifies.

    VerificationFailed when there are no signatures, none verifies, or none names this digest.
    """
    if not keys:
        raise VerificationFailed("no public keys ('*.pub') in the verification secret")
    tag = signature_tag(digest)
    try:
        data, descriptor = await client.manifest_bytes(repo, tag)
    except ManifestNotFound as e:
        raise VerificationFailed(f"no signatures found for '{repo}@{digest}' (no tag {tag})") from e
    manifest = parse_manifest(data, descriptor)
    layers = [layer for layer in manifest.layers if layer.media_type == SIMPLE_SIGNING][:MAX_SIGNATURES]
    for layer in layers:
        signature = layer.annotations.get(SIGNATURE_ANNOTATION)
        if not signature or layer.size > MAX_PAYLOAD_BYTES:
            continue
        payload = await client.small_blob(repo, layer, MAX_PAYLOAD_BYTES)
        found = check_signature(payload, signature, digest, keys)
        if found is not None:
            return found
    raise VerificationFailed(f"no matching signatures were found for '{repo}@{digest}'")
