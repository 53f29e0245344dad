"""fetch_index against real servers: HTTP, HTTPS with a CA, basic auth, 404, malformed, size cap, a 50 MB index."""

from __future__ import annotations

import hashlib
import time
import tracemalloc
from pathlib import Path

import aiohttp
import pytest

from gitops_mesh_dev.gitserver import TlsFiles
from source_controller.helm.errors import InvalidIndex, RepositoryAuthFailed, RepositoryFetchFailed
from source_controller.helm.index import fetch_index
from source_controller.helm.resolve import resolve
from source_controller.helm.transport import Credentials
from tests.integration.source.helm.conftest import VERSIONS
from tests.integration.source.helm.repo import RepoServer

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("suffix", ["", "/"])
async def test_http_index_and_its_revision(
    session: aiohttp.ClientSession, http_repo: RepoServer, charts_dir: Path, tmp_path: Path, suffix: str
) -> None:
    index = await fetch_index(session, http_repo.url + suffix, tmp_dir=tmp_path)
    raw = (charts_dir / "index.yaml").read_bytes()
    hexdigest = hashlib.sha256(raw).hexdigest()
    assert index.revision == index.digest == f"sha256:{hexdigest}"
    assert index.artifact_filename == f"index-{hexdigest}.yaml"
    assert index.size == len(raw)
    assert index.path is not None
    assert index.path.read_bytes() == raw
    assert index.path.parent == tmp_path
    assert [cv.version for cv in index.entries["demo"]] == sorted(VERSIONS, key=_semver, reverse=True)
    assert resolve(index, "demo", ">=0.1.0 <1.0.0").version == "0.9.0"
    assert resolve(index, "demo").version == "1.0.0"
    assert resolve(index, "demo", ">=1.1.0-0").version == "1.1.0-rc.1"


def _semver(v: str) -> tuple[int, ...]:
    core, _, pre = v.partition("-")
    return (*map(int, core.split(".")), 0 if pre else 1)


async def test_https_with_the_ca(session: aiohttp.ClientSession, https_repo: RepoServer, tls: TlsFiles) -> None:
    index = await fetch_index(session, https_repo.url, ca=tls.ca_pem)
    assert "demo" in index.entries
    assert index.path is not None
    index.path.unlink()


async def test_https_without_the_ca_says_so(session: aiohttp.ClientSession, https_repo: RepoServer) -> None:
    with pytest.raises(RepositoryFetchFailed, match=r"TLS certificate verification failed.*certSecretRef ca\.crt"):
        await fetch_index(session, https_repo.url)


async def test_basic_auth(session: aiohttp.ClientSession, auth_repo: RepoServer, tls: TlsFiles) -> None:
    index = await fetch_index(session, auth_repo.url, auth=Credentials("flux", "s3cret"), ca=tls.ca_pem)
    assert index.entries["demo"]
    with pytest.raises(RepositoryAuthFailed, match="HTTP 401 Unauthorized") as caught:
        await fetch_index(session, auth_repo.url, ca=tls.ca_pem)
    assert caught.value.reason == "AuthenticationFailed"
    assert caught.value.status == 401
    with pytest.raises(RepositoryAuthFailed) as wrong:
        await fetch_index(session, auth_repo.url, auth=Credentials("flux", "nope"), ca=tls.ca_pem)
    assert "nope" not in str(wrong.value)


