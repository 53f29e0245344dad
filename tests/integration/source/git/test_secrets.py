"""No credential in any process's argv while git runs, nor in the errors it produces."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gitops_mesh_dev.gitserver import GitServer, TlsFiles
from gitops_mesh_dev.repos import Repo
from source_controller.git import AuthenticationFailed, GitAuth, checkout, resolve
from tests.support.fixtures import PASSWORD, TOKEN, USERNAME
from tests.support.sshd import Sshd

WRAPPER = '#!/bin/sh\nprintf "%s\\n" "$0 $*" >> {log}\nexec {real} "$@"\n'


@pytest.fixture
def argv_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put recording wrappers for git and ssh first on PATH; every invocation's argv lands in the log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "argv.log"
    log.touch()
    for tool in ("git", "ssh"):
        real = next(p for d in os.environ["PATH"].split(":") if (p := Path(d) / tool).is_file())
        wrapper = bin_dir / tool
        wrapper.write_text(WRAPPER.format(log=log, real=real))
        wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return log


@contextlib.asynccontextmanager
async def proc_cmdlines() -> AsyncIterator[list[str]]:
    """Sample every process's /proc/<pid>/cmdline until the block ends."""
    seen: list[str] = []

    def sample() -> None:
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    seen.append(Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))

    async def poll() -> None:
        while True:
            await asyncio.to_thread(sample)
            await asyncio.sleep(0.002)

    task = asyncio.create_task(poll())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def repo(make_repo: Callable[..., Repo]) -> Repo:
    r = make_repo()
    r.commit({"app.yaml": "v: 1\n"}, "first")
    r.push()
    return r


async def test_no_credential_in_argv(
    argv_log: Path,
    git_http_auth: GitServer,
    git_https: GitServer,
    git_tls: TlsFiles,
    sshd: Sshd,
    repo: Repo,
    tmp_path: Path,
) -> None:
    basic = GitAuth(username=USERNAME, password=PASSWORD)
    ssh_key = sshd.encrypted_key.read_bytes()
    ssh = GitAuth(identity=ssh_key, identity_passphrase=sshd.passphrase, known_hosts=sshd.known_hosts())
    async with proc_cmdlines() as cmdlines:
        await checkout(git_http_auth.url(repo.name), None, basic, tmp_path / "basic")
        await checkout(
            git_https.url(repo.name), None, GitAuth(bearer_token=TOKEN, ca=git_tls.ca_pem), tmp_path / "bearer"
        )
        await checkout(sshd.url(repo.bare), None, ssh, tmp_path / "ssh")
        with pytest.raises(AuthenticationFailed):
            await resolve(git_http_auth.url(repo.name), None, GitAuth(username=USERNAME, password="x" + PASSWORD))
    recorded = await asyncio.to_thread(argv_log.read_text)
    assert "fetch" in recorded
    assert "ssh -F /dev/null" in recorded
    assert any("git" in c for c in cmdlines)
    secrets = [
        PASSWORD,
        TOKEN,
        sshd.passphrase,
        base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode(),
        *[line for line in ssh_key.decode().splitlines() if "PRIVATE KEY" not in line],
    ]
    for secret in secrets:
        assert secret not in recorded
        assert not [c for c in cmdlines if secret in c]
