"""Authentication against real servers: basic, bearer, HTTPS CA, SSH keys and host keys; failures are typed and clean."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from gitops_mesh_dev.gitserver import GitServer, StallingServer, TlsFiles, loopback_socket
from gitops_mesh_dev.repos import Repo
from source_controller.git import (
    AuthenticationFailed,
    CertificateInvalid,
    GitAuth,
    GitRef,
    GitTimeout,
    HostKeyVerificationFailed,
    InvalidAuthSecret,
    RemoteUnreachable,
    RepositoryNotFound,
    checkout,
    resolve,
)
from tests.support.fixtures import PASSWORD, TOKEN, USERNAME
from tests.support.sshd import Sshd


@pytest.fixture
def repo(make_repo: Callable[..., Repo]) -> Repo:
    r = make_repo()
    r.commit({"app.yaml": "v: 1\n"}, "first")
    r.push()
    return r


def ssh_auth(
    sshd: Sshd, *, key: Path | None = None, known_hosts: bytes | None = None, passphrase: str | None = None
) -> GitAuth:
    return GitAuth(
        identity=(key or sshd.client_key).read_bytes(),
        known_hosts=known_hosts if known_hosts is not None else sshd.known_hosts(),
        identity_passphrase=passphrase,
    )


def unused_port() -> int:
    sock = loopback_socket()
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@pytest.mark.parametrize(
    "auth",
    [GitAuth(username=USERNAME, password=PASSWORD), GitAuth(bearer_token=TOKEN)],
    ids=["basic", "bearer"],
)
async def test_http_auth(git_http_auth: GitServer, repo: Repo, tmp_path: Path, auth: GitAuth) -> None:
    url = git_http_auth.url(repo.name)
    resolved = await resolve(url, None, auth)
    got = await checkout(url, None, auth, tmp_path / "co")
    assert got.hash == resolved.commit == repo.head()
    users = {s.user for s in git_http_auth.seen if s.path.startswith(f"/{repo.name}.git") and s.status == 200}
    assert users == ({USERNAME} if auth.username else {""})


async def test_credentials_in_the_url_are_used_but_kept_out_of_messages(git_http_auth: GitServer, repo: Repo) -> None:
    url = git_http_auth.url(repo.name).replace("://", f"://{USERNAME}:{quote(PASSWORD, safe='')}@")
    assert (await resolve(url)).commit == repo.head()
    bad = git_http_auth.url(repo.name).replace("://", f"://{USERNAME}:wrong-{quote(PASSWORD, safe='')}@")
    with pytest.raises(AuthenticationFailed) as e:
        await resolve(bad)
    assert PASSWORD not in str(e.value)
    assert quote(PASSWORD, safe="") not in str(e.value)


async def test_wrong_password(git_http_auth: GitServer, repo: Repo, tmp_path: Path) -> None:
    auth = GitAuth(username=USERNAME, password="not-" + PASSWORD)
    with pytest.raises(AuthenticationFailed) as e:
        await checkout(git_http_auth.url(repo.name), None, auth, tmp_path / "co")
    assert e.value.reason == "AuthenticationFailed"
    assert "rejected the credentials" in str(e.value)
    assert "not-" + PASSWORD not in str(e.value)


async def test_wrong_token_and_no_credentials(git_http_auth: GitServer, repo: Repo) -> None:
    with pytest.raises(AuthenticationFailed) as e:
        await resolve(git_http_auth.url(repo.name), None, GitAuth(bearer_token="bogus-" + TOKEN))
    assert TOKEN not in str(e.value)
    with pytest.raises(AuthenticationFailed, match="requires authentication"):
        await resolve(git_http_auth.url(repo.name))


async def test_https_with_ca(git_https: GitServer, git_tls: TlsFiles, repo: Repo, tmp_path: Path) -> None:
    auth = GitAuth(username=USERNAME, password=PASSWORD, ca=git_tls.ca_pem)
    got = await checkout(git_https.url(repo.name), None, auth, tmp_path / "co")
    assert got.hash == repo.head()
    assert (tmp_path / "co" / "app.yaml").read_text() == "v: 1\n"


async def test_https_without_the_ca_is_refused(git_https: GitServer, repo: Repo) -> None:
    with pytest.raises(CertificateInvalid, match=r"ca\.crt") as e:
        await resolve(git_https.url(repo.name), None, GitAuth(username=USERNAME, password=PASSWORD))
    assert e.value.reason == "GitOperationFailed"


async def test_ssh_with_identity_and_known_hosts(sshd: Sshd, repo: Repo, tmp_path: Path) -> None:
    url = sshd.url(repo.bare)
    resolved = await resolve(url, GitRef(branch="master"), ssh_auth(sshd))
    got = await checkout(url, GitRef(branch="master"), ssh_auth(sshd), tmp_path / "co")
    assert got.hash == resolved.commit == repo.head()
    assert got.revision == f"master@sha1:{repo.head()}"


async def test_ssh_with_an_encrypted_key(sshd: Sshd, repo: Repo) -> None:
    auth = ssh_auth(sshd, key=sshd.encrypted_key, passphrase=sshd.passphrase)
    assert (await resolve(sshd.url(repo.bare), None, auth)).commit == repo.head()
    with pytest.raises(AuthenticationFailed):
        await resolve(sshd.url(repo.bare), None, ssh_auth(sshd, key=sshd.encrypted_key, passphrase="wrong"))


async def test_ssh_key_not_authorised(sshd: Sshd, repo: Repo) -> None:
    with pytest.raises(AuthenticationFailed, match="refused the identity key"):
        await resolve(sshd.url(repo.bare), None, ssh_auth(sshd, key=sshd.other_key))


async def test_ssh_host_key_mismatch(sshd: Sshd, repo: Repo) -> None:
    # known_hosts names this server but with another key (the client key's public half)
    forged = sshd.known_hosts(sshd.other_key)
    with pytest.raises(HostKeyVerificationFailed, match="does not match") as e:
        await resolve(sshd.url(repo.bare), None, ssh_auth(sshd, known_hosts=forged))
    assert "man-in-the-middle" in str(e.value)


async def test_ssh_host_not_in_known_hosts(sshd: Sshd, repo: Repo) -> None:
    elsewhere = b"[127.0.0.1]:1 " + sshd.known_hosts().split(b" ", 1)[1]
    with pytest.raises(HostKeyVerificationFailed, match="not in known_hosts"):
        await resolve(sshd.url(repo.bare), None, ssh_auth(sshd, known_hosts=elsewhere))


async def test_ssh_without_known_hosts_is_a_secret_error(sshd: Sshd, repo: Repo) -> None:
    with pytest.raises(InvalidAuthSecret, match="known_hosts"):
        await resolve(sshd.url(repo.bare), None, GitAuth(identity=sshd.client_key.read_bytes()))


async def test_unreachable_ports(sshd: Sshd) -> None:
    port = unused_port()
    with pytest.raises(RemoteUnreachable, match="unreachable"):
        await resolve(f"http://127.0.0.1:{port}/x.git")
    with pytest.raises(RemoteUnreachable):
        await resolve(f"ssh://git@127.0.0.1:{port}/x.git", None, ssh_auth(sshd))


async def test_missing_repository(git_http: GitServer, sshd: Sshd, tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFound):
        await resolve(git_http.url("does-not-exist"))
    with pytest.raises(RepositoryNotFound):
        await checkout(sshd.url(tmp_path / "nope.git"), None, ssh_auth(sshd), tmp_path / "co")


async def test_timeout_kills_the_git_process_group(tmp_path: Path) -> None:
    async with StallingServer() as stall:
        with pytest.raises(GitTimeout, match=r"timed out after 1s"):
            await checkout(f"http://127.0.0.1:{stall.port}/slow.git", None, None, tmp_path / "co", timeout=1)
        assert stall.accepted >= 1
        # the killed remote helper's connection was closed, not left hanging
        for _ in range(50):
            if stall.closed == stall.accepted:
                break
            await asyncio.sleep(0.05)
        assert stall.closed == stall.accepted
