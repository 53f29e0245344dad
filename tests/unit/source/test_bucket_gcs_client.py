"""The gcp provider's client against a loopback JSON API that misbehaves on purpose: pages, tokens sent,
an object that changes under its fetch, bodies past the cap, error pages cut to what may be shown."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gitops_mesh_dev.http import serve
from source_controller.objectstore.errors import BucketOperationFailed, ObjectNotFound
from source_controller.objectstore.gcs import GcsBucket, open_gcs
from source_controller.objectstore.gcs_auth import service_account


@dataclass
class Api:
    """What the endpoint answers, and what it was asked."""

    token_status: int = 200
    pages: dict[str, dict[str, object]] = field(default_factory=dict)
    list_status: int = 200
    list_body: str = ""
    generation: str = "5"
    served_generation: str = "5"
    body: bytes = b"hello"
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    async def token(self, request: web.Request) -> web.Response:
        if self.token_status != 200:
            return web.Response(status=self.token_status, text="<html>internal admin page</html>")
        return web.json_response({"access_token": "ya29.unit", "expires_in": 3600})

    async def bucket(self, request: web.Request) -> web.Response:
        self.seen.append(("bucket", request.headers.get("Authorization", ""), dict(request.query)))
        if request.match_info["bucket"] != "b1":
            return web.json_response({"error": {"code": 404, "message": "Not Found"}}, status=404)
        return web.json_response({"name": "b1"})

    async def objects(self, request: web.Request) -> web.Response:
        self.seen.append(("list", request.headers.get("Authorization", ""), dict(request.query)))
        if self.list_status != 200:
            return web.Response(status=self.list_status, text=self.list_body, content_type="application/json")
        return web.json_response(self.pages[request.query.get("pageToken", "")])

    async def object(self, request: web.Request) -> web.Response:
        if request.match_info["key"] == "gone":
            return web.json_response({"error": {"code": 404, "message": "No such object"}}, status=404)
        if request.query.get("alt") == "media":
            return web.Response(body=self.body, headers={"X-Goog-Generation": self.served_generation})
        return web.json_response({"etag": "CAU=", "generation": self.generation, "size": "5"})


@pytest.fixture
async def api() -> AsyncIterator[tuple[Api, int]]:
    state = Api()
    app = web.Application()
    app.router.add_post("/token", state.token)
    app.router.add_get("/storage/v1/b/{bucket}", state.bucket)
    app.router.add_get("/storage/v1/b/{bucket}/o", state.objects)
    app.router.add_get("/storage/v1/b/{bucket}/o/{key}", state.object)
    runner, port = await serve(app)
    try:
        yield state, port
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
def key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem.decode()


@pytest.fixture
async def client(api: tuple[Api, int], key_pem: str) -> AsyncIterator[GcsBucket]:
    _, port = api
    doc = {
        "type": "service_account",
        "client_email": "sa@p.iam.gserviceaccount.com",
        "private_key": key_pem,
        "token_uri": f"http://127.0.0.1:{port}/token",
    }
    account = service_account("sa", {"serviceaccount": json.dumps(doc).encode()}, insecure=True)
    async with open_gcs(
        api_root=f"http://127.0.0.1:{port}", bucket="b1", account=account, proxy=None, timeout=10, max_connections=4
    ) as bucket:
        yield bucket


async def test_listing_follows_pages_with_the_token(api: tuple[Api, int], client: GcsBucket) -> None:
    state, _ = api
    state.pages = {
        "": {"items": [{"name": "a.yaml", "etag": "CAE=", "size": "3"}], "nextPageToken": "t1"},
        "t1": {"items": [{"name": "b/c.yaml", "etag": "CAI=", "size": "4"}]},
    }
    assert await client.exists()
    listed = [(o.key, o.etag, o.size) async for o in client.list("a")]
    assert listed == [("a.yaml", "CAE=", 3), ("b/c.yaml", "CAI=", 4)]
    lists = [q for kind, _, q in state.seen if kind == "list"]
    assert [q.get("pageToken") for q in lists] == [None, "t1"]
    assert all(q["prefix"] == "a" and q["maxResults"] == "1000" for q in lists)
    assert {auth for _, auth, _ in state.seen} == {"Bearer ya29.unit"}


async def test_a_page_token_that_does_not_advance_ends_the_listing(api: tuple[Api, int], client: GcsBucket) -> None:
    state, _ = api
    state.pages = {"": {"items": [], "nextPageToken": "t1"}, "t1": {"items": [], "nextPageToken": "t1"}}
    with pytest.raises(BucketOperationFailed, match="page token does not advance"):
        _ = [o async for o in client.list("")]


async def test_error_bodies_show_only_the_apis_message(api: tuple[Api, int], client: GcsBucket) -> None:
    state, _ = api
    state.list_status, state.list_body = 403, json.dumps({"error": {"message": "sa has no storage.objects.list"}})
    with pytest.raises(BucketOperationFailed) as e:
        _ = [o async for o in client.list("")]
    assert str(e.value) == "listing objects from bucket 'b1' failed: HTTP 403: sa has no storage.objects.list"
    state.list_status, state.list_body = 502, "<html>secret internal page</html>"
    with pytest.raises(BucketOperationFailed) as e:
        _ = [o async for o in client.list("")]
    assert str(e.value) == "listing objects from bucket 'b1' failed: HTTP 502"


async def test_a_refused_token_names_the_status_not_the_page(api: tuple[Api, int], client: GcsBucket) -> None:
    state, _ = api
    state.token_status = 500
    with pytest.raises(BucketOperationFailed) as e:
        await client.exists()
    assert "fetching an access token for 'sa@p.iam.gserviceaccount.com' failed: HTTP 500" in str(e.value)
    assert "internal admin page" not in str(e.value)


async def test_downloads(api: tuple[Api, int], client: GcsBucket, tmp_path: Path) -> None:
    state, _ = api
    assert await client.download("k", tmp_path / "k", 100) == "CAU="
    assert (tmp_path / "k").read_bytes() == b"hello"
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert await client.etag("k") == "CAU="
    assert await client.etag("gone") is None
    with pytest.raises(ObjectNotFound):
        await client.download("gone", tmp_path / "g", 100)
    # Metadata says 5 bytes: a cap below that refuses before the media request; a body longer than it said
    # is cut at the cap.
    with pytest.raises(BucketOperationFailed, match="is 5 bytes, larger than the 4 allowed"):
        await client.download("k", tmp_path / "k2", 4)
    state.body = b"x" * 100_000
    with pytest.raises(BucketOperationFailed, match="larger than the 50000 allowed"):
        await client.download("k", tmp_path / "k3", 50_000)
    # Another generation served than the metadata named: the object changed under the fetch.
    state.body, state.served_generation = b"hello", "6"
    with pytest.raises(BucketOperationFailed, match="changed while it was fetched"):
        await client.download("k", tmp_path / "k4", 100)


async def test_a_missing_bucket_does_not_exist(api: tuple[Api, int], key_pem: str) -> None:
    _, port = api
    doc = {
        "type": "service_account",
        "client_email": "sa@p",
        "private_key": key_pem,
        "token_uri": f"http://127.0.0.1:{port}/token",
    }
    account = service_account("sa", {"serviceaccount": json.dumps(doc).encode()}, insecure=True)
    async with open_gcs(
        api_root=f"http://127.0.0.1:{port}", bucket="nope", account=account, proxy=None, timeout=10, max_connections=4
    ) as bucket:
        assert not await bucket.exists()
