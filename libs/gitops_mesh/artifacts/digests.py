"""Artifacts, shared by producer and consumers: parsing ``<algo>:<hex>`` digests and hashing files."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Protocol

from gitops_mesh.artifacts.errors import UnsupportedDigest

#: Flux's --artifact-digest-algo choices that the standard library can compute (not blake3).
ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}
_HEX = re.compile(r"[0-9a-f]+")


class Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


def parse_digest(digest: str) -> tuple[str, str]:
    """``'sha256:ab..'`` -> ``('sha256', 'ab..')``; a bare hex string is sha256, as Flux's fetcher reads it."""
    algo, sep, hexpart = digest.partition(":")
    if not sep:
        algo, hexpart = "sha256", digest
    length = ALGORITHMS.get(algo)
    if length is None:
        raise UnsupportedDigest(f"unsupported digest algorithm in {digest!r} (supported: {', '.join(ALGORITHMS)})")
    if len(hexpart) != length or not _HEX.fullmatch(hexpart):
        raise UnsupportedDigest(f"malformed {algo} digest {digest!r}")
    return algo, hexpart


def new_hasher(algo: str) -> Hasher:
    return hashlib.new(algo)


def file_digest(path: Path, algo: str = "sha256") -> str:
    """``<algo>:<hex>`` of a file's content, read in 1 MiB blocks (blocking: call it from a thread)."""
    hasher = new_hasher(algo)
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            hasher.update(block)
    return f"{algo}:{hasher.hexdigest()}"
