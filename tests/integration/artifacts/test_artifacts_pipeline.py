"""Producer to consumers without fakes: archive into storage, serve over HTTP, fetch and unpack via the cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from gitops_mesh.artifacts import ArtifactUnavailable, DigestMismatch, Storage, TreeCache, make_app
from gitops_mesh.observability import metrics
from gitops_mesh.observability.health import start_server

KIND, NS, NAME = "GitRepository", "flux-system", "podinfo"


@dataclass
class Pipeline:
    storage: Storage
    cache: TreeCache
    http: aiohttp.ClientSession


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    root = tmp_path / "storage"
    root.mkdir()
    runner, port = await start_server(make_app(root), "127.0.0.1:0")
    try:
        async with aiohttp.ClientSession() as http:
            yield Pipeline(Storage(root, f"127.0.0.1:{port}"), TreeCache(tmp_path / "trees", max_entries=2), http)
    finally:
        await runner.cleanup()


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def requests_served() -> float:
    return float(metrics.artifact_requests.labels(code="200")._value.get())


async def test_a_burst_of_consumers_on_one_revision_downloads_and_unpacks_once(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    src = write(tmp_path / "checkout", {f"apps/app{i}/deploy.yaml": f"name: app{i}\n" for i in range(50)})
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    artifact = await pipeline.storage.archive(KIND, NS, NAME, "sha1.tar.gz", src, include=lambda rel, _: rel != ".git")
    before = requests_served()

    async def consumer(i: int) -> str:
        async with pipeline.cache.tree_from_url(
            pipeline.http, artifact.url, digest=artifact.digest, max_size=1 << 20
        ) as tree:
            assert not (tree / ".git").exists()
            return (tree / f"apps/app{i}/deploy.yaml").read_text()

    texts = await asyncio.gather(*(consumer(i) for i in range(50)))
    assert texts == [f"name: app{i}\n" for i in range(50)]
    assert requests_served() - before == 1


async def test_new_revision_gc_and_a_consumer_holding_a_stale_url(pipeline: Pipeline, tmp_path: Path) -> None:
    storage = pipeline.storage
    revisions = []
    for n in range(3):
        src = write(tmp_path / f"rev{n}", {"app.yaml": f"revision: {n}\n"})
        artifact = await storage.archive(KIND, NS, NAME, f"rev{n}.tar.gz", src)
        await storage.set_latest(artifact.path)
        await storage.gc(KIND, NS, NAME, current=f"rev{n}.tar.gz")
        revisions.append(artifact)
    assert storage.list_files(KIND, NS, NAME) == ["rev2.tar.gz", "rev1.tar.gz"]

    # A consumer that still has revision 0 in its copy of the status finds it collected: retry later.
    with pytest.raises(ArtifactUnavailable, match="not found") as caught:
        async with pipeline.cache.tree_from_url(
            pipeline.http, revisions[0].url, digest=revisions[0].digest, max_size=1 << 20
        ):
            pass
    assert caught.value.status == 404

    # The latest link serves the newest revision; its digest is the one in the status.
    latest_url = storage.url(f"gitrepository/{NS}/{NAME}/latest.tar.gz")
    async with pipeline.cache.tree_from_url(
        pipeline.http, latest_url, digest=revisions[2].digest, max_size=1 << 20
    ) as tree:
        assert (tree / "app.yaml").read_text() == "revision: 2\n"

    # Announced digest and served bytes disagree (the link moved on): a clear, retryable error.
    with pytest.raises(DigestMismatch, match=f"expected {revisions[1].digest}"):
        async with pipeline.cache.tree_from_url(
            pipeline.http, latest_url, digest=revisions[1].digest, max_size=1 << 20
        ):
            pass

    assert await storage.remove_all(KIND, NS, NAME)
    async with pipeline.http.get(revisions[2].url) as r:
        assert r.status == 404
