"""Listing by key ranges against the stack's S3 server (SeaweedFS): the same listing as page by page whatever
changed since the ranges were learnt, an unchanged bucket recognised without parsing, and the reconciler's
known revision reused only while the listing, its ignore rules and its artifact are what they were."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gitops_mesh.artifacts.storage import Storage
from gitops_mesh.kube import KubeClient
from source_controller.bucket import BucketReconciler
from source_controller.objectstore.auth import S3Keys
from source_controller.objectstore.errors import BucketOperationFailed
from source_controller.objectstore.fetch import list_ranged
from source_controller.objectstore.index import Limits, digest
from source_controller.objectstore.s3 import S3Bucket, open_s3
from source_controller.objectstore.s3_ranges import RangedListing
from tests.integration.source.bucket.conftest import S3, bucket, secret

pytestmark = pytest.mark.stack

PAGE = 3


@contextlib.asynccontextmanager
async def ours(s3: S3, name: str | None = None) -> AsyncIterator[S3Bucket]:
    async with open_s3(
        endpoint=s3.endpoint,
        bucket=name or s3.bucket,
        insecure=True,
        region=None,
        keys=S3Keys(s3.access_key, s3.secret_key),
        tls=None,
        proxy=None,
        aws=False,
        timeout=30,
        max_connections=4,
    ) as client:
        client.page_keys = PAGE  # ranges of three keys, so a dozen keys make several
        yield client


async def listing(client: S3Bucket, bucket_name: str, previous: RangedListing | None) -> RangedListing:
    return await list_ranged(client, bucket_name, "", 1000, previous)


def keys_of(result: RangedListing) -> list[str]:
    assert result.objects is not None
    return [o.key for o in result.objects]


async def test_ranges_list_what_is_there_and_tell_an_unchanged_bucket(s3: S3) -> None:
    names = [f"d{i % 3}/k{i:02d}.yaml" for i in range(12)]
    for name in names:
        await s3.put(name, name)
    async with ours(s3) as client:
        first = await listing(client, s3.bucket, None)  # page by page: nothing learnt yet
        assert keys_of(first) == sorted(names)
        assert first.digests is None
        second = await listing(client, s3.bucket, first)  # by ranges, parsed, digests kept for them
        assert keys_of(second) == sorted(names)
        assert second.ranges == first.ranges
        assert second.digests is not None
        third = await listing(client, s3.bucket, second)
        assert third.unchanged  # every page byte for byte the last one: nothing parsed

        # A key inside a range, a range's bound deleted, an object rewritten: the listing is today's, whole.
        await s3.put("d0/k03a.yaml", "new")
        await s3.delete(sorted(names)[5])
        await s3.put(sorted(names)[1], "other content")
        changed = await listing(client, s3.bucket, third)
        assert not changed.unchanged
        etags = await s3.etags()
        assert keys_of(changed) == sorted(etags)
        assert changed.objects is not None
        assert {o.key: o.etag for o in changed.objects} == etags
        assert changed.digests is None  # a range read two pages: its first page alone proves nothing next time
        relearnt = await listing(client, s3.bucket, changed)
        assert keys_of(relearnt) == sorted(etags)
        assert (await listing(client, s3.bucket, relearnt)).unchanged


async def test_a_missing_bucket_is_said_so(s3: S3) -> None:
    async with ours(s3, "no-such-bucket-r4nges") as client:
        with pytest.raises(BucketOperationFailed, match="bucket 'no-such-bucket-r4nges' not found"):
            await listing(client, "no-such-bucket-r4nges", None)


async def test_the_reconciler_reuses_a_revision_only_for_the_same_listing_rules_and_artifact(
    kube: KubeClient, namespace: str, s3: S3, tmp_path: Path
) -> None:
    for i in range(8):
        await s3.put(f"app/k{i}.yaml", f"v{i}")
    await s3.put("notes.txt", "not deployed")
    await kube.create(secret("s3-creds", namespace, {"accesskey": s3.access_key, "secretkey": s3.secret_key}))
    spec = {"interval": "10m", "endpoint": s3.endpoint, "insecure": True, "bucketName": s3.bucket}
    obj = bucket("app", namespace, **spec, secretRef={"name": "s3-creds"})
    obj["metadata"]["generation"] = 1
    storage = Storage(tmp_path, "127.0.0.1:0")
    reconciler = BucketReconciler(kube, storage, Limits(100, 1 << 20, 1 << 16))

    async def revision() -> str:
        await reconciler.reconcile(obj)
        return str(obj["status"]["artifact"]["revision"])

    expected = digest(await s3.etags())
    # Built, then listed by ranges, then known: the revision each time is Flux's over today's listing.
    assert [await revision() for _ in range(4)] == [expected] * 4
    assert reconciler._known[(namespace, "app")].listing.digests is not None

    obj["spec"]["ignore"] = "*.txt"  # same listing, other rules: indexed again
    etags = await s3.etags()
    etags.pop("notes.txt")
    assert await revision() == digest(etags)
    assert await revision() == digest(etags)

    await s3.put("app/k0.yaml", "changed")  # another etag: a new revision
    etags = await s3.etags()
    etags.pop("notes.txt")
    assert await revision() == digest(etags)

    # The known listing, its artifact gone from storage: built again from a whole listing.
    assert await revision() == digest(etags)
    path = storage.root / obj["status"]["artifact"]["path"]
    path.unlink()
    assert await revision() == digest(etags)
    assert path.is_file()
