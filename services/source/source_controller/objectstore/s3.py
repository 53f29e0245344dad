"""The ``generic`` and ``aws`` providers: any S3 API through aiobotocore.

aiobotocore is botocore (AWS's own request signing, paginators, error model, proxies and TLS options)
on aiohttp, so listing and downloads are asyncio-native and share one connection pool per Bucket
reconcile; hand-writing SigV4 and S3's XML would be the maintained library again. The session is
sealed from the controller's own environment: no shared config or credentials file, no
``AWS_ENDPOINT_URL``, and either the Secret's keys, spec.sts's temporary ones (:mod:`.sts`) or unsigned requests -
a tenant's Bucket never runs with the controller's credentials. TLS material from certSecretRef is handed to botocore as 0600 files in
a private directory that lives as long as the client.

Listing is the exception: each ListObjectsV2 page is a URL botocore presigns (its public API, the same
signature) fetched with aiohttp under the same proxy and TLS material, and read by :mod:`.s3_listing`,
because botocore's response parser costs ten times the server's time and a no-op reconcile is a listing.
Once a listing has taught a bucket's key ranges, its pages are asked for at once (:mod:`.s3_ranges`:
StartAfter, S3's UTF-8 key order, checked on every page), and pages equal byte for byte to the last
listing's are not parsed at all (:meth:`S3Bucket.list_ranges`).
One sealed botocore session serves every client of a reconciler (:func:`sealed_session`): it loads the S3
model once, so a client costs milliseconds instead of ~0.15 s each reconcile.

As Flux (minio-go): the endpoint is ``host[:port]`` with ``https`` unless ``spec.insecure``; etags are
listed without their quotes; ``spec.region`` defaults to us-east-1. Path-style addressing for every
endpoint but AWS's own, where virtual-hosted style is what S3 expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiofiles
import aiohttp
import botocore
import botocore.exceptions
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from yarl import URL

from gitops_mesh.observability.logging import get_logger
from source_controller.objectstore.auth import S3Keys, TLSMaterial
from source_controller.objectstore.errors import BucketOperationFailed, ClientError, ObjectNotFound
from source_controller.objectstore.index import Listed
from source_controller.objectstore.s3_listing import MAX_PAGE_BYTES, MalformedListing, Page, error_detail, parse_page
from source_controller.objectstore.s3_ranges import (
    PAGE_KEYS,
    KeyRanges,
    RangedListing,
    RangeRead,
    RangesUnusable,
    assemble,
    learn,
    next_listing,
)

DEFAULT_REGION = "us-east-1"
#: Objects up to this size are read whole and written in one step; larger ones are streamed.
_WHOLE = 1 << 20
_CHUNK = 1 << 20
_USERINFO = re.compile(r"://[^/@\s]*@")
#: A listing's objects (the name ``list`` is taken inside :class:`S3Bucket`).
_Objects = list[Listed]
#: Listing requests in flight per Bucket (ranges); also the listing's connection pool.
LISTING_CONNECTIONS = 8
#: First pages of a ranged listing held unparsed while they may all be unchanged; past it they are parsed.
_HELD_PAGE_BYTES = 32 << 20

log = get_logger(__name__)


def redact(message: str, *secrets: str | None) -> str:
    """``message`` without URL userinfo or any of ``secrets`` (SDK messages may quote a URL or a header)."""
    out = _USERINFO.sub("://***@", message)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "***")
    return out[:2000]


def endpoint_url(endpoint: str, insecure: bool) -> str:
    """``spec.endpoint`` (``host[:port]``, as minio-go takes it) as the URL botocore wants."""
    if "://" in endpoint or "/" in endpoint.strip("/") or not endpoint.strip():
        raise ClientError(
            f"endpoint '{endpoint}' must be a host[:port] without scheme or path (spec.insecure selects http)"
        )
    return f"{'http' if insecure else 'https'}://{endpoint.strip('/')}"


def index_etag(etag: str | None) -> str:
    """The etag as Flux's index holds it: minio-go trims the quotes S3 puts around it."""
    return (etag or "").removeprefix('"').removesuffix('"')


def sealed_session() -> AioSession:
    """A botocore session that never reads the controller's own ~/.aws files: a tenant's Bucket gets its
    Secret's keys or nothing. Share one per reconciler (clients from it reuse its loaded models)."""
    session = AioSession()
    session.set_config_variable("config_file", os.devnull)
    session.set_config_variable("credentials_file", os.devnull)
    return session


