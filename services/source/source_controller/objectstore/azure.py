"""The ``azure`` provider: Azure Blob Storage (and Azurite) through azure-storage-blob's asyncio API.

azure-storage-blob is Microsoft's maintained client (shared-key and SAS signing, paging, retries,
proxies and TLS options over aiohttp), and azure-identity's asyncio credentials do the service
principal's token flow against Entra ID (``authorityHost`` honoured); neither is worth writing again.
As Flux: the container is ``spec.bucketName``; an account key's account is the endpoint's first DNS
label (or, for an emulator's path-style URL, its first path segment); no Secret means anonymous access
to a public container. Managed identities and workload identity are refused by :mod:`.auth`.

Etags and Flux's revision. Azure (and Azurite: checked against the stack's) lists a blob's etag bare,
``0x8DB…``, and sends it quoted in a download's ``ETag`` header, ``"0x8DB…"``. Flux (pkg/azure) lists it as
``%x`` (hex of the bare string) but its download returns the header's quoted string, and Flux's fetch puts
every downloaded etag that differs from the listed one into the index before the revision is taken - for
Azure, all of them. So the revision Flux stores for an Azure Bucket is the digest over the *quoted* etags,
and its listing never matches it (Flux downloads the whole container every interval). Our index holds the
quoted form from the start: the same revision as Flux's artifact, and a listing that does match it, so an
unchanged container is one listing here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiofiles
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.identity.aio import CertificateCredential, ClientSecretCredential
from azure.storage.blob.aio import ContainerClient

from source_controller.objectstore.auth import AzureCredential, AzureSAS, AzureServicePrincipal, AzureSharedKey
from source_controller.objectstore.errors import BucketOperationFailed, ClientError, ObjectNotFound
from source_controller.objectstore.index import Listed
from source_controller.objectstore.s3 import redact


def index_etag(etag: str | None) -> str:
    """The etag as Flux's artifact revision holds it: quoted, as a download's ETag header carries it."""
    bare = (etag or "").strip('"')
    return f'"{bare}"' if bare else ""


def _detail(e: Exception) -> str:
    if isinstance(e, HttpResponseError):
        first = (e.message or str(e)).splitlines()[0] if (e.message or str(e)) else type(e).__name__
        return f"{getattr(e, 'error_code', None) or e.status_code}: {first}"
    return str(e).splitlines()[0] if str(e) else type(e).__name__


class AzureContainer:
    """A container on a Blob endpoint; use :func:`open_azure`."""

    def __init__(self, client: ContainerClient, container: str, secrets: tuple[str | None, ...]) -> None:
        self._client = client
        self._container = container
        self._secrets = secrets

    def _failed(self, e: Exception, what: str) -> BucketOperationFailed:
        return BucketOperationFailed(f"{what}: {redact(_detail(e), *self._secrets)}")

    async def exists(self) -> bool:
        try:
            async for _ in self._client.list_blobs(results_per_page=1).by_page():
                break
        except ResourceNotFoundError as e:
            if getattr(e, "error_code", None) == "ContainerNotFound":
                return False
            raise self._failed(e, f"failed to confirm existence of '{self._container}' bucket") from None
        except HttpResponseError as e:
            if getattr(e, "error_code", None) == "AuthenticationFailed":
                # A container-level SAS answers so for a container that does not exist (Flux's wording).
                raise self._failed(
                    e,
                    "the specified bucket name may be incorrect, nonexistent, or the caller might lack "
                    "sufficient permissions to access it",
                ) from None
            raise self._failed(e, f"failed to confirm existence of '{self._container}' bucket") from None
        except (AzureError, OSError) as e:
            raise self._failed(e, f"failed to confirm existence of '{self._container}' bucket") from None
        return True

    async def list(self, prefix: str) -> AsyncIterator[Listed]:
        try:
            async for blob in self._client.list_blobs(name_starts_with=prefix or None):
                yield Listed(blob.name, index_etag(blob.etag), int(blob.size or 0))
        except (AzureError, OSError) as e:
            raise self._failed(e, f"listing objects from bucket '{self._container}' failed") from None

    async def etag(self, key: str) -> str | None:
        try:
            props = await self._client.get_blob_client(key).get_blob_properties()
        except ResourceNotFoundError:
            return None
        except (AzureError, OSError) as e:
            raise self._failed(e, f"failed to get Etag for '{key}' object") from None
        return index_etag(props.etag)

    async def download(self, key: str, dest: Path, max_size: int) -> str:
        try:
            stream = await self._client.download_blob(key, max_concurrency=1)
            if stream.size > max_size:
                raise BucketOperationFailed(
                    f"object '{key}' is {stream.size} bytes, larger than the {max_size} allowed "
                    "(--max-bucket-object-size)"
                )
            written = 0
            async with aiofiles.open(dest, "wb", opener=_private_opener) as out:
                async for chunk in stream.chunks():
                    written += len(chunk)
                    if written > max_size:
                        raise BucketOperationFailed(
                            f"object '{key}' is more than the {max_size} bytes allowed (--max-bucket-object-size)"
                        )
                    await out.write(chunk)
            return index_etag(stream.properties.etag)
        except ResourceNotFoundError:
            raise ObjectNotFound(f"object '{key}' not found") from None
        except (AzureError, OSError) as e:
            raise self._failed(e, f"failed to get '{key}' object") from None


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)


@contextlib.asynccontextmanager
async def open_azure(
    *,
    endpoint: str,
    container: str,
    credential: AzureCredential | None,
    proxy: str | None,
    timeout: float,
) -> AsyncIterator[AzureContainer]:
    """A client for one container, closed (with its token credential) on exit."""
    secrets: tuple[str | None, ...] = ()
    options: dict[str, Any] = {
        "retry_total": 1,
        "connection_timeout": min(timeout, 30.0),
        "read_timeout": timeout,
    }
    if proxy:
        options["proxies"] = {"http": proxy, "https": proxy}
    async with contextlib.AsyncExitStack() as stack:
        try:
            cred: Any = None
            url = endpoint.rstrip("/")
            if isinstance(credential, AzureSharedKey):
                cred = {"account_name": credential.account_name, "account_key": credential.account_key}
                secrets = (credential.account_key,)
            elif isinstance(credential, AzureSAS):
                cred = credential.token
                secrets = (credential.token,)
            elif isinstance(credential, AzureServicePrincipal):
                cred = await stack.enter_async_context(_service_principal(credential, proxy))
                secrets = (credential.client_secret,)
            client = await stack.enter_async_context(
                ContainerClient(account_url=url, container_name=container, credential=cred, **options)
            )
        except (AzureError, ValueError) as e:
            raise ClientError(f"failed to create the Azure Blob client: {redact(str(e), *secrets)}") from None
        yield AzureContainer(client, container, secrets)


@contextlib.asynccontextmanager
async def _service_principal(sp: AzureServicePrincipal, proxy: str | None) -> AsyncIterator[Any]:
    options: dict[str, Any] = {}
    if sp.authority_host:
        options["authority"] = sp.authority_host
    if proxy:
        options["proxies"] = {"http": proxy, "https": proxy}
    if sp.client_secret is not None:
        async with ClientSecretCredential(sp.tenant_id, sp.client_id, sp.client_secret, **options) as cred:
            yield cred
        return
    assert sp.certificate is not None
    async with CertificateCredential(
        sp.tenant_id,
        sp.client_id,
        certificate_data=sp.certificate,
        password=sp.certificate_password,
        send_certificate_chain=sp.send_certificate_chain,
        **options,
    ) as cred:
        yield cred


__all__ = ["AzureContainer", "index_etag", "open_azure"]
