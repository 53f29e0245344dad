"""Listing and fetching through the BucketClient seam (an in-memory store of our own, no SDK): bounded
parallel downloads, the cache reused at the same etag, objects that vanish or change mid-fetch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from source_controller.objectstore.cache import ObjectCache, link_tree
from source_controller.objectstore.errors import BucketOperationFailed, ObjectNotFound
from source_controller.objectstore.fetch import fetch_objects, list_objects, read_sourceignore
from source_controller.objectstore.index import Limits, Listed, build_index, ignore_filter

LIMITS = Limits(max_objects=1000, max_total_size=1 << 20, max_object_size=1 << 16)


class MemoryBucket:
    """A BucketClient over a dict; counts downloads and the most in flight at once."""

    def __init__(self, objects: dict[str, bytes], present: bool = True) -> None:
        self.objects = objects
        self.present = present
        self.downloads: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.changed_during_fetch: dict[str, bytes] = {}

    def etag_of(self, data: bytes) -> str:
        return f"e{hash(data) & 0xFFFF:x}"

    async def exists(self) -> bool:
        return self.present

    async def list(self, prefix: str) -> AsyncIterator[Listed]:
        for key, data in sorted(self.objects.items()):
            if key.startswith(prefix):
                yield Listed(key, self.etag_of(data), len(data))

    async def etag(self, key: str) -> str | None:
        data = self.objects.get(key)
        return None if data is None else self.etag_of(data)

    async def download(self, key: str, dest: Path, max_size: int) -> str:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.001)
            self.objects.update(self.changed_during_fetch)
            data = self.objects.get(key)
            if data is None:
                raise ObjectNotFound(f"object '{key}' not found")
            if len(data) > max_size:
                raise BucketOperationFailed(f"object '{key}' is too large")
            dest.write_bytes(data)
            self.downloads.append(key)
            return self.etag_of(data)
        finally:
            self.in_flight -= 1


async def index_of(store: MemoryBucket, cache: ObjectCache, prefix: str = "", ignore: str | None = None):  # type: ignore[no-untyped-def]
    listed = await list_objects(store, "b", prefix, 10_000)
    text, _ = await read_sourceignore(store, cache, listed, prefix)
    return build_index("b", listed, ignore_filter(text, ignore), LIMITS)


async def test_downloads_are_bounded_and_land_in_the_cache(tmp_path: Path) -> None:
    store = MemoryBucket({f"dir/f{i}.yaml": f"content {i}".encode() for i in range(50)})
    cache = ObjectCache(tmp_path)
    index = await index_of(store, cache)
    fetched = await fetch_objects(store, "b", index, cache, concurrency=4, max_object_size=1024)
    assert (fetched.downloaded, fetched.reused) == (50, 0)
    assert 1 < store.max_in_flight <= 4
    work = tmp_path / "work"
    link_tree(cache, index.etags, work)
    assert (work / "dir" / "f7.yaml").read_text() == "content 7"
    assert (work / "dir" / "f7.yaml").stat().st_nlink == 2  # a hard link to the cache entry, not a copy


async def test_only_changed_objects_are_fetched_again(tmp_path: Path) -> None:
    store = MemoryBucket({"a": b"1", "b": b"2", "c": b"3"})
    cache = ObjectCache(tmp_path)
    first = await index_of(store, cache)
    await fetch_objects(store, "b", first, cache, concurrency=8, max_object_size=1024)
    store.objects["b"] = b"changed"
    store.objects["d"] = b"new"
    del store.objects["c"]
    store.downloads.clear()
    second = await index_of(store, cache)
    assert second.revision != first.revision
    cache.prune(second.etags.items())
    fetched = await fetch_objects(store, "b", second, cache, concurrency=8, max_object_size=1024)
    assert sorted(store.downloads) == ["b", "d"]
    assert (fetched.downloaded, fetched.reused) == (2, 1)
    # The cache holds exactly the current objects.
    assert cache.names() == {cache.path(k, e).name for k, e in second.etags.items()}


async def test_sourceignore_comes_from_the_cache_when_unchanged(tmp_path: Path) -> None:
    store = MemoryBucket({".sourceignore": b"*.md\n", "a.md": b"x", "a.yaml": b"y"})
    cache = ObjectCache(tmp_path)
    index = await index_of(store, cache)
    assert set(index.etags) == {"a.yaml"}
    assert store.downloads == [".sourceignore"]
    await index_of(store, cache)
    assert store.downloads == [".sourceignore"]  # the no-op listing downloaded nothing


async def test_sourceignore_outside_the_prefix_is_read_at_the_root(tmp_path: Path) -> None:
    store = MemoryBucket({".sourceignore": b"secret.yaml\n", "app/secret.yaml": b"x", "app/ok.yaml": b"y"})
    index = await index_of(store, ObjectCache(tmp_path), prefix="app/")
    assert set(index.etags) == {"app/ok.yaml"}


async def test_vanished_object_is_dropped_and_changed_one_takes_its_fetched_etag(tmp_path: Path) -> None:
    store = MemoryBucket({"gone": b"1", "moving": b"2", "still": b"3"})
    cache = ObjectCache(tmp_path)
    index = await index_of(store, cache)
    listed_revision = index.revision
    del store.objects["gone"]
    store.changed_during_fetch = {"moving": b"2-new"}
    await fetch_objects(store, "b", index, cache, concurrency=2, max_object_size=1024)
    assert set(index.etags) == {"moving", "still"}
    assert index.etags["moving"] == store.etag_of(b"2-new")
    assert index.revision != listed_revision


async def test_missing_bucket_and_oversized_download(tmp_path: Path) -> None:
    with pytest.raises(BucketOperationFailed, match="bucket 'b' not found"):
        await list_objects(MemoryBucket({}, present=False), "b", "", 10)
    store = MemoryBucket({"big": b"x" * 2000})
    cache = ObjectCache(tmp_path)
    index = await index_of(store, cache)
    with pytest.raises(BucketOperationFailed, match="fetch from bucket 'b' failed: object 'big' is too large"):
        await fetch_objects(store, "b", index, cache, concurrency=2, max_object_size=1024)
    # No partial download is left in the cache.
    assert cache.names() == set()


async def test_listing_over_the_cap_is_refused(tmp_path: Path) -> None:
    store = MemoryBucket({f"f{i}": b"x" for i in range(20)})
    with pytest.raises(BucketOperationFailed, match="lists more than 10 objects"):
        await list_objects(store, "b", "", 10)