async def test_not_found(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    async with RepoServer(tmp_path) as empty:
        with pytest.raises(
            RepositoryFetchFailed, match=r"index not found at http://127\.0\.0\.1:\d+/x/index\.yaml"
        ) as e:
            await fetch_index(session, empty.url + "/x?token=hidden", tmp_dir=tmp_path)
    assert e.value.status == 404
    assert "hidden" not in str(e.value)
    assert list(tmp_path.glob(".index-*")) == []


async def test_unreachable(session: aiohttp.ClientSession) -> None:
    with pytest.raises(RepositoryFetchFailed, match=r"cannot connect to 127\.0\.0\.1:1"):
        await fetch_index(session, "http://127.0.0.1:1/charts")


async def test_malformed_index(session: aiohttp.ClientSession, repo_copy: Path) -> None:
    text = (repo_copy / "index.yaml").read_text().replace("    urls:\n", "    urls: [\n", 1)
    (repo_copy / "index.yaml").write_text(text)
    async with RepoServer(repo_copy) as server:
        with pytest.raises(
            InvalidIndex, match=r"index http://127\.0\.0\.1:\d+/index\.yaml is not valid YAML: line \d+"
        ):
            await fetch_index(session, server.url)


async def test_index_over_the_cap(session: aiohttp.ClientSession, http_repo: RepoServer, tmp_path: Path) -> None:
    with pytest.raises(InvalidIndex, match="larger than the limit of 100 bytes"):
        await fetch_index(session, http_repo.url, max_size=100, tmp_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def _write_big_index(path: Path, target: int) -> int:
    """An index shaped like a big public one: entries of ~2.5 KB with an images annotation block."""
    entries = 0
    with path.open("w") as f:
        f.write("apiVersion: v1\nentries:\n")
        chart = 0
        size = 0
        while size < target:
            name = f"chart-{chart}"
            f.write(f"  {name}:\n")
            for v in range(60):
                images = "".join(
                    f"          - name: component-{i}\n            image: docker.io/example/{name}-{i}:{v}.0.{i}-debian-12-r{v}\n"
                    for i in range(12)
                )
                entry = (
                    f"  - annotations:\n      category: Infrastructure\n      images: |\n{images}"
                    f"      licenses: Apache-2.0\n    apiVersion: v2\n    appVersion: {v}.4.{chart % 7}\n"
                    f'    created: "2024-03-{1 + v % 28:02d}T08:04:52.367395539Z"\n'
                    f"    dependencies:\n    - name: common\n      repository: oci://registry.example.com/charts\n"
                    f"      tags:\n      - example-common\n      version: 2.x.x\n"
                    f"    description: {name} is a workload used to exercise a large index; it has a description "
                    f"of a realistic length, as public repositories do.\n"
                    f"    digest: {hashlib.sha256(f'{name}{v}'.encode()).hexdigest()}\n"
                    f"    home: https://example.com/{name}\n    icon: https://example.com/{name}.svg\n"
                    f"    keywords:\n    - {name}\n    - workload\n    maintainers:\n    - name: Example, Inc.\n"
                    f"      url: https://github.com/example/charts\n    name: {name}\n"
                    f"    sources:\n    - https://github.com/example/charts/tree/main/{name}\n"
                    f"    urls:\n    - https://charts.example.com/{name}-{v}.0.0.tgz\n    version: {v}.0.0\n"
                )
                f.write(entry)
                size += len(entry)
                entries += 1
            chart += 1
        f.write('generated: "2024-03-01T00:00:00Z"\n')
    return entries


async def test_a_50mb_index_streams_and_parses_in_bounded_memory(
    session: aiohttp.ClientSession, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("big-index")
    expected = _write_big_index(root / "index.yaml", 50_000_000)
    file_size = (root / "index.yaml").stat().st_size
    async with RepoServer(root) as server:
        tracemalloc.start()
        started = time.monotonic()
        try:
            index = await fetch_index(session, server.url, tmp_dir=root)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        elapsed = time.monotonic() - started
    print(f"\nindex {file_size / 1e6:.1f} MB, {expected} entries: peak {peak / 1e6:.1f} MB traced, {elapsed:.1f}s")
    assert len(index) == expected
    assert index.entries["chart-3"][0].version == "59.0.0"
    assert index.size == file_size
    # Measured ~0.25x of the file (entries keep a dozen fields, shared per chart); PyYAML's load() peaks near 30x.
    assert peak < 2 * file_size
