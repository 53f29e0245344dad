"""Artifacts, consumer side: download an artifact over HTTP, checking its digest and size while it streams.

Follows fluxcd/pkg ``http/fetch``: any status but 200 is a failure, 404 named as such (the source may
have garbage-collected that revision while our copy of its status was stale: retry, do not stall); the
size cap does not trust Content-Length alone, the bytes are counted; the digest is ``<algo>:<hex>``
(bare hex means sha256). Unlike it we stop reading as soon as the cap is passed, and hash while
writing (aiofiles, off the loop) instead of reading the file back.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import aiofiles
import aiofiles.os
import aiohttp
from aiofiles.threadpool.binary import AsyncBufferedIOBase

from gitops_mesh.artifacts.digests import Hasher, new_hasher, parse_digest
from gitops_mesh.artifacts.errors import ArtifactTooLarge, ArtifactUnavailable, DigestMismatch, StorageError
from gitops_mesh.artifacts.hashed_writes import BLOCK, write_hashed
from gitops_mesh.http_headers import parse_retry_after
from gitops_mesh.observability import metrics


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    *,
    digest: str,
    max_size: int,
    timeout: aiohttp.ClientTimeout | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (atomically: a temp file beside it, renamed once verified).

    Raises :class:`ArtifactUnavailable` (transient: unreachable, timeout, 404, any other status),
    :class:`ArtifactTooLarge` (over ``max_size`` bytes), :class:`DigestMismatch` (names both digests).
    """
    algo, expected = parse_digest(digest)
    hasher = new_hasher(algo)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.part")
    try:
        # "x": never write into a file someone else made; 0600: the artifact is this process's alone.
        out = await aiofiles.open(tmp, "xb", opener=_private)
    except OSError as e:
        raise StorageError(f"cannot create {tmp}: {e.strerror}") from e
    try:
        try:
            size = await _download(session, url, out, hasher, max_size, timeout)
        finally:
            await out.close()
        got = f"{algo}:{hasher.hexdigest()}"
        if got != f"{algo}:{expected}":
            metrics.artifact_fetch_errors.labels(reason="digest").inc()
            raise DigestMismatch(what=url, expected=f"{algo}:{expected}", got=f"{got} ({size} bytes)")
        await aiofiles.os.replace(tmp, dest)
        return dest
    except OSError as e:
        raise StorageError(f"cannot write {dest}: {e.strerror}") from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            await aiofiles.os.unlink(tmp)


async def _download(
    session: aiohttp.ClientSession,
    url: str,
    out: AsyncBufferedIOBase,
    hasher: Hasher,
    max_size: int,
    timeout: aiohttp.ClientTimeout | None,
) -> int:
    seen = 0
    batch = bytearray()
    try:
        # Identity and no auto-decompression: the digest is over the bytes as stored, gzip included.
        headers = {"Accept-Encoding": "identity"}
        request = (
            session.get(url, headers=headers, auto_decompress=False)
            if timeout is None
            else session.get(url, headers=headers, auto_decompress=False, timeout=timeout)
        )
        async with request as resp:
            if resp.status != 200:
                metrics.artifact_fetch_errors.labels(reason=str(resp.status)).inc()
                what = "not found (the source may have garbage-collected it)" if resp.status == 404 else "failed"
                raise ArtifactUnavailable(
                    f"artifact download {what}: GET {url}: {resp.status} {resp.reason or ''}".rstrip(),
                    url=url,
                    status=resp.status,
                    retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                )
            if resp.content_length is not None and resp.content_length > max_size:
                metrics.artifact_fetch_errors.labels(reason="too_large").inc()
                raise ArtifactTooLarge(url=url, limit=max_size, seen=resp.content_length)
            async for chunk in resp.content.iter_any():
                seen += len(chunk)
                if seen > max_size:
                    metrics.artifact_fetch_errors.labels(reason="too_large").inc()
                    raise ArtifactTooLarge(url=url, limit=max_size, seen=seen)
                batch += chunk
                if len(batch) >= BLOCK:
                    # A MiB hashed and written at once, off the loop; the next chunks keep arriving meanwhile.
                    await write_hashed(out, hasher, batch)
                    batch = bytearray()
            if batch:
                await write_hashed(out, hasher, batch)
    except (aiohttp.ClientError, TimeoutError) as e:
        metrics.artifact_fetch_errors.labels(reason="unreachable").inc()
        raise ArtifactUnavailable(f"artifact download failed: GET {url}: {_describe(e)}", url=url) from e
    metrics.artifact_fetched_bytes.inc(seen)
    return seen


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def _describe(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "timed out"
    return str(e) or type(e).__name__
