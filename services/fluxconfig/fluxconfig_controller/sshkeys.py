"""SSH keys for a FluxConfig's git source: the generated deploy key pair, and parsing what a user gave.

All key work is the ``cryptography`` package's (already a runtime dependency for cosign): it generates
Ed25519 and RSA keys, writes OpenSSH private keys and ``authorized_keys`` lines, and parses OpenSSH and
PEM private keys and OpenSSH public keys — nothing here hand-encodes a key format.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

#: known_hosts files larger than this are refused before parsing (a tenant wrote it).
MAX_KNOWN_HOSTS = 256 * 1024
MAX_PRIVATE_KEY = 64 * 1024


class KeyAlgorithm(StrEnum):
    ED25519 = "ed25519"
    RSA = "rsa"


#: Flux's ``flux create secret git`` default for RSA keys, and the issue's "RSA 4096 on request".
RSA_BITS = 4096


@dataclass(frozen=True, slots=True)
class KeyPair:
    """An OpenSSH private key and its ``authorized_keys`` line."""

    algorithm: KeyAlgorithm
    private: bytes
    public: str


def generate(algorithm: KeyAlgorithm, comment: str) -> KeyPair:
    """A new key pair (RSA 4096 takes a noticeable fraction of a second: call it in a thread)."""
    key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    if algorithm is KeyAlgorithm.RSA:
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return KeyPair(algorithm, private, f"{public.decode()} {comment}".strip())


def parse_private_key(data: bytes) -> bool:
    """True when ``data`` is an unencrypted OpenSSH or PEM private key (RSA, ECDSA, DSA or Ed25519)."""
    if len(data) > MAX_PRIVATE_KEY:
        return False
    loaders = (serialization.load_ssh_private_key, serialization.load_pem_private_key)
    for load in loaders:
        try:
            load(data, None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
        return True
    return False


def known_hosts_problem(text: bytes) -> str | None:
    """Why ``text`` is not a known_hosts file sshd(8) would read, or None; names a line, never quotes it."""
    if len(text) > MAX_KNOWN_HOSTS:
        return f"known_hosts is larger than {MAX_KNOWN_HOSTS} bytes"
    try:
        lines = text.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return "known_hosts is not valid utf-8"
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if fields[0].startswith("@"):  # @cert-authority / @revoked marker
            fields = fields[1:]
        if len(fields) < 3:
            return f"known_hosts line {number}: not enough fields (hosts, key type, key)"
        try:
            serialization.load_ssh_public_key(f"{fields[1]} {fields[2]}".encode())
        except (ValueError, UnsupportedAlgorithm, binascii.Error):
            return f"known_hosts line {number}: the key does not parse"
    return None


def b64decode(value: str | bytes) -> bytes | None:
    """Strict base64 (ARM's encoding of keys, certificates and known_hosts), or None."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