class S3Bucket:
    """A bucket on an S3 endpoint; use :func:`open_s3`."""

    #: Keys per listing page asked for, and per key range (tests make it small to cut a few keys in ranges).
    page_keys: int = PAGE_KEYS

    def __init__(
        self,
        client: Any,
        bucket: str,
        secrets: tuple[str | None, ...],
        http: aiohttp.ClientSession,
        proxy: str | None,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._secrets = secrets
        self._http = http
        self._proxy = proxy

    def _failed(self, e: Exception, what: str) -> BucketOperationFailed:
        if isinstance(e, botocore.exceptions.ClientError):
            err = e.response.get("Error") or {}
            detail = f"{err.get('Code') or 'error'}: {err.get('Message') or e}"
        else:
            detail = str(e) or type(e).__name__
        return BucketOperationFailed(f"{what}: {redact(detail, *self._secrets)}")

    async def exists(self) -> bool:
        try:
            await self._client.head_bucket(Bucket=self._bucket)
        except botocore.exceptions.ClientError as e:
            if _status(e) == 404:
                return False
            raise self._failed(e, f"failed to confirm existence of '{self._bucket}' bucket") from None
        except (botocore.exceptions.BotoCoreError, OSError) as e:
            raise self._failed(e, f"failed to confirm existence of '{self._bucket}' bucket") from None
        return True

    async def list(self, prefix: str) -> AsyncIterator[Listed]:
        token: str | None = None
        while True:
            page = await self._parse(await self._page(prefix, token=token))
            for item in page.objects:
                yield item
            if page.next_token is None:
                return
            token = page.next_token

    async def list_ranges(self, prefix: str, previous: RangedListing | None, max_listed: int) -> RangedListing:
        """The listing, by key ranges at once when the previous one taught them (:mod:`.s3_ranges`), page by
        page otherwise; ``unchanged`` (nothing parsed) when every range's page is the one read last time."""
        ranges = previous.ranges if previous is not None else None
        if ranges is None:
            objects = await self._sequential(prefix, max_listed)
            # A server found not to list by ranges stays listed page by page.
            return RangedListing(objects, learn([o.key for o in objects], self.page_keys) if previous is None else None)
        try:
            return await self._by_ranges(prefix, ranges, previous.digests if previous else None, max_listed)
        except RangesUnusable as e:
            log.info("bucket listed page by page", bucket=self._bucket, why=str(e))
            return RangedListing(await self._sequential(prefix, max_listed), None)

    async def _sequential(self, prefix: str, max_listed: int) -> _Objects:
        objects: _Objects = []
        async for item in self.list(prefix):
            objects.append(item)
            _check_count(self._bucket, prefix, len(objects), max_listed)
        return objects

    async def _by_ranges(
        self, prefix: str, ranges: KeyRanges, known: tuple[bytes, ...] | None, max_listed: int
    ) -> RangedListing:
        reads = [RangeRead(ranges.starts[i], ranges.bound(i)) for i in range(len(ranges))]
        digests: list[bytes] = [b""] * len(reads)
        # First pages held unparsed while they may all be last time's (then none is parsed), within a budget.
        held: dict[int, bytes] = {}
        budget = [_HELD_PAGE_BYTES]
        listed = [0]

        async def take(i: int, body: bytes) -> None:
            page = await self._parse(body)
            reads[i].take(page.objects, page.next_token is not None)
            listed[0] += len(page.objects)
            _check_count(self._bucket, prefix, listed[0], max_listed)
            tokens[i] = page.next_token

        tokens: list[str | None] = [None] * len(reads)

        async def first(i: int) -> None:
            body = await self._page(prefix, start_after=ranges.starts[i], max_keys=self.page_keys)
            digests[i] = hashlib.sha256(body).digest()
            if known is not None and i < len(known) and digests[i] == known[i] and len(body) <= budget[0]:
                budget[0] -= len(body)
                held[i] = body
            else:
                await take(i, body)

        await _each(range(len(reads)), first)
        if known is not None and tuple(digests) == known:
            return RangedListing(None, ranges, known)
        for i, body in held.items():
            await take(i, body)
        held.clear()

        async def rest(i: int) -> None:
            # A range that grew is read on until it passes its bound (its keys past it are the next range's).
            while not reads[i].done:
                await take(i, await self._page(prefix, token=tokens[i]))

        await _each([i for i, r in enumerate(reads) if not r.done], rest)
        return next_listing(assemble(reads), ranges, reads, digests, self.page_keys)

    async def _page(
        self, prefix: str, *, token: str | None = None, start_after: str | None = None, max_keys: int | None = None
    ) -> bytes:
        """One ListObjectsV2 answer's body (200, within MAX_PAGE_BYTES)."""
        what = f"listing objects from bucket '{self._bucket}' failed"
        # Keys url-encoded, as botocore asks, so that any key survives XML.
        params: dict[str, Any] = {"Bucket": self._bucket, "EncodingType": "url"}
        if prefix:
            params["Prefix"] = prefix
        if token:
            params["ContinuationToken"] = token
        if start_after:
            params["StartAfter"] = start_after
        if max_keys:
            params["MaxKeys"] = max_keys
        try:
            url = await self._client.generate_presigned_url("list_objects_v2", Params=params, ExpiresIn=900)
            async with self._http.get(URL(url, encoded=True), proxy=self._proxy) as resp:
                body = await _read_capped(resp, MAX_PAGE_BYTES)
                status = resp.status
        except (botocore.exceptions.BotoCoreError, aiohttp.ClientError, OSError, TimeoutError) as e:
            raise self._failed(e, what) from None
        if len(body) > MAX_PAGE_BYTES:
            raise BucketOperationFailed(f"{what}: a page of the listing is larger than {MAX_PAGE_BYTES} bytes")
        if status != 200:
            detail = redact(error_detail(body[:65536]) or f"HTTP {status}", *self._secrets)
            if start_after and status in (400, 501):
                # A server that refuses StartAfter (S3 Express directory buckets) is listed page by page.
                raise RangesUnusable(f"StartAfter refused: {detail}")
            raise BucketOperationFailed(f"{what}: {detail}")
        return body

    async def _parse(self, body: bytes) -> Page:
        """A page read, etags in index form: on the loop for a usual page (~3-8 ms for 1,000 keys), in a thread
        for a large one."""
        try:
            page = await asyncio.to_thread(parse_page, body) if len(body) > 1 << 20 else parse_page(body)
        except MalformedListing as e:
            raise BucketOperationFailed(f"listing objects from bucket '{self._bucket}' failed: {e}") from None
        return Page([Listed(o.key, index_etag(o.etag), o.size) for o in page.objects], page.next_token)

    async def etag(self, key: str) -> str | None:
        try:
            head = await self._client.head_object(Bucket=self._bucket, Key=key)
        except botocore.exceptions.ClientError as e:
            if _status(e) == 404:
                return None
            raise self._failed(e, f"failed to get Etag for '{key}' object") from None
        except (botocore.exceptions.BotoCoreError, OSError) as e:
            raise self._failed(e, f"failed to get Etag for '{key}' object") from None
        return index_etag(head.get("ETag"))

    async def download(self, key: str, dest: Path, max_size: int) -> str:
        try:
            resp = await self._client.get_object(Bucket=self._bucket, Key=key)
            etag = index_etag(resp.get("ETag"))
            length = int(resp.get("ContentLength") or 0)
            async with resp["Body"] as body:
                if length > max_size:
                    raise _too_large(key, length, max_size)
                if length <= _WHOLE:
                    data = await _read_small(body, key, max_size)
                    await asyncio.to_thread(_write_whole, dest, data)
                else:
                    await _stream(body, dest, key, max_size)
        except botocore.exceptions.ClientError as e:
            if _status(e) == 404:
                raise ObjectNotFound(f"object '{key}' not found") from None
            raise self._failed(e, f"failed to get '{key}' object") from None
        except (botocore.exceptions.BotoCoreError, OSError, asyncio.IncompleteReadError) as e:
            raise self._failed(e, f"failed to get '{key}' object") from None
        return etag


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    """The body, or its first ``cap + 1`` bytes when it is longer (the caller refuses it then)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(1 << 16):
        parts.append(chunk)
        size += len(chunk)
        if size > cap:
            break
    return b"".join(parts)


def _check_count(bucket: str, prefix: str, listed: int, max_listed: int) -> None:
    if listed > max_listed:
        raise BucketOperationFailed(
            f"bucket '{bucket}' lists more than {max_listed} objects under prefix '{prefix}' (--max-bucket-objects)"
        )


async def _each(items: Iterable[int], work: Callable[[int], Awaitable[None]]) -> None:
    """``work`` on every item, LISTING_CONNECTIONS at a time; the first failure cancels the rest and is raised."""
    todo = iter(items)

    async def worker() -> None:
        for item in todo:
            await work(item)

    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(LISTING_CONNECTIONS):
                tg.create_task(worker())
    except* (BucketOperationFailed, RangesUnusable) as group:
        raise group.exceptions[0] from None


def _status(e: botocore.exceptions.ClientError) -> int:
    meta: dict[str, Any] = dict(e.response.get("ResponseMetadata") or {})
    return int(meta.get("HTTPStatusCode") or 0)


def _too_large(key: str, size: int, max_size: int) -> BucketOperationFailed:
    return BucketOperationFailed(
        f"object '{key}' is {size} bytes, larger than the {max_size} allowed (--max-bucket-object-size)"
    )


def _write_whole(dest: Path, data: bytes) -> None:
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


async def _read_small(body: Any, key: str, max_size: int) -> bytes:
    """The whole body in memory. ``read(n)`` gives *at most* n bytes (what aiohttp has buffered), so it is read
    until the empty chunk that ends it - which is also when aiobotocore checks the Content-Length."""
    parts: list[bytes] = []
    size = 0
    while chunk := await body.read(_CHUNK):
        size += len(chunk)
        if size > max_size:
            raise _too_large(key, size, max_size)
        parts.append(chunk)
    return b"".join(parts)


async def _stream(body: Any, dest: Path, key: str, max_size: int) -> None:
    written = 0
    async with aiofiles.open(dest, "wb", opener=_private_opener) as out:
        while chunk := await body.read(_CHUNK):
            written += len(chunk)
            if written > max_size:
                raise _too_large(key, written, max_size)
            await out.write(chunk)


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)


def _write_private(directory: Path, name: str, data: bytes) -> str:
    path = directory / name
    _write_whole(path, data)
    return str(path)


@contextlib.asynccontextmanager
async def open_s3(
    *,
    endpoint: str,
    bucket: str,
    insecure: bool,
    region: str | None,
    keys: S3Keys | None,
    tls: TLSMaterial | None,
    proxy: str | None,
    aws: bool,
    timeout: float,
    max_connections: int,
    session: AioSession | None = None,
) -> AsyncIterator[S3Bucket]:
    """A client for one bucket, closed on exit (from ``session``, else a new :func:`sealed_session`)."""
    url = endpoint_url(endpoint, insecure)
    with tempfile.TemporaryDirectory(prefix="bucket-tls-") as tmp:
        verify: bool | str = True
        client_cert: tuple[str, str] | None = None
        if tls is not None:
            if tls.ca:
                verify = await asyncio.to_thread(_write_private, Path(tmp), "ca.crt", tls.ca)
            if tls.cert and tls.key:
                cert = await asyncio.to_thread(_write_private, Path(tmp), "tls.crt", tls.cert)
                key = await asyncio.to_thread(_write_private, Path(tmp), "tls.key", tls.key)
                client_cert = (cert, key)
        host = endpoint.split(":")[0]
        config = AioConfig(
            signature_version=botocore.UNSIGNED if keys is None else "s3v4",
            s3={"addressing_style": "virtual" if aws and host.endswith("amazonaws.com") else "path"},
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=min(timeout, 30.0),
            read_timeout=timeout,
            max_pool_connections=max_connections,
            proxies={"http": proxy, "https": proxy} if proxy else None,
            client_cert=client_cert,
            # S3-compatible servers differ in the newer checksum headers; Flux's client sends none.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            ignore_configured_endpoint_urls=True,
        )
        session = session or sealed_session()
        secrets = (
            keys.secret_key if keys else None,
            keys.access_key if keys else None,
            keys.session_token if keys else None,
        )
        async with contextlib.AsyncExitStack() as stack:
            try:
                client = await stack.enter_async_context(
                    session.create_client(
                        "s3",
                        endpoint_url=url,
                        region_name=region or DEFAULT_REGION,
                        aws_access_key_id=keys.access_key if keys else None,
                        aws_secret_access_key=keys.secret_key if keys else None,
                        aws_session_token=keys.session_token if keys else None,
                        verify=verify,
                        config=config,
                    )
                )
                http = await stack.enter_async_context(
                    aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(
                            limit=LISTING_CONNECTIONS, ssl=_ssl_context(verify, client_cert)
                        ),
                        timeout=aiohttp.ClientTimeout(sock_connect=min(timeout, 30.0), sock_read=timeout),
                        # As botocore: the proxy the Secret names, else the process environment's.
                        trust_env=proxy is None,
                    )
                )
            except (botocore.exceptions.BotoCoreError, ValueError, ssl.SSLError, OSError) as e:
                raise ClientError(redact(str(e), *secrets)) from None
            yield S3Bucket(client, bucket, secrets, http, proxy)


def _ssl_context(verify: bool | str, client_cert: tuple[str, str] | None) -> ssl.SSLContext | bool:
    """The listing's TLS: what botocore is given (certSecretRef's CA and client certificate); aiohttp's own
    default context (system CAs, built once) without either."""
    if not isinstance(verify, str) and client_cert is None:
        return True
    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    if client_cert is not None:
        context.load_cert_chain(*client_cert)
    return context
