"""Hashed writes through aiofiles: what is written is what is hashed, across block boundaries."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import aiofiles

from gitops_mesh.artifacts.digests import new_hasher
from gitops_mesh.artifacts.hashed_writes import BLOCK, copy_hashed, write_hashed


async def test_write_hashed_writes_and_hashes_the_same_bytes(tmp_path: Path) -> None:
    parts: list[bytes | bytearray] = [b"a" * 10, bytearray(b"b" * BLOCK), b""]
    hasher = new_hasher("sha256")
    async with aiofiles.open(tmp_path / "out", "wb") as out:
        for part in parts:
            await write_hashed(out, hasher, part)
    whole = b"".join(parts)
    assert (tmp_path / "out").read_bytes() == whole
    assert hasher.hexdigest() == hashlib.sha256(whole).hexdigest()


async def test_copy_hashed_copies_several_blocks_and_a_tail(tmp_path: Path) -> None:
    data = random.Random(2).randbytes(2 * BLOCK + 12_345)
    (tmp_path / "src").write_bytes(data)
    hasher = new_hasher("sha512")
    async with aiofiles.open(tmp_path / "dst", "wb") as out:
        size = await copy_hashed(tmp_path / "src", out, hasher)
    assert size == len(data)
    assert (tmp_path / "dst").read_bytes() == data
    assert hasher.hexdigest() == hashlib.sha512(data).hexdigest()


async def test_copy_hashed_of_an_empty_file(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"")
    hasher = new_hasher("sha256")
    async with aiofiles.open(tmp_path / "dst", "wb") as out:
        assert await copy_hashed(tmp_path / "src", out, hasher) == 0
    assert hasher.hexdigest() == hashlib.sha256(b"").hexdigest()
