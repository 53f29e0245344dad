"""gitops_mesh.oci.cosign, pure part: keys from a Secret, signatures over simple signing payloads, the claim."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from gitops_mesh.oci import Repository
from gitops_mesh.oci.cosign import (
    InvalidPublicKey,
    check_signature,
    load_public_keys,
    signature_tag,
    signed_digest,
    simple_signing_payload,
)

REPO = Repository("127.0.0.1:5000", "apps/x")
DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, payload: bytes) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        raw = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, rsa.RSAPrivateKey):
        raw = key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    else:
        raw = key.sign(payload)
    return base64.b64encode(raw).decode()


def test_the_signature_tag_is_cosigns() -> None:
    assert signature_tag(DIGEST) == "sha256-" + "ab" * 32 + ".sig"


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP256R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ed25519.Ed25519PrivateKey.generate(),
    ],
)
def test_a_trusted_key_verifies_its_signature_of_this_digest(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey,
) -> None:
    payload = simple_signing_payload(REPO, DIGEST)
    keys = load_public_keys({"signer.pub": pem(key), "README.md": b"not a key"})
    found = check_signature(payload, sign(key, payload), DIGEST, keys)
    assert found is not None
    assert (found.key, found.digest) == ("signer.pub", DIGEST)


def test_another_key_a_tampered_payload_or_another_digest_do_not_verify() -> None:
    signer, stranger = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    payload = simple_signing_payload(REPO, DIGEST)
    signature = sign(signer, payload)
    trusted = load_public_keys({"a.pub": pem(signer)})
    assert check_signature(payload, sign(stranger, payload), DIGEST, trusted) is None
    assert check_signature(payload.replace(b"apps/x", b"apps/y"), signature, DIGEST, trusted) is None
    # A valid signature of another artifact, copied next to this one, proves nothing about this one.
    assert check_signature(payload, signature, OTHER, trusted) is None
    assert check_signature(payload, "%%% not base64", DIGEST, trusted) is None


def test_the_payload_claim_must_be_a_cosign_signature() -> None:
    assert signed_digest(simple_signing_payload(REPO, DIGEST)) == DIGEST
    assert signed_digest(b'{"critical":{"type":"other","image":{"docker-manifest-digest":"x"}}}') is None
    assert signed_digest(b"not json") is None


def test_keys_that_do_not_load_are_named_not_quoted() -> None:
    with pytest.raises(InvalidPublicKey, match=r"'bad\.pub' is not a PEM public key") as caught:
        load_public_keys({"bad.pub": b"-----BEGIN PUBLIC KEY-----\nsecretish\n-----END PUBLIC KEY-----\n"})
    assert "secretish" not in str(caught.value)
    assert load_public_keys({"cosign.key": b"private, ignored"}) == {}
