"""The provider clients' pure edges: endpoint URLs as minio-go reads them, etags in Flux's index form,
SDK messages with credentials taken out."""

from __future__ import annotations

import pytest

from source_controller.objectstore import azure, s3
from source_controller.objectstore.errors import BucketOperationFailed, ClientError


def test_endpoint_is_host_port_and_insecure_selects_http() -> None:
    assert s3.endpoint_url("minio.example.com", insecure=False) == "https://minio.example.com"
    assert s3.endpoint_url("127.0.0.1:9000", insecure=True) == "http://127.0.0.1:9000"
    for bad in ("http://minio:9000", "minio:9000/bucket", " "):
        with pytest.raises(ClientError, match="host\\[:port\\]"):
            s3.endpoint_url(bad, insecure=True)


def test_s3_etag_loses_its_quotes_as_in_minio_go() -> None:
    assert s3.index_etag('"9b2cf535f27731c974343645a3985328"') == "9b2cf535f27731c974343645a3985328"
    assert s3.index_etag('"abc-3"') == "abc-3"  # multipart etags are opaque, kept as they are
    assert s3.index_etag(None) == ""


def test_azure_etag_is_the_download_headers_quoted_form() -> None:
    # Flux's revision is over the etags its downloads return (the quoted ETag header), whatever the listing
    # (bare on Azure and Azurite) said: listed and downloaded etags map to the same index value.
    assert azure.index_etag("0x8DB1234") == '"0x8DB1234"'
    assert azure.index_etag('"0x8DB1234"') == '"0x8DB1234"'
    assert azure.index_etag(None) == ""


def test_redact_drops_userinfo_and_secret_values() -> None:
    message = "could not connect via http://user:pw@proxy:3128 with key SeCrEt and token sig=abc"
    out = s3.redact(message, "SeCrEt", "sig=abc", None)
    assert "pw@" not in out
    assert "SeCrEt" not in out
    assert "sig=abc" not in out
    assert "proxy:3128" in out


class _Trickle:
    """A body as aiohttp gives it: ``read(n)`` returns at most what arrived, here 7 bytes at a time."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self, n: int) -> bytes:
        chunk, self._data = self._data[: min(n, 7)], self._data[min(n, 7) :]
        return chunk


async def test_a_small_object_is_read_to_its_end_not_one_read() -> None:
    data = bytes(range(256)) * 40
    assert await s3._read_small(_Trickle(data), "k", 1 << 20) == data
    with pytest.raises(BucketOperationFailed, match="larger than the 100 allowed"):
        await s3._read_small(_Trickle(data), "k", 100)
