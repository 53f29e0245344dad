"""pytest fixtures over the real servers: HTTP, HTTPS and SSH git remotes, repos to fill, gpg keys."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from gitops_mesh_dev.gitserver import GitServer, TlsFiles, make_tls
from gitops_mesh_dev.repos import Repo, Signer
from tests.support.gpg import make_key, stop_agent
from tests.support.sshd import Sshd

USERNAME = "alice"
PASSWORD = "pw-Zq8#vN3!kLr7"
TOKEN = "tok-4f9b1c2e7a6d5e8f"


@pytest.fixture(scope="session")
def git_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the bare repositories every server serves live."""
    return tmp_path_factory.mktemp("git-repos")


@pytest.fixture(scope="session")
def git_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("git-tls"))


@pytest.fixture(scope="session")
async def git_http(git_root: Path) -> AsyncIterator[GitServer]:
    """Anonymous smart HTTP."""
    async with GitServer(git_root) as server:
        yield server


@pytest.fixture(scope="session")
async def git_http_auth(git_root: Path) -> AsyncIterator[GitServer]:
    """Smart HTTP that wants basic (``USERNAME``/``PASSWORD``) or bearer (``TOKEN``) auth."""
    async with GitServer(git_root, users={USERNAME: PASSWORD}, tokens={TOKEN}) as server:
        yield server


@pytest.fixture(scope="session")
async def git_https(git_root: Path, git_tls: TlsFiles) -> AsyncIterator[GitServer]:
    """Smart HTTPS with a certificate from the test CA, basic/bearer auth as ``git_http_auth``."""
    async with GitServer(git_root, users={USERNAME: PASSWORD}, tokens={TOKEN}, tls=git_tls) as server:
        yield server


@pytest.fixture(scope="session")
async def sshd(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Sshd]:
    async with Sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def make_repo(git_root: Path) -> Callable[..., Repo]:
    """``make_repo(branch='master')``: a fresh repository with a unique name, served by every server."""

    def make(branch: str = "master") -> Repo:
        return Repo(git_root, "r" + uuid.uuid4().hex[:10], branch)

    return make


@pytest.fixture(scope="session")
def gpg_keys() -> Iterator[tuple[Signer, Signer]]:
    """Two signing keys: the trusted one and a stranger's (short GNUPGHOME paths for the agent sockets)."""
    homes = [Path(tempfile.mkdtemp(prefix="gpg")) for _ in range(2)]
    keys = (
        make_key(homes[0], "Trusted Signer", "trusted@example.com"),
        make_key(homes[1], "Stranger", "x@example.com"),
    )
    yield keys
    for home in homes:
        stop_agent(home)
        shutil.rmtree(home, ignore_errors=True)
