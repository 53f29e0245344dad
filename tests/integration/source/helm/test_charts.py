"""Charts against real servers and the real helm: pull, digest, corrupt archives, credentials, values, dependencies."""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import aiohttp
import pytest
import yaml

from gitops_mesh_dev.gitserver import TlsFiles
from source_controller.helm.chart import (
    DependencyRepository,
    download_chart,
    package_chart_archive,
    package_chart_dir,
    read_chart_archive,
    revision_metadata,
)
from source_controller.helm.errors import (
    ChartDigestMismatch,
    ChartPullError,
    CorruptChart,
    DependencyBuildError,
    InvalidChartReference,
    ValuesFilesError,
)
from source_controller.helm.index import ChartVersion, fetch_index
from source_controller.helm.resolve import resolve
from source_controller.helm.transport import Credentials, RepositoryAuth
from tests.integration.source.helm.repo import RepoServer, helm

pytestmark = pytest.mark.timeout(120)
SHA = "a96eff73a282d408a960086d978ca97a0a1fb2ef"


def archive_files(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}  # type: ignore[union-attr]


async def test_resolve_download_and_verify(
    session: aiohttp.ClientSession, auth_repo: RepoServer, tls: TlsFiles, charts_dir: Path, tmp_path: Path
) -> None:
    creds = Credentials("flux", "s3cret")
    index = await fetch_index(session, auth_repo.url, auth=creds, ca=tls.ca_pem, tmp_dir=tmp_path)
    chart = resolve(index, "demo", ">=0.1.0 <1.0.0")
    assert chart.version == "0.9.0"
    build = await download_chart(session, auth_repo.url, chart, tmp_path, auth=creds, ca=tls.ca_pem)
    raw = (charts_dir / "demo-0.9.0.tgz").read_bytes()
    assert build.path == tmp_path / "demo-0.9.0.tgz" == tmp_path / build.artifact_filename
    assert build.path.read_bytes() == raw
    assert build.digest == f"sha256:{hashlib.sha256(raw).hexdigest()}" == f"sha256:{chart.digest}"
    assert (build.name, build.version, build.revision, build.size) == ("demo", "0.9.0", "0.9.0", len(raw))
    assert build.packaged is False
    assert build.metadata is not None
    assert build.metadata.version == "0.9.0"
    assert list(tmp_path.glob(".demo-*")) == []  # no partial download left behind


async def test_tampered_chart_fails_the_digest(session: aiohttp.ClientSession, repo_copy: Path, tmp_path: Path) -> None:
    # A valid chart, just not the one the index announced.
    shutil.copyfile(repo_copy / "demo-0.2.0.tgz", repo_copy / "demo-0.9.0.tgz")
    dest = tmp_path / "out"
    dest.mkdir()
    async with RepoServer(repo_copy) as server:
        index = await fetch_index(session, server.url, tmp_dir=tmp_path)
        chart = resolve(index, "demo", "0.9.0")
        with pytest.raises(ChartDigestMismatch, match=rf"index says sha256:{chart.digest}, got sha256:") as caught:
            await download_chart(session, server.url, chart, dest)
    assert caught.value.reason == "ChartPullError"
    assert list(dest.iterdir()) == []


def _tar(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a chart at all", "not a gzip-compressed tar archive"),
        (gzip.compress(b"x" * 2000), "not a gzip-compressed tar archive"),
        (_tar({"bad/templates/a.yaml": b"kind: x\n"}), "has no bad/Chart.yaml"),
        (_tar({"Chart.yaml": b"name: a\nversion: 1.0.0\n"}), "not inside the chart directory"),
        (_tar({"a/Chart.yaml": b"name: a\nversion: 1.0.0\n", "b/x": b""}), "more than one top directory"),
        (_tar({"a/Chart.yaml": b"name: a\nversion: 1.0.0\n", "a/../../etc/x": b""}), "would escape"),
        (_tar({"a/Chart.yaml": b"name: a\n"}), "version is required"),
    ],
)
async def test_corrupt_charts(session: aiohttp.ClientSession, tmp_path: Path, content: bytes, message: str) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "bad-1.0.0.tgz").write_bytes(content)
    chart = ChartVersion("bad", "1.0.0", urls=("bad-1.0.0.tgz",), digest=hashlib.sha256(content).hexdigest())
    async with RepoServer(root) as server:
        with pytest.raises(CorruptChart, match=message) as caught:
            await download_chart(session, server.url, chart, tmp_path)
    assert caught.value.reason == "ChartPullError"
    assert not (tmp_path / "bad-1.0.0.tgz").exists()


