"""gitops_mesh.oci's client and `gitops-mesh push artifact` against the real distribution registry."""

from __future__ import annotations

import contextlib
import json
import subprocess
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gitops_mesh.oci import (
    AuthCache,
    BlobInvalid,
    Credentials,
    Descriptor,
    InvalidManifest,
    Limits,
    ManifestNotFound,
    RegistryAuthFailed,
    RegistryClient,
    RegistryUnavailable,
    TooLarge,
    Transport,
    UnexpectedAnswer,
    parse_repository,
    tls_context,
)
from gitops_mesh.oci.manifest import (
    CREATED_ANNOTATION,
    FLUX_CONFIG,
    FLUX_CONTENT,
    OCI_INDEX,
    OCI_MANIFEST,
    REVISION_ANNOTATION,
    SOURCE_ANNOTATION,
)
from gitops_mesh_dev.gitserver import TlsFiles, make_tls
from gitops_mesh_dev.http import serve
from gitops_mesh_dev.ociregistry import OciRegistry
from tests.integration.source.oci.conftest import push, write_tree

pytestmark = [pytest.mark.stack, pytest.mark.timeout(120)]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def plain(http: aiohttp.ClientSession, registry: OciRegistry, **limits: int) -> RegistryClient:
    return RegistryClient(http, registry.address, transport=Transport(insecure=True), limits=Limits(**limits))


async def test_a_pushed_directory_reads_back_in_fluxs_format(
    registry: OciRegistry, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    src = write_tree(
        tmp_path / "src", {"deploy/cm.yaml": "kind: ConfigMap\n", ".git/HEAD": "ref", "run.sh": "#!/bin/sh\n"}
    )
    (src / "run.sh").chmod(0o755)
    digest = await push(f"oci://{registry.address}/apps/web:v1.0.0", src, revision="v1@sha1:abc")
    client, repo = plain(http, registry), parse_repository(f"oci://{registry.address}/apps/web")

    head = await client.resolve(repo, "v1.0.0")
    assert head.digest == digest
    assert head.media_type == OCI_MANIFEST
    manifest = await client.manifest(repo, digest)
    assert manifest.config.media_type == FLUX_CONFIG
    assert [layer.media_type for layer in manifest.layers] == [FLUX_CONTENT]
    assert manifest.annotations[SOURCE_ANNOTATION] == "https://git.example.com/app.git"
    assert manifest.annotations[REVISION_ANNOTATION] == "v1@sha1:abc"
    assert manifest.annotations[CREATED_ANNOTATION].endswith("Z")
    assert await client.small_blob(repo, manifest.config, 1024) == b"{}"

    layer_file = tmp_path / "layer.tar.gz"
    await client.fetch_blob(repo, manifest.layers[0], layer_file)
    with tarfile.open(layer_file, "r:gz") as tar:
        names = {m.name: m for m in tar.getmembers()}
    assert set(names) == {"deploy", "deploy/cm.yaml", "run.sh"}  # .git/ is left out
    assert names["run.sh"].mode == 0o700
    # Pushing the same tree again gives the same layer: the archive is deterministic.
    again = await push(f"oci://{registry.address}/apps/web:v1.0.1", src, revision="v1@sha1:abc")
    assert (await client.manifest(repo, again)).layers == manifest.layers


async def test_tags_are_listed_across_pages(registry: OciRegistry, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"a.yaml": "a: 1\n"})
    for tag in ("1.0.0", "1.1.0", "2.0.0", "latest", "2.1.0-rc.1"):
        await push(f"oci://{registry.address}/apps/paged:{tag}", src)
    repo = parse_repository(f"oci://{registry.address}/apps/paged")
    tags = await plain(http, registry, tag_page_size=2).tags(repo)
    assert sorted(tags) == ["1.0.0", "1.1.0", "2.0.0", "2.1.0-rc.1", "latest"]
    with pytest.raises(TooLarge, match="more than 2 pages"):
        await plain(http, registry, tag_page_size=2, max_tag_pages=2).tags(repo)
    with pytest.raises(TooLarge, match="more than 3 tags"):
        await plain(http, registry, max_tags=3).tags(repo)


