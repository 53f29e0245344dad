"""The ``generic`` and ``aws`` providers: any S3 API through aiobotocore.

aiobotocore is botocore (AWS's own request signing, paginators, error model, proxies and TLS options)
on aiohttp, so listing and downloads are asyncio-native and share one connection pool per Bucket
reconcile; hand-writing SigV4 and S3's XML would be the maintained library again. The session is
sealed from the controller's own environment: no shared config or credentials file, no
``AWS_ENDPOINT_URL``, and either the Secret's keys or unsigned requests - a tenant's Bucket never runs
with the controller's credentials. TLS material from certSecretRef is handed to botocore as 0600 files in
a private directory that lives as long as the client.

As Flux (minio-go): the endpoint is ``host[:port]`` with ``https`` unless ``spec.insecure``; etags are
listed without their quotes; ``spec.region`` defaults to us-east-1. Path-style addressing for every
endpoint but AWS's own, where virtual-hosted style is what S3 expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiofiles
import botocore
import botocore.exceptions
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from source_controller.objectstore.auth import S3Keys, TLSMaterial
from source_controller.objectstore.errors import BucketOperationFailed, ClientError, ObjectNotFound
from source_controller.objectstore.index import Listed

DEFAULT_REGION = "us-east-1"
#: Objects up to this size are read whole and written in one step; larger ones are streamed.
_WHOLE = 1 << 20
_CHUNK = 1 << 20
_USERINFO = re.compile(r"://[^/@\s]*@")


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


class S3Bucket:
    """A bucket on an S3 endpoint; use :func:`open_s3`."""

    def __init__(self, client: Any, bucket: str, secrets: tuple[str | None, ...]) -> None:
        self._client = client
        self._bucket = bucket
        self._secrets = secrets

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
        paginator = self._client.get_paginator("list_objects_v2")
        args: dict[str, Any] = {"Bucket": self._bucket}
        if prefix:
            args["Prefix"] = prefix
        try:
            async for page in paginator.paginate(**args):
                for item in page.get("Contents") or ():
                    yield Listed(item["Key"], index_etag(item.get("ETag")), int(item.get("Size") or 0))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, OSError) as e:
            raise self._failed(e, f"listing objects from bucket '{self._bucket}' failed") from None

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
                    data = await body.read(max_size + 1)
                    if len(data) > max_size:
                        raise _too_large(key, len(data), max_size)
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
) -> AsyncIterator[S3Bucket]:
    """A client for one bucket, closed on exit."""
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
        session = AioSession()
        # Never the controller's own ~/.aws files: a tenant's Bucket gets its Secret's keys or nothing.
        session.set_config_variable("config_file", os.devnull)
        session.set_config_variable("credentials_file", os.devnull)
        secrets = (keys.secret_key if keys else None, keys.access_key if keys else None)
        async with contextlib.AsyncExitStack() as stack:
            try:
                client = await stack.enter_async_context(
                    session.create_client(
                        "s3",
                        endpoint_url=url,
                        region_name=region or DEFAULT_REGION,
                        aws_access_key_id=keys.access_key if keys else None,
                        aws_secret_access_key=keys.secret_key if keys else None,
                        verify=verify,
                        config=config,
                    )
                )
            except (botocore.exceptions.BotoCoreError, ValueError) as e:
                raise ClientError(redact(str(e), *secrets)) from None
            yield S3Bucket(client, bucket, secrets)
