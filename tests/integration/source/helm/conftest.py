"""Fixtures for the Helm adapter's tests: charts made with the real helm, repositories served by aiohttp."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gitops_mesh_dev.gitserver import TlsFiles, make_tls
from tests.integration.source.helm.repo import RepoServer, helm, helm_binary

VERSIONS = ("0.1.0", "0.2.0", "0.9.0", "1.0.0", "1.1.0-rc.1")


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    return helm_binary()


@pytest.fixture(scope="session")
def charts_dir(tmp_path_factory: pytest.TempPathFactory, helm_bin: Path) -> Path:
    """``demo`` packaged in several versions (with an extra values file inside) and ``helm repo index``-ed."""
    work = tmp_path_factory.mktemp("helm-src")
    helm(helm_bin, "create", "demo", cwd=work)
    (work / "demo" / "values-prod.yaml").write_text("replicaCount: 5\nimage:\n  tag: prod\n")
    repo = tmp_path_factory.mktemp("helm-repo")
    for version in VERSIONS:
        helm(helm_bin, "package", str(work / "demo"), "--version", version, "--destination", str(repo), cwd=work)
    helm(helm_bin, "repo", "index", str(repo), cwd=work)
    return repo


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("helm-tls"))


@pytest.fixture(scope="session")
async def http_repo(charts_dir: Path) -> AsyncIterator[RepoServer]:
    async with RepoServer(charts_dir) as server:
        yield server


@pytest.fixture(scope="session")
async def https_repo(charts_dir: Path, tls: TlsFiles) -> AsyncIterator[RepoServer]:
    async with RepoServer(charts_dir, tls=tls) as server:
        yield server


@pytest.fixture(scope="session")
async def auth_repo(charts_dir: Path, tls: TlsFiles) -> AsyncIterator[RepoServer]:
    async with RepoServer(charts_dir, tls=tls, username="flux", password="s3cret") as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def repo_copy(charts_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the repository directory, for tests that tamper with it."""
    copy = tmp_path / "repo"
    shutil.copytree(charts_dir, copy)
    return copy