async def test_what_the_registry_lacks_or_refuses_is_named(
    registry: OciRegistry, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    src = write_tree(tmp_path / "src", {"a.yaml": "a: 1\n"})
    digest = await push(f"oci://{registry.address}/apps/x:v1", src)
    client, repo = plain(http, registry), parse_repository(f"oci://{registry.address}/apps/x")
    with pytest.raises(ManifestNotFound, match=r"manifest .*apps/x:nope: HTTP 404"):
        await client.resolve(repo, "nope")
    with pytest.raises(ManifestNotFound, match="MANIFEST_UNKNOWN"):
        await client.manifest(repo, "nope")
    with pytest.raises(TooLarge, match="over the limit of 100"):
        await plain(http, registry, max_manifest_bytes=100).manifest(repo, digest)
    manifest = await client.manifest(repo, digest)
    with pytest.raises(TooLarge, match="over the limit of 10"):
        await plain(http, registry, max_blob_bytes=10).fetch_blob(repo, manifest.layers[0], tmp_path / "big")
    assert not (tmp_path / "big").exists()
    # TLS to a plain-HTTP registry: the transport's failure, retried, never a crash.
    with pytest.raises(RegistryUnavailable):
        await RegistryClient(http, registry.address).resolve(repo, "v1")


async def test_an_index_is_refused_as_an_artifact(
    registry: OciRegistry, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    src = write_tree(tmp_path / "src", {"a.yaml": "a: 1\n"})
    digest = await push(f"oci://{registry.address}/apps/multi:v1", src)
    client, repo = plain(http, registry), parse_repository(f"oci://{registry.address}/apps/multi")
    size = (await client.resolve(repo, digest)).size
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest, "size": size}],
    }
    await client.push_manifest(repo, "multi", json.dumps(index).encode(), OCI_INDEX)
    with pytest.raises(InvalidManifest, match="names an index"):
        await client.manifest(repo, "multi")


async def test_credentials_come_from_the_environment_or_stdin_never_argv(registry: OciRegistry, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"a.yaml": "a: 1\n"})
    # The plain registry takes any credentials: what is checked is that each way is read, and argv has no flag.
    await push(f"oci://{registry.address}/apps/creds:v1", src, env={"GITOPS_MESH_REGISTRY_CREDS": "u:p"})
    await push(
        f"oci://{registry.address}/apps/creds:v2", src, extra=["--insecure-registry", "--creds-stdin"], stdin=b"u:p\n"
    )
    with pytest.raises(subprocess.CalledProcessError) as caught:
        await push(f"oci://{registry.address}/apps/creds:v3", src, extra=["--insecure-registry", "--creds=u:p"])
    assert caught.value.returncode == 2
    with pytest.raises(subprocess.CalledProcessError) as bad:
        await push(f"oci://{registry.address}/Apps/x:v1", src)
    assert b"invalid repository name" in bad.value.stderr


# A registry-like server of our own for what the distribution registry does not do unless configured:
# token auth (a Bearer challenge, a realm), Basic auth over TLS with a private CA, HTML answers, redirects of
# blobs to another origin.

TOKEN = "t0ken"
ROBOT = Credentials("robot", "pw")
EMPTY = Descriptor(
    "application/octet-stream", "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 0
)
REDIRECTED = Descriptor("application/octet-stream", "sha256:" + "0" * 64, 0)


def registry_app(seen: list[dict[str, str]], *, scheme: str) -> web.Application:
    async def v2(request: web.Request) -> web.StreamResponse:
        seen.append({"path": request.path, "authorization": request.headers.get("Authorization", "")})
        if request.path.startswith("/v2/html/"):
            return web.Response(status=200, text="<html>login</html>", content_type="text/html")
        given = request.headers.get("Authorization")
        if scheme == "basic" and given != ROBOT.basic():
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="Registry Realm"'})
        if scheme == "bearer" and given != f"Bearer {TOKEN}":
            challenge = f'Bearer realm="http://{request.host}/token",service="test",scope="repository:apps/x:pull"'
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        if request.path.endswith(REDIRECTED.digest):
            raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{request.app[OTHER]}/blob?sig=abc")
        return web.json_response({"name": "apps/x", "tags": ["v1"]})

    async def token(request: web.Request) -> web.Response:
        seen.append(
            {
                "path": "/token",
                "authorization": request.headers.get("Authorization", ""),
                "scope": request.query.get("scope", ""),
            }
        )
        if request.headers.get("Authorization") != ROBOT.basic():
            return web.Response(status=401)
        return web.json_response({"token": TOKEN})

    app = web.Application()
    app.router.add_route("*", "/v2/{tail:.*}", v2)
    app.router.add_get("/token", token)
    return app


