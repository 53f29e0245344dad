"""Artifacts, both sides: content written to a file through aiofiles and hashed on the way, off the loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiofiles
from aiofiles.threadpool.binary import AsyncBufferedIOBase

from gitops_mesh.artifacts.digests import Hasher

#: Bytes read, hashed and written at once: one thread hop per MiB, not per network chunk.
BLOCK = 1 << 20


async def write_hashed(out: AsyncBufferedIOBase, hasher: Hasher, data: bytes | bytearray) -> None:
    """Hash ``data`` and write it to ``out`` side by side in worker threads (hashlib lets go of the GIL).

    ``data`` must not change until this returns.
    """
    await asyncio.gather(asyncio.to_thread(hasher.update, data), out.write(data))


async def copy_hashed(src: Path, out: AsyncBufferedIOBase, hasher: Hasher) -> int:
    """Copy ``src`` into ``out`` block by block, hashing it; returns the bytes copied."""
    size = 0
    async with aiofiles.open(src, "rb") as fin:
        while block := await fin.read(BLOCK):
            await write_hashed(out, hasher, block)
            size += len(block)
    return size
