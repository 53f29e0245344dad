"""Bucket with provider gcp against the stack's fake-gcs-server, filled with a GCS client (gcloud-aio-storage):
a service account key whose tokens come from a loopback token endpoint that checks the signed assertion, Flux's
etag index as the revision, a list-only no-op, changes and deletions, proxySecretRef, and bad input."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from gcloud.aio.storage import Storage

from gitops_mesh.kube import KubeClient
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.http import serve
from source_controller.bucket import cache_dir
from source_controller.objectstore.gcs import READ_ONLY_SCOPE
from source_controller.objectstore.index import digest
from tests.integration.conftest import eventually
from tests.integration.source.bucket.conftest import (
    MAX_OBJECT_SIZE,
    Controller,
    bucket,
    dumped,
    get,
    need,
    request_reconcile,
    secret,
    wait_failed,
    wait_ready,
)
from tests.integration.source.bucket.test_s3 import download, members

pytestmark = pytest.mark.stack

CLIENT_EMAIL = "flux-reader@gitops-mesh.iam.gserviceaccount.com"


@dataclass
class Gcs:
    """One bucket on the stack's fake-gcs-server, through a GCS JSON API client."""

    storage: Storage
    http: aiohttp.ClientSession
    endpoint: str  # http://host:port
    name: str

    @property
    def host(self) -> str:
        return self.endpoint.split("://", 1)[1]

    async def put(self, key: str, body: bytes | str) -> None:
        await self.storage.upload(self.name, key, body.encode() if isinstance(body, str) else body)

    async def delete(self, key: str) -> None:
        await self.storage.delete(self.name, key)

    async def etags(self, prefix: str = "") -> dict[str, str]:
        """Every object's JSON API etag, as Flux's GCS client lists it."""
        out: dict[str, str] = {}
        params = {"prefix": prefix} if prefix else {}
        page = await self.storage.list_objects(self.name, params=params)
        for item in page.get("items") or ():
            out[item["name"]] = item["etag"]
        assert not page.get("nextPageToken")
        return out


@pytest.fixture
async def gcs(stack_env: dict[str, str], unique: str) -> AsyncIterator[Gcs]:
    need(stack_env, "GCS_ENDPOINT")
    endpoint = stack_env["GCS_ENDPOINT"].rstrip("/")
    name = unique.lower().replace("_", "-")[:60]
    async with aiohttp.ClientSession() as http:
        # The emulator needs no token (api_root makes the client send none).
        storage = Storage(api_root=endpoint, session=http)  # type: ignore[arg-type]
        async with http.post(f"{endpoint}/storage/v1/b", params={"project": "gitops-mesh"}, json={"name": name}) as r:
            assert r.status == 200, await r.text()
        store = Gcs(storage, http, endpoint, name)
        try:
            yield store
        finally:
            for key in await store.etags():
                await store.delete(key)
            async with http.delete(f"{endpoint}/storage/v1/b/{name}") as r:
                assert r.status in (200, 204), await r.text()


@dataclass
class TokenEndpoint:
    """OAuth's JWT-bearer grant on loopback: an assertion signed by ``key`` gets an access token."""

    key: rsa.RSAPrivateKey
    url: str = ""
    grants: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0

    def key_file(self, key: rsa.RSAPrivateKey | None = None, **extra: str) -> str:
        pem = (key or self.key).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        doc = {
            "type": "service_account",
            "project_id": "gitops-mesh",
            "private_key_id": "k1",
            "private_key": pem.decode(),
            "client_email": CLIENT_EMAIL,
            "token_uri": self.url,
            **extra,
        }
        return json.dumps(doc)

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            claims = jwt.decode(
                str(form.get("assertion")), self.key.public_key(), algorithms=["RS256"], audience=self.url
            )
        except jwt.PyJWTError:
            self.refused += 1
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, status=400
            )
        assert form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        self.grants.append(claims)
        return web.json_response({"access_token": f"ya29.test-{len(self.grants)}", "expires_in": 3600})