OTHER = web.AppKey("other", int)


@contextlib.asynccontextmanager
async def served(app: web.Application, tls: TlsFiles | None = None) -> AsyncIterator[int]:
    runner, port = await serve(app, tls)
    try:
        yield port
    finally:
        await runner.cleanup()


async def test_bearer_tokens_are_fetched_kept_and_redirects_drop_them(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    seen: list[dict[str, str]] = []
    storage_seen: list[str] = []

    async def blob(request: web.Request) -> web.Response:
        storage_seen.append(request.headers.get("Authorization", ""))
        return web.Response(body=b"")

    storage = web.Application()
    storage.router.add_get("/blob", blob)
    app = registry_app(seen, scheme="bearer")
    async with served(storage) as other_port:
        app[OTHER] = other_port
        async with served(app) as port:
            address = f"127.0.0.1:{port}"
            repo = parse_repository(f"oci://{address}/apps/x")
            good = RegistryClient(http, address, credentials=ROBOT, transport=Transport(insecure=True))
            assert await good.tags(repo) == ["v1"]
            assert seen[1] == {"path": "/token", "authorization": ROBOT.basic(), "scope": "repository:apps/x:pull"}
            assert seen[-1]["authorization"] == f"Bearer {TOKEN}"
            # The token is kept: the next call goes out with it at once.
            before = len(seen)
            await good.tags(repo)
            assert len(seen) == before + 1
            # Shared through an AuthCache, the next client (the next reconcile) needs no 401 and no token request;
            # other credentials do not get it.
            cache = AuthCache()
            insecure = Transport(insecure=True)
            await RegistryClient(http, address, credentials=ROBOT, transport=insecure, auth_cache=cache).tags(repo)
            before = len(seen)
            await RegistryClient(http, address, credentials=ROBOT, transport=insecure, auth_cache=cache).tags(repo)
            assert len(seen) == before + 1
            other = RegistryClient(
                http, address, credentials=Credentials("x", "y"), transport=insecure, auth_cache=cache
            )
            with pytest.raises(RegistryAuthFailed):
                await other.tags(repo)
            # A blob redirected to another origin (object storage): followed, without our Authorization.
            with pytest.raises(BlobInvalid, match="does not match its descriptor"):
                await good.fetch_blob(repo, REDIRECTED, tmp_path / "blob")
            assert storage_seen == [""]
            assert not (tmp_path / "blob").exists()

            wrong = RegistryClient(
                http, address, credentials=Credentials("robot", "nope"), transport=Transport(insecure=True)
            )
            with pytest.raises(RegistryAuthFailed, match="refused the credentials"):
                await wrong.tags(repo)
            with pytest.raises(UnexpectedAnswer, match="HTML page"):
                await good.manifest(parse_repository(f"oci://{address}/html/x"), "v1")


async def test_basic_auth_over_tls_with_a_private_ca(http: aiohttp.ClientSession, tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    seen: list[dict[str, str]] = []
    async with served(registry_app(seen, scheme="basic"), tls) as port:
        address = f"127.0.0.1:{port}"
        repo = parse_repository(f"oci://{address}/apps/x")
        trusted = Transport(ssl=tls_context(tls.ca_pem))
        assert await RegistryClient(http, address, credentials=ROBOT, transport=trusted).tags(repo) == ["v1"]
        assert seen[-1]["authorization"] == ROBOT.basic()
        # Without the CA the certificate is not trusted; without credentials the 401 is the answer.
        with pytest.raises(RegistryUnavailable):
            await RegistryClient(http, address, credentials=ROBOT).tags(repo)
        with pytest.raises(RegistryAuthFailed, match="no credentials were given"):
            await RegistryClient(http, address, transport=trusted).tags(repo)
