"""Throw-away OpenPGP keys for signing test commits and tags."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gitops_mesh_dev.repos import Signer


def _gpg(home: Path, *args: str) -> str:
    done = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--no-tty", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def make_key(home: Path, name: str, email: str) -> Signer:
    """A new ed25519 signing key (no passphrase) in the GNUPGHOME ``home``."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    _gpg(home, "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", f"{name} <{email}>", "ed25519", "sign", "never")  # fmt: skip
    listing = _gpg(home, "--with-colons", "--list-keys", email)
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    return Signer(home, fingerprint)


def export_public(signer: Signer) -> bytes:
    """The key's armored public part, as a verification Secret would hold it."""
    return _gpg(signer.gnupghome, "--armor", "--export", signer.fingerprint).encode()


def stop_agent(home: Path) -> None:
    """Stop the gpg-agent that signing started for ``home``."""
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False, timeout=30)