async def test_chart_not_found_and_too_large(
    session: aiohttp.ClientSession, http_repo: RepoServer, tmp_path: Path
) -> None:
    missing = ChartVersion("demo", "9.9.9", urls=("demo-9.9.9.tgz",))
    with pytest.raises(ChartPullError, match=r"chart demo-9\.9\.9 not found at .*demo-9\.9\.9\.tgz \(HTTP 404"):
        await download_chart(session, http_repo.url, missing, tmp_path)
    small = ChartVersion("demo", "0.1.0", urls=("demo-0.1.0.tgz",))
    with pytest.raises(ChartPullError, match="larger than the limit of 512 bytes"):
        await download_chart(session, http_repo.url, small, tmp_path, max_size=512)
    with pytest.raises(ChartPullError, match="no downloadable URLs"):
        await download_chart(session, http_repo.url, ChartVersion("demo", "0.1.0"), tmp_path)


async def test_pass_credentials(session: aiohttp.ClientSession, charts_dir: Path, tmp_path: Path) -> None:
    """Chart URLs on another origin get the repository's credentials only with passCredentials."""
    async with RepoServer(charts_dir) as repo, RepoServer(charts_dir) as cdn:
        chart = ChartVersion("demo", "0.1.0", urls=(f"{cdn.url}/demo-0.1.0.tgz",))
        creds = Credentials("flux", "s3cret")
        await download_chart(session, repo.url, chart, tmp_path, auth=creds)
        assert cdn.auth_log[-1] == ("/demo-0.1.0.tgz", None)
        await download_chart(session, repo.url, chart, tmp_path, auth=creds, pass_credentials=True)
        assert str(cdn.auth_log[-1][1]).startswith("Basic ")
        same_origin = ChartVersion("demo", "0.1.0", urls=("demo-0.1.0.tgz",))
        await download_chart(session, repo.url, same_origin, tmp_path, auth=creds)
        assert repo.auth_log[-1][1] is not None


async def test_repackage_with_values_files(
    session: aiohttp.ClientSession, http_repo: RepoServer, helm_bin: Path, tmp_path: Path
) -> None:
    pulled = tmp_path / "pulled"
    pulled.mkdir()
    index = await fetch_index(session, http_repo.url, tmp_dir=tmp_path)
    chart = resolve(index, "demo", "1.0.0")
    build = await download_chart(session, http_repo.url, chart, pulled)
    meta = revision_metadata(
        reconcile_strategy="ChartVersion",
        source_kind="HelmRepository",
        source_revision=index.revision,
        generation=4,
        has_values_files=True,
    )
    out = tmp_path / "out"
    out.mkdir()
    repacked = await package_chart_archive(
        build.path,
        out,
        helm=helm_bin,
        name=build.name,
        version=f"{build.version}+{meta}",
        values_files=["values.yaml", "values-prod.yaml", "values-missing.yaml"],
        ignore_missing_values_files=True,
    )
    assert repacked.path == out / "demo-1.0.0+4.tgz"
    assert repacked.revision == "1.0.0+4"
    assert repacked.packaged
    assert repacked.values_files == ("values.yaml", "values-prod.yaml")
    files = archive_files(repacked.path)
    values = yaml.safe_load(files["demo/values.yaml"])
    assert values["replicaCount"] == 5
    assert values["image"]["tag"] == "prod"
    assert values["image"]["repository"] == "nginx"  # from the chart's own values.yaml, merged under
    assert yaml.safe_load(files["demo/Chart.yaml"])["version"] == "1.0.0+4"
    with pytest.raises(ValuesFilesError, match=r"no values file found at path 'values-missing\.yaml'"):
        await package_chart_archive(
            build.path, out, helm=helm_bin, name="demo", version="1.0.0+4", values_files=["values-missing.yaml"]
        )


@pytest.fixture
def source_tree(tmp_path: Path, helm_bin: Path) -> Path:
    """A GitRepository-like tree: charts/app depending on charts/common through file://, values at the root."""
    root = tmp_path / "source"
    (root / "charts").mkdir(parents=True)
    helm(helm_bin, "create", "app", cwd=root / "charts")
    helm(helm_bin, "create", "common", cwd=root / "charts")
    chart_yaml = root / "charts" / "app" / "Chart.yaml"
    chart_yaml.write_text(
        chart_yaml.read_text() + "dependencies:\n- name: common\n  version: '>=0.1.0'\n  repository: file://../common\n"
    )
    (root / "env").mkdir()
    (root / "env" / "prod.yaml").write_text("replicaCount: 3\nservice:\n  port: 8080\nextra:\n  list: [a, b]\n")
    return root