@pytest.fixture
async def tokens() -> AsyncIterator[TokenEndpoint]:
    endpoint = TokenEndpoint(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    app = web.Application()
    app.router.add_post("/token", endpoint.handle)
    runner, port = await serve(app)
    endpoint.url = f"http://127.0.0.1:{port}/token"
    try:
        yield endpoint
    finally:
        await runner.cleanup()


def gcs_spec(gcs: Gcs, **fields: Any) -> dict[str, Any]:
    return {
        "interval": "10m",
        "provider": "gcp",
        "endpoint": gcs.host,
        "insecure": True,
        "bucketName": gcs.name,
        **fields,
    }


async def test_service_account_artifact_noop_and_changes(
    kube: KubeClient, namespace: str, controller: Controller, gcs: Gcs, tokens: TokenEndpoint
) -> None:
    await gcs.put("deploy/app.yaml", "kind: ConfigMap\n")
    await gcs.put("deploy/other.yaml", "kind: Secret\n")
    await gcs.put("deploy/notes.txt", "ignored by spec.ignore\n")
    await gcs.put("elsewhere/x.yaml", "outside the prefix\n")
    await kube.create(secret("gcp-sa", namespace, {"serviceaccount": tokens.key_file()}))
    spec = gcs_spec(gcs, secretRef={"name": "gcp-sa"}, prefix="deploy/", ignore="*.txt\n")
    await kube.create(bucket("app", namespace, **spec))

    listed = await gcs.etags("deploy/")
    expected = {k: v for k, v in listed.items() if not k.endswith(".txt")}
    obj = await wait_ready(kube, namespace, "app", digest(expected))
    files = members(await download(obj["status"]["artifact"]["url"]))
    assert files == {"deploy/app.yaml": b"kind: ConfigMap\n", "deploy/other.yaml": b"kind: Secret\n"}
    # The token came from the key's token_uri, for this account, read-only.
    assert tokens.grants
    assert tokens.grants[0]["iss"] == CLIENT_EMAIL
    assert tokens.grants[0]["scope"] == READ_ONLY_SCOPE
    assert tokens.grants[0]["exp"] > time.time()

    async def announced(n: int) -> bool:
        return len(controller.events_of("artifact-ready", "app")) == n

    await eventually(lambda: announced(1))
    # An unchanged bucket is a listing: same artifact, nothing fetched again, nothing announced.
    cache = cache_dir(controller.storage, namespace, "app")
    inodes = {p.name: p.stat().st_ino for p in cache.iterdir()}
    again = await request_reconcile(kube, namespace, "app", "noop")
    assert again["status"]["artifact"] == obj["status"]["artifact"]
    assert {p.name: p.stat().st_ino for p in cache.iterdir()} == inodes
    assert await announced(1)

    # A changed object and a deleted one are a new revision with only what is left, at its new content.
    await gcs.put("deploy/app.yaml", "kind: ConfigMap\ndata: {a: b}\n")
    await gcs.delete("deploy/other.yaml")
    await request_reconcile(kube, namespace, "app", "changed")
    listed = await gcs.etags("deploy/")
    obj = await wait_ready(kube, namespace, "app", digest({k: v for k, v in listed.items() if not k.endswith(".txt")}))
    files = members(await download(obj["status"]["artifact"]["url"]))
    assert files == {"deploy/app.yaml": b"kind: ConfigMap\ndata: {a: b}\n"}
    await eventually(lambda: announced(2))


async def test_bad_input(
    kube: KubeClient, namespace: str, controller: Controller, gcs: Gcs, tokens: TokenEndpoint
) -> None:
    await gcs.put("big.bin", b"x" * (MAX_OBJECT_SIZE + 1))
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger_file = tokens.key_file(stranger)
    await kube.create(secret("good", namespace, {"serviceaccount": tokens.key_file()}))
    await kube.create(secret("stranger", namespace, {"serviceaccount": stranger_file}))
    await kube.create(secret("s3-keys", namespace, {"accesskey": "a", "secretkey": "b"}))
    await kube.create(bucket("wrong-key", namespace, **gcs_spec(gcs, secretRef={"name": "stranger"})))
    await kube.create(
        bucket(
            "no-bucket", namespace, **gcs_spec(gcs, secretRef={"name": "good"}, bucketName=f"absent-{gcs.name[:40]}")
        )
    )
    await kube.create(bucket("no-key", namespace, **gcs_spec(gcs, secretRef={"name": "s3-keys"})))
    await kube.create(bucket("too-big", namespace, **gcs_spec(gcs, secretRef={"name": "good"})))
    await kube.create(bucket("no-secret-ref", namespace, **gcs_spec(gcs)))

    obj = await wait_failed(kube, namespace, "wrong-key", "invalid_grant: Invalid JWT Signature.")
    assert c.get_reason(obj, "Ready") == "BucketOperationFailed"
    assert f"failed to confirm existence of '{gcs.name}' bucket" in c.get(obj, "Ready")["message"]  # type: ignore[index]
    obj = await wait_failed(kube, namespace, "no-bucket", f"bucket 'absent-{gcs.name[:40]}' not found")
    assert c.get_reason(obj, "Ready") == "BucketOperationFailed"
    obj = await wait_failed(
        kube, namespace, "no-key", "invalid 's3-keys' secret data: required fields 'serviceaccount'"
    )
    assert c.get_reason(obj, "Ready") == "AuthenticationFailed"
    assert not c.is_true(obj, "Stalled")  # the Secret may be fixed
    obj = await wait_failed(kube, namespace, "too-big", "larger than the 65536 allowed (--max-bucket-object-size)")
    assert c.get_reason(obj, "Ready") == "BucketOperationFailed"
    obj = await wait_failed(kube, namespace, "no-secret-ref", "provider 'gcp' without spec.secretRef")
    assert c.get_reason(obj, "Ready") == "UnsupportedField"
    assert c.is_true(obj, "Stalled")
    assert tokens.refused >= 1

    names = ("wrong-key", "no-bucket", "no-key", "too-big", "no-secret-ref")
    objs = [await get(kube, namespace, n) for n in names]
    events = (await kube.list("v1", "Event", namespace=namespace)).items
    text = dumped(objs, events, [e.message for e in controller.bus.events], controller.log.read_text())
    for pem in (json.loads(stranger_file)["private_key"], json.loads(tokens.key_file())["private_key"]):
        body = "".join(pem.splitlines()[1:-1])
        assert body[:64] not in text.replace("\\n", "")
    assert "ya29." not in text


@dataclass
class Proxy:
    """A forwarding HTTP proxy on loopback that notes what went through it."""

    seen: list[tuple[str, str, str]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        target = str(request.url)
        self.seen.append((request.method, target, request.headers.get("Authorization", "")))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "proxy-authorization")}
        async with (
            aiohttp.ClientSession(auto_decompress=False) as http,
            http.request(request.method, target, headers=headers, data=await request.read()) as r,
        ):
            body = await r.read()
            drop = ("transfer-encoding", "content-length", "connection")
            return web.Response(
                status=r.status, body=body, headers={k: v for k, v in r.headers.items() if k.lower() not in drop}
            )


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    p = Proxy()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", p.handle)
    runner, port = await serve(app)
    p.url = f"http://127.0.0.1:{port}"
    try:
        yield p
    finally:
        await runner.cleanup()


async def test_proxy_secret_ref_carries_the_token_and_the_api(
    kube: KubeClient, namespace: str, controller: Controller, gcs: Gcs, tokens: TokenEndpoint, proxy: Proxy
) -> None:
    await gcs.put("app.yaml", "kind: ConfigMap\n")
    await kube.create(secret("gcp-sa", namespace, {"serviceaccount": tokens.key_file()}))
    await kube.create(secret("proxy", namespace, {"address": proxy.url}))
    await kube.create(
        bucket("via-proxy", namespace, **gcs_spec(gcs, secretRef={"name": "gcp-sa"}, proxySecretRef={"name": "proxy"}))
    )
    obj = await wait_ready(kube, namespace, "via-proxy", digest(await gcs.etags()))
    assert members(await download(obj["status"]["artifact"]["url"])) == {"app.yaml": b"kind: ConfigMap\n"}
    # The token request and every API call went through the proxy; the API calls carried the token.
    assert proxy.seen[0][:2] == ("POST", tokens.url)
    api = [s for s in proxy.seen if s[1].startswith(f"{gcs.endpoint}/storage/v1/b/{gcs.name}")]
    assert api
    assert all(auth.startswith("Bearer ya29.test-") for _, _, auth in api)
