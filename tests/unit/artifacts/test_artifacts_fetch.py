"""fetch() against a real aiohttp server on loopback: digests, size caps, statuses, unreachable hosts."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import random
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gitops_mesh.artifacts.errors import (
    ArtifactTooLarge,
    ArtifactUnavailable,
    DigestMismatch,
    UnsupportedDigest,
)
from gitops_mesh.artifacts.fetch import fetch
from gitops_mesh.errors import TerminalError, TransientError
from gitops_mesh.observability.health import start_server

PAYLOAD = gzip.compress(random.Random(0).randbytes(200_000), mtime=0)  # incompressible, valid gzip
DIGEST = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
#: Several write blocks and a part of one: the blocked path and the tail flush both run.
BIG = random.Random(1).randbytes((7 << 20) // 2)


@dataclass
class Server:
    base: str
    streamed: list[int] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    stream_ended: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server(base="")

    async def ok(_: web.Request) -> web.Response:
        return web.Response(body=PAYLOAD, content_type="application/gzip")

    async def encoded(_: web.Request) -> web.Response:
        # A server that labels the tarball as gzip-encoded: the digest is still over the stored bytes.
        return web.Response(body=PAYLOAD, headers={"Content-Encoding": "gzip", "Content-Type": "application/x-tar"})

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        sent = 0
        try:
            for _ in range(1024):
                await response.write(b"\0" * (64 << 10))
                sent += 64 << 10
        except (ConnectionError, RuntimeError):
            pass
        finally:
            state.streamed.append(sent)
            state.stream_ended.set()
        return response

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.Response(status=code, headers={"Retry-After": "7"} if code == 503 else {})

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=BIG, content_type="application/gzip")

    async def slow(_: web.Request) -> web.Response:
        await state.release.wait()
        return web.Response(body=PAYLOAD)

    app = web.Application()
    app.router.add_get("/ok.tar.gz", ok)
    app.router.add_get("/encoded.tar.gz", encoded)
    app.router.add_get("/endless", endless)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/big.tar.gz", big)
    app.router.add_get("/slow", slow)
    runner, port = await start_server(app, "127.0.0.1:0")
    state.base = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def test_fetch_verifies_and_renames_into_place(
    server: Server, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    dest = await fetch(http, f"{server.base}/ok.tar.gz", tmp_path / "a.tar.gz", digest=DIGEST, max_size=1 << 20)
    assert dest.read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == ["a.tar.gz"]


async def test_a_download_of_several_blocks_is_whole_hashed_and_private(
    server: Server, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    digest = "sha384:" + hashlib.sha384(BIG).hexdigest()
    dest = await fetch(http, f"{server.base}/big.tar.gz", tmp_path / "big.tar.gz", digest=digest, max_size=8 << 20)
    assert dest.read_bytes() == BIG
    assert dest.stat().st_mode & 0o777 == 0o600
    assert leftovers(tmp_path) == ["big.tar.gz"]


async def test_bare_hex_digest_means_sha256(server: Server, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    bare = DIGEST.removeprefix("sha256:")
    await fetch(http, f"{server.base}/ok.tar.gz", tmp_path / "a.tar.gz", digest=bare, max_size=1 << 20)


async def test_content_encoding_is_not_undone(server: Server, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    dest = await fetch(http, f"{server.base}/encoded.tar.gz", tmp_path / "a.tar.gz", digest=DIGEST, max_size=1 << 20)
    assert dest.read_bytes() == PAYLOAD


async def test_digest_mismatch_names_both_digests(server: Server, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    wrong = "sha256:" + "0" * 64
    with pytest.raises(DigestMismatch) as caught:
        await fetch(http, f"{server.base}/ok.tar.gz", tmp_path / "a.tar.gz", digest=wrong, max_size=1 << 20)
    message = str(caught.value)
    assert f"expected {wrong}" in message
    assert f"got {DIGEST}" in message
    assert "/ok.tar.gz" in message
    assert isinstance(caught.value, TransientError)
    assert leftovers(tmp_path) == [], "nothing is left behind"


async def test_sha512_digests_are_checked(server: Server, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    digest = "sha512:" + hashlib.sha512(PAYLOAD).hexdigest()
    await fetch(http, f"{server.base}/ok.tar.gz", tmp_path / "a.tar.gz", digest=digest, max_size=1 << 20)
    with pytest.raises(UnsupportedDigest, match="blake3"):
        await fetch(http, f"{server.base}/ok.tar.gz", tmp_path / "b", digest="blake3:" + "0" * 64, max_size=1 << 20)


async def test_content_length_over_the_cap_fails_before_the_body(
    server: Server, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with pytest.raises(ArtifactTooLarge, match=f"larger than the limit of 1000 bytes \\(at least {len(PAYLOAD)}") as e:
        await fetch(http, f"{server.base}/ok.tar.gz", tmp_path / "a.tar.gz", digest=DIGEST, max_size=1000)
    assert isinstance(e.value, TerminalError)
    assert leftovers(tmp_path) == []


async def test_a_stream_without_length_is_cut_off_at_the_cap(
    server: Server, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with pytest.raises(ArtifactTooLarge):
        await fetch(http, f"{server.base}/endless", tmp_path / "a", digest=DIGEST, max_size=1 << 20)
    async with asyncio.timeout(5):
        await server.stream_ended.wait()
    assert server.streamed[0] < 32 << 20, "the download stopped early, not after all 64 MiB"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("code", [404, 500, 503, 403])
async def test_http_errors_are_transient(
    server: Server, http: aiohttp.ClientSession, tmp_path: Path, code: int
) -> None:
    with pytest.raises(ArtifactUnavailable) as caught:
        await fetch(http, f"{server.base}/status/{code}", tmp_path / "a", digest=DIGEST, max_size=1 << 20)
    assert caught.value.status == code
    assert str(code) in str(caught.value)
    if code == 404:
        assert "not found" in str(caught.value)
    if code == 503:
        assert caught.value.retry_after == 7
    assert caught.value.reason == "ArtifactFailed"
    assert leftovers(tmp_path) == []


async def test_connection_refused_is_transient(http: aiohttp.ClientSession, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ArtifactUnavailable, match=f"GET http://127.0.0.1:{port}/a.tar.gz"):
        await fetch(http, f"http://127.0.0.1:{port}/a.tar.gz", tmp_path / "a", digest=DIGEST, max_size=1 << 20)
    assert leftovers(tmp_path) == []


async def test_timeout_is_transient(server: Server, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    with pytest.raises(ArtifactUnavailable, match="timed out"):
        await fetch(
            http,
            f"{server.base}/slow",
            tmp_path / "a",
            digest=DIGEST,
            max_size=1 << 20,
            timeout=aiohttp.ClientTimeout(total=0.2),
        )