async def test_package_a_directory_with_a_file_dependency(source_tree: Path, helm_bin: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    before = sorted(str(p.relative_to(source_tree)) for p in source_tree.rglob("*"))
    meta = revision_metadata(
        reconcile_strategy="Revision",
        source_kind="GitRepository",
        source_revision=f"main@sha1:{SHA}",
        generation=2,
        has_values_files=True,
    )
    build = await package_chart_dir(
        source_tree,
        "charts/app",
        out,
        helm=helm_bin,
        version_metadata=meta,
        values_files=["charts/app/values.yaml", "env/prod.yaml", "env/absent.yaml"],
        ignore_missing_values_files=True,
    )
    assert build.name == "app"
    assert build.version == build.revision == "0.1.0+a96eff73a282.2"
    assert build.path == out / "app-0.1.0+a96eff73a282.2.tgz"
    assert build.resolved_dependencies == 1
    assert build.values_files == ("charts/app/values.yaml", "env/prod.yaml")
    files = archive_files(build.path)
    assert "app/charts/common/Chart.yaml" in files  # helm package embeds built dependencies unpacked
    values = yaml.safe_load(files["app/values.yaml"])
    assert values["replicaCount"] == 3
    assert values["service"] == {"type": "ClusterIP", "port": 8080}
    assert values["extra"] == {"list": ["a", "b"]}
    assert read_chart_archive(build.path).version == "0.1.0+a96eff73a282.2"
    # The source tree is shared with other consumers: packaging must not write into it.
    assert sorted(str(p.relative_to(source_tree)) for p in source_tree.rglob("*")) == before


async def test_package_a_directory_plain(source_tree: Path, helm_bin: Path, tmp_path: Path) -> None:
    build = await package_chart_dir(source_tree, "charts/common", tmp_path, helm=helm_bin)
    assert (build.path.name, build.packaged, build.resolved_dependencies) == ("common-0.1.0.tgz", True, 0)
    assert yaml.safe_load(archive_files(build.path)["common/values.yaml"])["replicaCount"] == 1


async def test_directory_errors(source_tree: Path, helm_bin: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidChartReference, match="points outside the source"):
        await package_chart_dir(source_tree, "../..", tmp_path, helm=helm_bin)
    with pytest.raises(InvalidChartReference, match="does not exist"):
        await package_chart_dir(source_tree, "charts/nope", tmp_path, helm=helm_bin)
    with pytest.raises(InvalidChartReference, match=r"no Chart\.yaml"):
        await package_chart_dir(source_tree, "env", tmp_path, helm=helm_bin)
    with pytest.raises(ValuesFilesError, match=r"no values file found at path 'env/absent\.yaml'"):
        await package_chart_dir(source_tree, "charts/app", tmp_path, helm=helm_bin, values_files=["env/absent.yaml"])
    with pytest.raises(ValuesFilesError, match="points outside the source"):
        await package_chart_dir(source_tree, "charts/app", tmp_path, helm=helm_bin, values_files=["../x.yaml"])
    chart_yaml = source_tree / "charts" / "app" / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text().replace("file://../common", "file://../../../outside"))
    with pytest.raises(InvalidChartReference, match="points outside the source"):
        await package_chart_dir(source_tree, "charts/app", tmp_path, helm=helm_bin)


async def test_repository_dependency_with_credentials(
    auth_repo: RepoServer, tls: TlsFiles, helm_bin: Path, tmp_path: Path
) -> None:
    root = tmp_path / "source"
    root.mkdir()
    helm(helm_bin, "create", "web", cwd=root)
    chart_yaml = root / "web" / "Chart.yaml"
    chart_yaml.write_text(
        chart_yaml.read_text() + f"dependencies:\n- name: demo\n  version: '~0.2.0'\n  repository: {auth_repo.url}\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    auth = RepositoryAuth(credentials=Credentials("flux", "s3cret"), ca=tls.ca_pem)
    build = await package_chart_dir(
        root, "web", out, helm=helm_bin, dependency_repositories=[DependencyRepository(auth_repo.url, auth)]
    )
    assert yaml.safe_load(archive_files(build.path)["web/charts/demo/Chart.yaml"])["version"] == "0.2.0"
    assert build.resolved_dependencies == 1
    with pytest.raises(DependencyBuildError, match="helm dependency build failed for demo"):
        await package_chart_dir(root, "web", out, helm=helm_bin)
