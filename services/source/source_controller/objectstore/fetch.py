"""Listing and fetching a bucket's objects: the I/O between the provider client and the cache.

Downloads run in parallel with a bound (Flux bounds its goroutines the same way, at 100): a fixed set of
workers pulls keys from one iterator, so 10,000 objects make 10,000 requests but never more than the
bound in flight, nor 10,000 pending tasks. Objects already in the cache at the listed etag are not
fetched. What Flux does when the bucket changes under a fetch is kept: an object gone since the listing
is dropped from the index, one changed since then enters the index with the etag it was fetched at.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from gitops_mesh.observability.logging import get_logger
from source_controller.git.ignore import IGNORE_FILE, MAX_RULES_TEXT
from source_controller.objectstore.cache import ObjectCache, entry_name
from source_controller.objectstore.errors import BucketOperationFailed, ObjectNotFound
from source_controller.objectstore.index import Index, Listed
from source_controller.objectstore.provider import BucketClient
from source_controller.objectstore.s3_ranges import RangedListing

log = get_logger(__name__)


@dataclass
class Fetched:
    """How a fetch went: objects downloaded, objects taken from the cache."""

    downloaded: int = 0
    reused: int = 0


async def list_objects(client: BucketClient, bucket: str, prefix: str, max_listed: int) -> list[Listed]:
    """The whole listing, after checking the bucket exists (Flux's order and words)."""
    if not await client.exists():
        raise BucketOperationFailed(f"bucket '{bucket}' not found")
    listed: list[Listed] = []
    async for obj in client.list(prefix):
        listed.append(obj)
        if len(listed) > max_listed:
            raise BucketOperationFailed(
                f"bucket '{bucket}' lists more than {max_listed} objects under prefix '{prefix}' (--max-bucket-objects)"
            )
    return listed


@runtime_checkable
class RangedBucketClient(BucketClient, Protocol):
    """A client that lists by key ranges at once and can tell an unchanged listing (S3: :mod:`.s3_ranges`)."""

    async def list_ranges(self, prefix: str, previous: RangedListing | None, max_listed: int) -> RangedListing: ...


async def list_ranged(
    client: RangedBucketClient, bucket: str, prefix: str, max_listed: int, previous: RangedListing | None
) -> RangedListing:
    """:func:`list_objects` by ranges, with the bucket's existence asked at the same time as the listing
    rather than one round trip before it; a missing bucket is still said so first, as Flux words it."""
    exists = asyncio.create_task(client.exists())
    try:
        listing = await client.list_ranges(prefix, previous, max_listed)
    except BucketOperationFailed:
        if not await exists:
            raise BucketOperationFailed(f"bucket '{bucket}' not found") from None
        raise
    except BaseException:
        exists.cancel()
        if exists.done() and not exists.cancelled():
            exists.exception()  # retrieved: the listing's own error is the one raised
        raise
    if not await exists:
        raise BucketOperationFailed(f"bucket '{bucket}' not found")
    return listing


async def read_sourceignore(
    client: BucketClient, cache: ObjectCache, listed: list[Listed], prefix: str
) -> tuple[str | None, tuple[str, str] | None]:
    """The root .sourceignore's text (None when there is none) and its cache entry.

    Its etag comes from the listing when the prefix covers the root file, else from one HEAD; its content
    from the cache when that etag was fetched before, so an unchanged bucket costs the listing alone.
    """
    if IGNORE_FILE.startswith(prefix):
        etag = next((o.etag for o in listed if o.key == IGNORE_FILE), None)
    else:
        etag = await client.etag(IGNORE_FILE)
    if etag is None:
        return None, None
    await asyncio.to_thread(cache.ensure)
    if not await asyncio.to_thread(cache.has, IGNORE_FILE, etag):
        part = cache.part()
        try:
            got = await client.download(IGNORE_FILE, part, 4 * MAX_RULES_TEXT)
        except ObjectNotFound:
            return None, None
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(part.unlink)
            raise
        etag = got
        await asyncio.to_thread(cache.commit, part, IGNORE_FILE, etag)
    text = await asyncio.to_thread(cache.path(IGNORE_FILE, etag).read_text, errors="replace")
    return text, (IGNORE_FILE, etag)


async def fetch_objects(
    client: BucketClient,
    bucket: str,
    index: Index,
    cache: ObjectCache,
    *,
    concurrency: int,
    max_object_size: int,
) -> Fetched:
    """Bring every indexed object into the cache; ``index`` is updated as Flux updates it."""
    await asyncio.to_thread(cache.ensure)
    result = Fetched()
    cached = await asyncio.to_thread(cache.names)
    missing = []
    for obj in index.objects.values():
        if entry_name(obj.key, obj.etag) in cached:
            result.reused += 1
        else:
            missing.append(obj)
    todo: Iterator[Listed] = iter(missing)

    async def one(obj: Listed) -> None:
        part = cache.part()
        try:
            etag = await client.download(obj.key, part, max_object_size)
        except ObjectNotFound:
            log.info("indexed object disappeared from bucket", key=obj.key, bucket=bucket)
            index.objects.pop(obj.key, None)
            return
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(part.unlink)
            raise
        try:
            await asyncio.to_thread(cache.commit, part, obj.key, etag)
        except OSError as e:
            raise BucketOperationFailed(f"failed to keep '{obj.key}' object: {e.strerror}") from None
        if etag != obj.etag:
            index.objects[obj.key] = Listed(obj.key, etag, obj.size)
        result.downloaded += 1

    async def worker() -> None:
        for obj in todo:
            await one(obj)

    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(max(1, min(concurrency, len(missing)))):
                tg.create_task(worker())
    except* BucketOperationFailed as group:
        # The first failure names the object; the others were cancelled or are the same kind of news.
        raise BucketOperationFailed(f"fetch from bucket '{bucket}' failed: {group.exceptions[0]}") from None
    return result
