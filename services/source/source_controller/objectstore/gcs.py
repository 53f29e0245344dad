"""The ``gcp`` provider: Google Cloud Storage (and fake-gcs-server) through gcloud-aio-storage's JSON API client.

gcloud-aio-storage is the maintained asyncio client of GCS's JSON API (object listing with page tokens, object
metadata, streamed media downloads) on aiohttp, and gcloud-aio-auth does the service account's token flow (an
RS256 JWT exchanged at the key's ``token_uri``); Google's own google-cloud-storage is blocking. Both run on one
aiohttp session per reconcile that we build: the proxySecretRef's proxy (the token request goes through it too, as
in Flux), a bounded pool, no proxy or credentials from the controller's environment, and the library never looks
for Application Default Credentials, a metadata server or ``STORAGE_EMULATOR_HOST``: a tenant's Bucket uses its
Secret's key and nothing of the controller's (no secretRef is refused by :mod:`..bucket_plan`). One token is
fetched per reconcile, on first use, as Flux's client (made each reconcile) does - without the library's
retries, which the reconcile's backoff already is.

As Flux: the index holds each object's JSON API ``etag`` as listed, and a download returns the etag of the
metadata it read first; the media request must then serve that generation (Flux sends ifGenerationMatch; the
library's stream takes no query, so the ``X-Goog-Generation`` of the answer is compared instead), else the object
changed under the fetch and the fetch fails, to be retried. Unlike Flux, whose GCS client ignores
``spec.endpoint``, the endpoint is honoured: Flux's documented ``storage.googleapis.com`` is Google's API, and
another host (a Private Service Connect endpoint, an emulator) is reached instead of being silently skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiofiles
import aiohttp
import jwt
from gcloud.aio.auth import Token
from gcloud.aio.auth.token import Type
from gcloud.aio.storage import Storage

from source_controller.objectstore.errors import (
    AuthenticationFailed,
    BucketOperationFailed,
    ClientError,
    ObjectNotFound,
)
from source_controller.objectstore.gcs_auth import ServiceAccount, api_root, service_account
from source_controller.objectstore.index import Listed
from source_controller.objectstore.s3 import redact

READ_ONLY_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"
#: Objects per listing page (the API's maximum).
PAGE_SIZE = 1000
_LIST_FIELDS = "items(name,etag,size),nextPageToken"
_CHUNK = 1 << 20


class TokenFailed(Exception):
    """The token endpoint refused the key or did not answer; the message is safe to show."""


class ServiceAccountToken(Token):
    """The key's access token, fetched once (on first use) with the library's flow, never retried by it."""

    def __init__(self, account: ServiceAccount, session: aiohttp.ClientSession, timeout: float) -> None:
        # The library types its session as requests' (its gcloud-rest twin shares the annotations); the aio build
        # takes aiohttp's.
        super().__init__(
            service_file=io.StringIO(account.key_file),
            session=session,  # type: ignore[arg-type]
            scopes=[READ_ONLY_SCOPE],
        )
        # The library falls back to the metadata server when it cannot read a file: never for a tenant.
        if self.token_type is not Type.SERVICE_ACCOUNT:
            raise ValueError("the service account key file was not read as one")
        self._account = account
        self._timeout = timeout
        self._value: str | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> str | None:
        async with self._lock:
            if self._value is None:
                self._value = await self._fetch()
        return self._value

    async def _fetch(self) -> str:
        where = f"fetching an access token for '{self._account.client_email}' failed"
        try:
            response = await self.refresh(timeout=math.ceil(min(self._timeout, 30.0)))
        except aiohttp.ClientResponseError as e:
            raise TokenFailed(f"{where}: HTTP {e.status}{_oauth_error(e.message)}") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise TokenFailed(f"{where}: {_plain(e)}") from None
        except (KeyError, ValueError, TypeError, jwt.PyJWTError):
            raise TokenFailed(f"{where}: the token endpoint's answer holds no access token") from None
        return response.value


def _oauth_error(message: str) -> str:
    """``: <error>: <error_description>`` of an OAuth error body (the library puts ``<reason>: <body>`` in the
    message), cut short; nothing else of the body, which came from a URL the tenant chose."""
    body = message.split(": ", 1)[1] if ": " in message else ""
    try:
        doc = json.loads(body[:65536])
    except ValueError:
        return ""
    if not isinstance(doc, dict):
        return ""
    parts = [str(doc.get(k))[:200] for k in ("error", "error_description") if isinstance(doc.get(k), str)]
    return f": {': '.join(parts)}" if parts else ""


def _api_error_detail(status: int, message: str) -> str:
    """``HTTP <status>: <message>`` of a JSON API error (Google's ``{"error": {"message"}}``), cut short."""
    body = message.split(": ", 1)[1] if ": " in message else ""
    detail = ""
    with contextlib.suppress(ValueError):
        doc = json.loads(body[:65536])
        err = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            detail = f": {err['message'][:300]}"
    return f"HTTP {status}{detail}"


def _plain(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return redact(text)


class GcsBucket:
    """A bucket on a GCS JSON API endpoint; use :func:`open_gcs`."""

    def __init__(self, storage: Storage, bucket: str, timeout: float, secrets: tuple[str, ...]) -> None:
        self._storage = storage
        self._bucket = bucket
        self._timeout = math.ceil(timeout)
        self._secrets = secrets

    def _failed(self, e: BaseException, what: str) -> BucketOperationFailed:
        detail = _api_error_detail(e.status, e.message) if isinstance(e, aiohttp.ClientResponseError) else _plain(e)
        return BucketOperationFailed(f"{what}: {redact(detail, *self._secrets)}")

    async def exists(self) -> bool:
        what = f"failed to confirm existence of '{self._bucket}' bucket"
        try:
            await self._storage.get_bucket_metadata(self._bucket, params={"fields": "name"}, timeout=self._timeout)
        except aiohttp.ClientResponseError as e:
            if e.status == 404:
                return False
            raise self._failed(e, what) from None
        except _ERRORS as e:
            raise self._failed(e, what) from None
        return True

    async def list(self, prefix: str) -> AsyncIterator[Listed]:
        what = f"listing objects from bucket '{self._bucket}' failed"
        token = ""
        while True:
            params = {"maxResults": str(PAGE_SIZE), "fields": _LIST_FIELDS}
            if prefix:
                params["prefix"] = prefix
            if token:
                params["pageToken"] = token
            try:
                page = await self._storage.list_objects(self._bucket, params=params, timeout=self._timeout)
            except _ERRORS as e:
                raise self._failed(e, what) from None
            if not isinstance(page, dict):
                raise BucketOperationFailed(f"{what}: the answer is not a JSON object")
            for item in page.get("items") or ():
                yield _listed(item, what)
            next_token = page.get("nextPageToken")
            if not next_token:
                return
            if not isinstance(next_token, str) or next_token == token:
                raise BucketOperationFailed(f"{what}: the answer's page token does not advance")
            token = next_token

    async def etag(self, key: str) -> str | None:
        try:
            meta = await self._storage.download_metadata(self._bucket, key, timeout=self._timeout)
        except aiohttp.ClientResponseError as e:
            if e.status == 404:
                return None
            raise self._failed(e, f"failed to get Etag for '{key}' object") from None
        except _ERRORS as e:
            raise self._failed(e, f"failed to get Etag for '{key}' object") from None
        return _text(meta, "etag")

    async def download(self, key: str, dest: Path, max_size: int) -> str:
        what = f"failed to get '{key}' object"
        try:
            meta = await self._storage.download_metadata(self._bucket, key, timeout=self._timeout)
            etag, generation, size = _text(meta, "etag"), _text(meta, "generation"), _size(meta)
            if size > max_size:
                raise _too_large(key, size, max_size)
            stream = await self._storage.download_stream(self._bucket, key, timeout=self._timeout)
            async with stream as response:
                served = response.headers.get("X-Goog-Generation")
                if served is not None and generation and served != generation:
                    raise BucketOperationFailed(
                        f"{what}: it changed while it was fetched (generation {served}, not {generation})"
                    )
                written = 0
                async with aiofiles.open(dest, "wb", opener=_private_opener) as out:
                    while chunk := await response.content.read(_CHUNK):
                        written += len(chunk)
                        if written > max_size:
                            raise _too_large(key, written, max_size)
                        await out.write(chunk)
        except aiohttp.ClientResponseError as e:
            if e.status == 404:
                raise ObjectNotFound(f"object '{key}' not found") from None
            raise self._failed(e, what) from None
        except _ERRORS as e:
            raise self._failed(e, what) from None
        return etag


_ERRORS = (aiohttp.ClientError, OSError, TimeoutError, TokenFailed, ValueError)


def _text(meta: Any, name: str) -> str:
    value = meta.get(name) if isinstance(meta, dict) else None
    return value if isinstance(value, str) else ""


def _size(meta: Any) -> int:
    try:
        return int(_text(meta, "size") or 0)
    except ValueError:
        return 0


def _listed(item: Any, what: str) -> Listed:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise BucketOperationFailed(f"{what}: an item of the listing has no name")
    return Listed(item["name"], _text(item, "etag"), _size(item))


def _too_large(key: str, size: int, max_size: int) -> BucketOperationFailed:
    return BucketOperationFailed(
        f"object '{key}' is {size} bytes, larger than the {max_size} allowed (--max-bucket-object-size)"
    )


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)


@contextlib.asynccontextmanager
async def open_gcs(
    *,
    api_root: str,
    bucket: str,
    account: ServiceAccount,
    proxy: str | None,
    timeout: float,
    max_connections: int,
) -> AsyncIterator[GcsBucket]:
    """A client for one bucket with the key's token, its session closed on exit."""
    try:
        http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections),
            timeout=aiohttp.ClientTimeout(sock_connect=min(timeout, 30.0), sock_read=timeout),
            proxy=proxy,
            # The proxy the Secret names, or none: never the controller's environment.
            trust_env=False,
        )
    except (ValueError, TypeError) as e:
        raise ClientError(f"failed to create the GCS client: {_plain(e)}") from None
    async with http:
        try:
            token = ServiceAccountToken(account, http, timeout)
            storage = Storage(token=token, session=http, api_root=api_root, api_is_dev=False)  # type: ignore[arg-type]
        except (ValueError, KeyError, TypeError) as e:
            raise ClientError(f"failed to create the GCS client: {_plain(e)}") from None
        yield GcsBucket(storage, bucket, timeout, (proxy or "",))


@contextlib.asynccontextmanager
async def open_gcp_bucket(
    *,
    spec: Mapping[str, Any],
    secret_name: str,
    secret: Mapping[str, bytes] | None,
    proxy: str | None,
    timeout: float,
    max_connections: int,
) -> AsyncIterator[GcsBucket]:
    """The Bucket's client from its spec and its secretRef's data (the reconciler's entry point)."""
    if secret is None:
        # bucket_plan refuses a gcp Bucket without secretRef before any I/O; this is the same rule at the edge.
        raise AuthenticationFailed("provider 'gcp' needs spec.secretRef with a 'serviceaccount' key file")
    insecure = bool(spec.get("insecure"))
    account = service_account(secret_name, secret, insecure=insecure)
    async with open_gcs(
        api_root=api_root(str(spec.get("endpoint") or ""), insecure),
        bucket=str(spec["bucketName"]),
        account=account,
        proxy=proxy,
        timeout=timeout,
        max_connections=max_connections,
    ) as bucket:
        yield bucket


__all__ = ["GcsBucket", "ServiceAccountToken", "TokenFailed", "open_gcp_bucket", "open_gcs"]
