"""The artifact file server, served for real on loopback: HTTP caching and ranges, and what is unreachable."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from gitops_mesh.artifacts.server import make_app, resolve
from gitops_mesh.artifacts.storage import Storage
from gitops_mesh.observability import metrics
from gitops_mesh.observability.health import start_server

DATA = random.Random(1).randbytes(10_000)
ARTIFACT = "gitrepository/flux-system/podinfo/abc.tar.gz"


@dataclass
class Served:
    base: str
    root: Path
    storage: Storage
    http: aiohttp.ClientSession

    def get(self, raw_path: str, **kwargs: object) -> aiohttp.client._RequestContextManager:
        """GET a path sent exactly as written: no normalisation, no re-encoding by the client."""
        return self.http.get(URL(self.base + raw_path, encoded=True), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    (tmp_path / "secret.txt").write_text("outside the storage root")
    storage = Storage(tmp_path / "storage", "127.0.0.1")
    artifact = await storage.write_bytes("GitRepository", "flux-system", "podinfo", "abc.tar.gz", DATA)
    await storage.set_latest(artifact.path)
    runner, port = await start_server(make_app(storage.root), "127.0.0.1:0")
    try:
        async with aiohttp.ClientSession(auto_decompress=False) as http:
            yield Served(base=f"http://127.0.0.1:{port}", root=storage.root, storage=storage, http=http)
    finally:
        await runner.cleanup()


async def test_get_serves_the_file_with_length_type_and_strong_etag(served: Served) -> None:
    before = metrics.artifact_served_bytes._value.get()
    async with served.get("/" + ARTIFACT) as r:
        assert r.status == 200
        assert await r.read() == DATA
        assert r.headers["Content-Length"] == str(len(DATA))
        assert r.headers["Content-Type"] == "application/gzip"
        assert "Content-Encoding" not in r.headers, "a .tar.gz is content, not a transfer encoding"
        assert r.headers["Accept-Ranges"] == "bytes"
        etag = r.headers["ETag"]
        assert etag.startswith('"'), "a strong ETag (a weak one starts with W/)"
    # The server counts once sendfile returns, which can be just after the client has the last byte.
    async with asyncio.timeout(5):
        while metrics.artifact_served_bytes._value.get() - before < len(DATA):  # noqa: ASYNC110 - a counter has no event
            await asyncio.sleep(0.01)
    assert metrics.artifact_served_bytes._value.get() - before == len(DATA)


async def test_head_has_the_headers_and_no_body(served: Served) -> None:
    async with served.http.head(served.base + "/" + ARTIFACT) as r:
        assert r.status == 200
        assert r.headers["Content-Length"] == str(len(DATA))
        assert await r.read() == b""


async def test_if_none_match_gives_304_and_a_new_file_a_new_etag(served: Served) -> None:
    async with served.get("/" + ARTIFACT) as r:
        etag = r.headers["ETag"]
    async with served.get("/" + ARTIFACT, headers={"If-None-Match": etag}) as r:
        assert r.status == 304
        assert await r.read() == b""
        assert r.headers["ETag"] == etag
    async with served.get("/" + ARTIFACT, headers={"If-None-Match": '"something-else"'}) as r:
        assert r.status == 200
    await served.storage.write_bytes("GitRepository", "flux-system", "podinfo", "abc.tar.gz", DATA + b"more")
    async with served.get("/" + ARTIFACT, headers={"If-None-Match": etag}) as r:
        assert r.status == 200
        assert r.headers["ETag"] != etag


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [("bytes=0-9", 0, 9), ("bytes=100-", 100, len(DATA) - 1), ("bytes=-16", len(DATA) - 16, len(DATA) - 1)],
)
async def test_ranges_give_206(served: Served, range_header: str, start: int, end: int) -> None:
    async with served.get("/" + ARTIFACT, headers={"Range": range_header}) as r:
        assert r.status == 206
        assert await r.read() == DATA[start : end + 1]
        assert r.headers["Content-Range"] == f"bytes {start}-{end}/{len(DATA)}"
        assert r.headers["Content-Length"] == str(end - start + 1)


@pytest.mark.parametrize("range_header", [f"bytes={len(DATA)}-", "bytes=50-10", "bytes=abc"])
async def test_unsatisfiable_ranges_give_416(served: Served, range_header: str) -> None:
    async with served.get("/" + ARTIFACT, headers={"Range": range_header}) as r:
        assert r.status == 416
        assert r.headers["Content-Range"] == f"bytes */{len(DATA)}"


async def test_the_latest_link_inside_the_root_is_served(served: Served) -> None:
    async with served.get("/gitrepository/flux-system/podinfo/latest.tar.gz") as r:
        assert r.status == 200
        assert await r.read() == DATA


TRAVERSALS = [
    "/../secret.txt",
    "/../../../../etc/passwd",
    "/%2e%2e/secret.txt",
    "/%2E%2E/%2E%2E/etc/passwd",
    "/.%2e/secret.txt",
    "/gitrepository/flux-system/podinfo/../../../../secret.txt",
    "/gitrepository/flux-system/podinfo/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    "/gitrepository/flux-system/podinfo/..%2f..%2f..%2f..%2fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/%252e%252e/secret.txt",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/gitrepository/flux-system/podinfo/..%5c..%5c..%5c..%5csecret.txt",
    "/gitrepository/flux-system/podinfo/abc.tar.gz%00.txt",
]


@pytest.mark.parametrize("raw_path", TRAVERSALS)
async def test_traversal_attempts_are_404(served: Served, raw_path: str) -> None:
    async with served.get(raw_path) as r:
        body = await r.read()
        assert r.status == 404, body
        assert b"outside the storage root" not in body
        assert b"root:" not in body


@pytest.mark.parametrize(
    "url_path",
    ["/../secret.txt", "/a/../../secret.txt", "/./gitrepository", "/x//y", "/a\\..\\b", "/", "", "/.tmp-1-x"],
)
def test_resolve_refuses_every_segment_that_is_not_a_plain_name(tmp_path: Path, url_path: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    assert resolve(root, url_path) is None


async def test_symlinks_leading_out_of_the_root_are_404(served: Served, tmp_path: Path) -> None:
    objdir = served.root / "gitrepository/flux-system/podinfo"
    (objdir / "escape.tar.gz").symlink_to(tmp_path / "secret.txt")
    (objdir / "abs-etc").symlink_to("/etc/passwd")
    (served.root / "gitrepository/flux-system/evil").symlink_to(tmp_path, target_is_directory=True)
    for raw_path in [
        "/gitrepository/flux-system/podinfo/escape.tar.gz",
        "/gitrepository/flux-system/podinfo/abs-etc",
        "/gitrepository/flux-system/evil/secret.txt",
    ]:
        async with served.get(raw_path) as r:
            assert r.status == 404, raw_path
            assert b"outside" not in await r.read()


@pytest.mark.parametrize(
    "raw_path",
    [
        "/",
        "/gitrepository",
        "/gitrepository/flux-system/podinfo",
        "/gitrepository/flux-system/podinfo/",
        "/gitrepository/flux-system/podinfo/missing.tar.gz",
    ],
)
async def test_directories_and_missing_files_are_404(served: Served, raw_path: str) -> None:
    async with served.get(raw_path) as r:
        assert r.status == 404


async def test_temp_files_of_an_ongoing_store_are_not_served(served: Served) -> None:
    (served.root / "gitrepository/flux-system/podinfo/.tmp-0123-next.tar.gz").write_bytes(b"half")
    async with served.get("/gitrepository/flux-system/podinfo/.tmp-0123-next.tar.gz") as r:
        assert r.status == 404


async def test_special_files_are_not_served(served: Served) -> None:
    os.mkfifo(served.root / "gitrepository/flux-system/podinfo/pipe")
    async with served.get("/gitrepository/flux-system/podinfo/pipe") as r:
        assert r.status == 404


async def test_a_precompressed_sibling_is_never_substituted(served: Served) -> None:
    index = await served.storage.write_bytes("HelmRepository", "flux-system", "charts", "index.yaml", b"entries: {}\n")
    (served.storage.local_path(index.path).with_name("index.yaml.gz")).write_bytes(b"not the index")
    async with served.get("/" + index.path, headers={"Accept-Encoding": "gzip, br"}) as r:
        assert r.status == 200
        assert await r.read() == b"entries: {}\n"
        assert "Content-Encoding" not in r.headers


async def test_only_get_and_head(served: Served) -> None:
    async with served.http.post(served.base + "/" + ARTIFACT) as r:
        assert r.status == 405
