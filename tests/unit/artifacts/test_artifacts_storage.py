"""Storage: Flux's layout and URLs, atomic stores, the latest link, GC, removal, verification, locking."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import threading
import time
from pathlib import Path

import pytest

from gitops_mesh.artifacts.errors import DigestMismatch, InvalidArtifactPath, StorageError
from gitops_mesh.artifacts.extract import ExtractLimits, safe_extract
from gitops_mesh.artifacts.storage import LATEST, Storage

from .support import snapshot, write_tree

KIND, NS, NAME = "GitRepository", "flux-system", "podinfo"


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage(tmp_path / "storage", "source-controller.flux-system.svc.cluster.local.")


def test_layout_and_urls(storage: Storage) -> None:
    path = storage.artifact_path(KIND, NS, NAME, "abc123.tar.gz")
    assert path == "gitrepository/flux-system/podinfo/abc123.tar.gz"
    assert storage.url(path) == "http://source-controller.flux-system.svc.cluster.local./" + path
    assert storage.local_path(path) == storage.root / "gitrepository" / "flux-system" / "podinfo" / "abc123.tar.gz"
    with_scheme = Storage(storage.root, "https://artifacts.example.com/")
    assert with_scheme.url(path) == "https://artifacts.example.com/" + path


@pytest.mark.parametrize(
    ("namespace", "name", "filename"),
    [("..", NAME, "a.tgz"), (NS, "a/b", "a.tgz"), (NS, NAME, ".hidden"), (NS, NAME, ""), (NS, NAME, "x\\y")],
)
def test_invalid_components_are_refused(storage: Storage, namespace: str, name: str, filename: str) -> None:
    with pytest.raises(InvalidArtifactPath):
        storage.artifact_path(KIND, namespace, name, filename)


@pytest.mark.parametrize("path", ["../../etc/passwd", "gitrepository/ns/name", "a/b/../d", "/a/b/c/.."])
def test_local_path_refuses_anything_but_four_plain_components(storage: Storage, path: str) -> None:
    with pytest.raises(InvalidArtifactPath):
        storage.local_path(path)


async def test_archive_stores_atomically_and_round_trips(storage: Storage, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"deploy/app.yaml": b"kind: Deployment\n", "README.md": b"hi"})
    artifact = await storage.archive(KIND, NS, NAME, "rev1.tar.gz", src)
    assert artifact.path == "gitrepository/flux-system/podinfo/rev1.tar.gz"
    assert artifact.url.endswith("/gitrepository/flux-system/podinfo/rev1.tar.gz")
    assert artifact.size == storage.local_path(artifact.path).stat().st_size
    assert storage.exists(artifact.path)
    await storage.verify(artifact.path, artifact.digest)
    assert os.listdir(storage.root / "gitrepository/flux-system/podinfo") == ["rev1.tar.gz"], "no temp file left"
    assert storage.local_path(artifact.path).stat().st_mode & 0o777 == 0o600

    safe_extract(
        storage.local_path(artifact.path), tmp_path / "out", ExtractLimits(max_total_bytes=1 << 20, max_entries=10)
    )
    assert {k: v[:2] for k, v in snapshot(tmp_path / "out").items()} == {k: v[:2] for k, v in snapshot(src).items()}


async def test_a_failed_archive_keeps_the_previous_file_and_leaves_no_temp(storage: Storage, tmp_path: Path) -> None:
    first = await storage.write_bytes(KIND, NS, NAME, "same.tar.gz", b"previous")
    with pytest.raises(StorageError):
        await storage.archive(KIND, NS, NAME, "same.tar.gz", tmp_path / "missing-src")
    assert storage.local_path(first.path).read_bytes() == b"previous"
    assert os.listdir(storage.root / "gitrepository/flux-system/podinfo") == ["same.tar.gz"]


async def test_a_cancelled_archive_stops_its_thread_and_keeps_the_previous_file(
    storage: Storage, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(200):
        (src / f"f{i:03}").write_text("x")
    first = await storage.write_bytes(KIND, NS, NAME, "same.tar.gz", b"previous")
    started, seen = threading.Event(), []

    def slow_include(path: str, is_dir: bool) -> bool:  # a tenant's pattern that takes its time on every path
        seen.append(path)
        started.set()
        time.sleep(0.02)
        return True

    task = asyncio.ensure_future(storage.archive(KIND, NS, NAME, "same.tar.gz", src, include=slow_include))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    walked = len(seen)
    await asyncio.sleep(0.1)
    assert len(seen) == walked, "the packing thread kept walking after the cancelled call returned"
    assert walked < 200
    assert storage.local_path(first.path).read_bytes() == b"previous"
    assert os.listdir(storage.root / "gitrepository/flux-system/podinfo") == ["same.tar.gz"]


async def test_write_bytes_and_copy_file_record_digest_and_size(storage: Storage, tmp_path: Path) -> None:
    index = await storage.write_bytes("HelmRepository", NS, "charts", "index-abc.yaml", b"apiVersion: v1\n")
    assert index.size == 15
    await storage.verify(index.path, index.digest)
    (tmp_path / "chart.tgz").write_bytes(b"chart bytes" * 1000)
    chart = await storage.copy_file("HelmChart", NS, "podinfo", "podinfo-6.5.0.tgz", tmp_path / "chart.tgz")
    assert chart.size == 11_000
    assert storage.local_path(chart.path).read_bytes() == (tmp_path / "chart.tgz").read_bytes()


async def test_large_stores_are_whole_private_and_hashed(storage: Storage, tmp_path: Path) -> None:
    data = random.Random(3).randbytes((5 << 20) // 2)
    index = await storage.write_bytes("HelmRepository", NS, "charts", "index-big.yaml", data)
    (tmp_path / "big.tgz").write_bytes(data)
    chart = await storage.copy_file("HelmChart", NS, "big", "big-1.0.0.tgz", tmp_path / "big.tgz")
    for stored in (index, chart):
        assert stored.size == len(data)
        assert stored.digest == "sha256:" + hashlib.sha256(data).hexdigest()
        local = storage.local_path(stored.path)
        assert local.read_bytes() == data
        assert local.stat().st_mode & 0o777 == 0o600


async def test_a_cancelled_copy_keeps_the_previous_file_and_leaves_no_temp(storage: Storage, tmp_path: Path) -> None:
    previous = await storage.copy_file(KIND, NS, NAME, "a.tgz", write_tree(tmp_path / "p", {"f": b"previous"}) / "f")
    directory = storage.local_path(previous.path).parent
    # A pipe as the source: the copy holds one block written and waits for the next until it is cancelled.
    src = tmp_path / "pipe"
    os.mkfifo(src)
    copying = asyncio.create_task(storage.copy_file(KIND, NS, NAME, "a.tgz", src))
    writer = await asyncio.to_thread(open, src, "wb")
    try:
        await asyncio.to_thread(writer.write, b"x" * (1 << 20))
        await asyncio.to_thread(writer.flush)
        async with asyncio.timeout(30):
            while not [e for e in directory.iterdir() if e.name.startswith(".") and e.stat().st_size > 0]:  # noqa: ASYNC110 - a file filling has no event
                await asyncio.sleep(0.01)
        copying.cancel()
    finally:
        # The copy's reader thread stays in read() until the pipe ends.
        await asyncio.to_thread(writer.close)
    with pytest.raises(asyncio.CancelledError):
        await copying
    assert os.listdir(directory) == ["a.tgz"], "the temp file went with the cancelled copy"
    assert storage.local_path(previous.path).read_bytes() == b"previous"


async def test_verify_names_expected_and_actual(storage: Storage) -> None:
    artifact = await storage.write_bytes(KIND, NS, NAME, "a.tar.gz", b"content")
    storage.local_path(artifact.path).write_bytes(b"tampered")
    with pytest.raises(DigestMismatch) as caught:
        await storage.verify(artifact.path, artifact.digest)
    assert artifact.digest in str(caught.value)
    assert "got sha256:" in str(caught.value)
    with pytest.raises(StorageError):
        await storage.verify(storage.artifact_path(KIND, NS, NAME, "missing.tar.gz"), artifact.digest)


async def test_latest_link_is_relative_and_moves(storage: Storage) -> None:
    one = await storage.write_bytes(KIND, NS, NAME, "one.tar.gz", b"1")
    two = await storage.write_bytes(KIND, NS, NAME, "two.tar.gz", b"2")
    url = await storage.set_latest(one.path)
    assert url == storage.url("gitrepository/flux-system/podinfo/" + LATEST)
    link = storage.root / "gitrepository/flux-system/podinfo" / LATEST
    assert os.readlink(link) == "one.tar.gz"
    await storage.set_latest(two.path)
    assert link.read_bytes() == b"2"
    assert not storage.exists("gitrepository/flux-system/podinfo/" + LATEST), "a link is not an artifact"


async def store_aged(storage: Storage, names: list[str]) -> None:
    """Store files with strictly increasing mtimes, oldest first."""
    now = time.time()
    for age, filename in enumerate(reversed(names)):
        artifact = await storage.write_bytes(KIND, NS, NAME, filename, filename.encode())
        os.utime(storage.local_path(artifact.path), (now - 100 * (age + 1), now - 100 * (age + 1)))


async def test_gc_keeps_the_newest_n(storage: Storage) -> None:
    await store_aged(storage, ["r1.tar.gz", "r2.tar.gz", "r3.tar.gz", "r4.tar.gz"])
    await storage.set_latest(storage.artifact_path(KIND, NS, NAME, "r4.tar.gz"))
    removed = await storage.gc(KIND, NS, NAME, current="r4.tar.gz")
    assert removed == ["gitrepository/flux-system/podinfo/r2.tar.gz", "gitrepository/flux-system/podinfo/r1.tar.gz"]
    assert storage.list_files(KIND, NS, NAME) == ["r4.tar.gz", "r3.tar.gz"]
    assert (storage.root / "gitrepository/flux-system/podinfo" / LATEST).is_symlink(), "links are not collected"


async def test_gc_never_removes_the_current_artifact_even_when_oldest(storage: Storage) -> None:
    await store_aged(storage, ["current.tar.gz", "r2.tar.gz", "r3.tar.gz", "r4.tar.gz"])
    await storage.gc(KIND, NS, NAME, current="current.tar.gz", keep=2)
    assert storage.list_files(KIND, NS, NAME) == ["r4.tar.gz", "current.tar.gz"]
    await storage.gc(KIND, NS, NAME, current="current.tar.gz", keep=1)
    assert storage.list_files(KIND, NS, NAME) == ["current.tar.gz"]


async def test_gc_retention_is_configurable_and_ttl_removes_old_ones(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "s", "h", retention_records=3)
    await store_aged(storage, ["r1.tar.gz", "r2.tar.gz", "r3.tar.gz", "r4.tar.gz"])
    await storage.gc(KIND, NS, NAME, current="r4.tar.gz")
    assert storage.list_files(KIND, NS, NAME) == ["r4.tar.gz", "r3.tar.gz", "r2.tar.gz"]
    # r3 is 200 s old and r2 300 s: a 250 s TTL takes r2 even though three are allowed.
    await storage.gc(KIND, NS, NAME, current="r4.tar.gz", ttl=250)
    assert storage.list_files(KIND, NS, NAME) == ["r4.tar.gz", "r3.tar.gz"]
    with pytest.raises(ValueError, match="at least 1"):
        await storage.gc(KIND, NS, NAME, keep=0)


async def test_gc_removes_temp_files_left_by_a_crash(storage: Storage) -> None:
    await storage.write_bytes(KIND, NS, NAME, "r1.tar.gz", b"1")
    leftover = storage.root / "gitrepository/flux-system/podinfo/.tmp-0123456789ab-r2.tar.gz"
    leftover.write_bytes(b"half")
    removed = await storage.gc(KIND, NS, NAME, current="r1.tar.gz")
    assert removed == ["gitrepository/flux-system/podinfo/.tmp-0123456789ab-r2.tar.gz"]
    assert not leftover.exists()


async def test_gc_of_an_object_without_artifacts_is_a_no_op(storage: Storage) -> None:
    assert await storage.gc(KIND, NS, "never-stored") == []


async def test_remove_all_is_the_finalizer(storage: Storage) -> None:
    a = await storage.write_bytes(KIND, NS, NAME, "a.tar.gz", b"1")
    await storage.set_latest(a.path)
    other = await storage.write_bytes(KIND, NS, "other", "b.tar.gz", b"2")
    assert await storage.remove_all(KIND, NS, NAME) is True
    assert not (storage.root / "gitrepository/flux-system/podinfo").exists()
    assert storage.exists(other.path), "other objects are untouched"
    assert await storage.remove_all(KIND, NS, NAME) is False


async def test_lock_serialises_one_object_and_is_reentrant_for_its_holder(storage: Storage) -> None:
    order: list[str] = []

    async def reconcile(tag: str) -> None:
        async with storage.lock(KIND, NS, NAME):
            order.append(f"{tag}-start")
            # Each storage call takes the same lock again: re-entrant for this task, no deadlock.
            await storage.write_bytes(KIND, NS, NAME, f"{tag}.tar.gz", tag.encode())
            await asyncio.sleep(0.01)
            await storage.gc(KIND, NS, NAME, current=f"{tag}.tar.gz", keep=1)
            order.append(f"{tag}-end")

    async def other_object() -> None:
        async with storage.lock(KIND, NS, "other"):
            order.append("other")

    await asyncio.gather(reconcile("a"), reconcile("b"), other_object())
    starts = sorted(order.index(x) for x in ("a-start", "b-start"))
    ends = sorted(order.index(x) for x in ("a-end", "b-end"))
    assert starts[1] > ends[0], "the second reconcile of one object starts after the first ends"
    assert order.index("other") < ends[0], "another object is not held up"
    assert storage._locks == {}, "locks of idle objects are dropped"


def test_retention_must_keep_something(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Storage(tmp_path, "h", retention_records=0)
