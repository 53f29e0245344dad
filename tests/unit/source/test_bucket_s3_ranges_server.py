"""The S3 client's ranged listing against loopback servers that do not keep S3's listing order: one that ignores
StartAfter and one that does not sort. Either is found out, listed page by page, and stays so."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from xml.sax.saxutils import escape

import pytest
from aiohttp import web

from gitops_mesh_dev.http import serve
from source_controller.objectstore.auth import S3Keys
from source_controller.objectstore.errors import BucketOperationFailed
from source_controller.objectstore.s3 import S3Bucket, open_s3

BUCKET = "b"
KEYS = [f"k{i:02d}" for i in range(10)]


def page_xml(keys: list[str], next_token: str | None) -> bytes:
    contents = "".join(
        f"<Contents><Key>{escape(k)}</Key><ETag>&quot;e{k}&quot;</ETag><Size>1</Size></Contents>" for k in keys
    )
    more = f"<IsTruncated>true</IsTruncated><NextContinuationToken>{next_token}</NextContinuationToken>"
    tail = more if next_token else "<IsTruncated>false</IsTruncated>"
    return (
        f'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{contents}{tail}</ListBucketResult>'
    ).encode()


def app(order: list[str], honour_start_after: bool, refuse_start_after: bool = False) -> web.Application:
    """ListObjectsV2 over ``order`` (as the server keeps it), tokens as offsets."""

    async def listing(request: web.Request) -> web.Response:
        q = request.query
        if refuse_start_after and "start-after" in q:
            error = b"<Error><Code>InvalidArgument</Code><Message>StartAfter is not supported</Message></Error>"
            return web.Response(status=400, body=error, content_type="application/xml")
        size = int(q.get("max-keys", "1000"))
        start = int(q["continuation-token"]) if "continuation-token" in q else 0
        if honour_start_after and "start-after" in q and "continuation-token" not in q:
            start = sum(1 for k in order if k <= q["start-after"])
        keys = order[start : start + size]
        more = start + size < len(order)
        return web.Response(body=page_xml(keys, str(start + size) if more else None), content_type="application/xml")

    a = web.Application()
    a.router.add_get(f"/{BUCKET}", listing)  # HEAD (the bucket exists) too
    return a


@contextlib.asynccontextmanager
async def client_of(served: web.Application) -> AsyncIterator[S3Bucket]:
    runner, port = await serve(served)
    try:
        async with open_s3(
            endpoint=f"127.0.0.1:{port}",
            bucket=BUCKET,
            insecure=True,
            region=None,
            keys=S3Keys("AKIDEXAMPLE", "not-a-real-secret"),
            tls=None,
            proxy=None,
            aws=False,
            timeout=10,
            max_connections=2,
        ) as client:
            client.page_keys = 3
            yield client
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("order", "honour"),
    [(KEYS, False), (KEYS[5:] + KEYS[:5], True)],
    ids=["ignores-start-after", "unsorted"],
)
async def test_a_server_without_s3s_order_is_listed_page_by_page(order: list[str], honour: bool) -> None:
    await listed_page_by_page(app(order, honour), order)


async def test_a_server_that_refuses_start_after_is_listed_page_by_page() -> None:
    # S3 Express directory buckets answer StartAfter with an error: not the Bucket's failure, only no ranges.
    await listed_page_by_page(app(KEYS, False, refuse_start_after=True), KEYS)


async def listed_page_by_page(served: web.Application, order: list[str]) -> None:
    async with client_of(served) as client:
        first = await client.list_ranges("", None, 100)
        assert first.ranges is not None  # learnt: nothing is known yet of the server
        second = await client.list_ranges("", first, 100)
        assert second.objects is not None
        assert [o.key for o in second.objects] == order  # the whole listing, as the server gives it
        assert second.ranges is None
        third = await client.list_ranges("", second, 100)
        assert third.objects is not None
        assert [o.key for o in third.objects] == order
        assert third.ranges is None  # stays page by page


async def test_a_sorted_server_is_listed_by_ranges_and_an_unchanged_one_known() -> None:
    async with client_of(app(KEYS, True)) as client:
        first = await client.list_ranges("", None, 100)
        second = await client.list_ranges("", first, 100)
        assert second.objects is not None
        assert [o.key for o in second.objects] == KEYS
        assert second.digests is not None
        assert (await client.list_ranges("", second, 100)).unchanged


async def test_the_object_cap_holds_for_ranges_too() -> None:
    async with client_of(app(KEYS, True)) as client:
        first = await client.list_ranges("", None, 100)
        with pytest.raises(BucketOperationFailed, match="lists more than 5 objects"):
            await client.list_ranges("", first, 5)
