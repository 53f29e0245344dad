"""Artifacts, consumer side: download an artifact over HTTP, checking its digest and size while it streams.

Follows fluxcd/pkg ``http/fetch``: any status but 200 is a failure, 404 named as such (the source may
have garbage-collected that revision while our copy of its status was stale: retry, do not stall); the
size cap does not trust Content-Length alone, the bytes are counted; the digest is ``<algo>:<hex>``
(bare hex means sha256). Unlike it we stop reading as soon as the cap is passed, and hash while
writing instead of reading the file back.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import aiohttp

from gitops_mesh.artifacts.digests import Hasher, new_hasher, parse_digest
from gitops_mesh.artifacts.errors import ArtifactTooLarge, ArtifactUnavailable, DigestMismatch, StorageError
from gitops_mesh.observability import metrics

_BATCH = 1 << 20


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
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise StorageError(f"cannot create {tmp}: {e.strerror}") from e
    done = False
    try:
        size = await _download(session, url, fd, hasher, max_size, timeout)
        got = f"{algo}:{hasher.hexdigest()}"
        if got != f"{algo}:{expected}":
            metrics.artifact_fetch_errors.labels(reason="digest").inc()
            raise DigestMismatch(what=url, expected=f"{algo}:{expected}", got=f"{got} ({size} bytes)")
        os.close(fd)
        done = True
        os.replace(tmp, dest)
        return dest
    except OSError as e:
        raise StorageError(f"cannot write {dest}: {e.strerror}") from e
    finally:
        if not done:
            os.close(fd)
        tmp.unlink(missing_ok=True)


async def _download(
    session: aiohttp.ClientSession,
    url: str,
    fd: int,
    hasher: Hasher,
    max_size: int,
    timeout: aiohttp.ClientTimeout | None,
) -> int:
    seen = 0
    batch = bytearray()

    def flush(data: bytes | bytearray) -> None:
        hasher.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

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
                    retry_after=_retry_after(resp.headers.get("Retry-After")),
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
                if len(batch) >= _BATCH:
                    # Hashing and writing a MiB off the loop; the next chunks keep arriving meanwhile.
                    await asyncio.to_thread(flush, batch)
                    batch = bytearray()
            if batch:
                await asyncio.to_thread(flush, batch)
    except (aiohttp.ClientError, TimeoutError) as e:
        metrics.artifact_fetch_errors.labels(reason="unreachable").inc()
        raise ArtifactUnavailable(f"artifact download failed: GET {url}: {_describe(e)}", url=url) from e
    metrics.artifact_fetched_bytes.inc(seen)
    return seen


def _retry_after(value: str | None) -> float | None:
    if value and value.isdigit():
        return float(value)
    return None


def _describe(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "timed out"
    return str(e) or type(e).__name__
