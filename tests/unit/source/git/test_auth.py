"""Credentials: Secret keys, URL userinfo, the git environment built from them, and scrubbing."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from gitops_mesh.errors import InvalidSpec
from source_controller.git.auth import GitAuth, Scrubber, git_environment, parse_url, redact_url
from source_controller.git.errors import InvalidAuthSecret

PASSWORD = "hunter2-very-secret"
TOKEN = "ghp_abcdef0123456789"
KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n"


def test_from_secret_maps_flux_keys() -> None:
    auth = GitAuth.from_secret({"username": b"bob", "password": PASSWORD.encode(), "ca.crt": b"CA"})
    assert (auth.username, auth.password, auth.ca) == ("bob", PASSWORD, b"CA")
    ssh = GitAuth.from_secret({"identity": KEY, "identity.pub": b"pub", "known_hosts": b"kh", "password": b"pp"})
    assert (ssh.identity, ssh.known_hosts, ssh.identity_passphrase, ssh.password) == (KEY, b"kh", "pp", None)
    assert GitAuth.from_secret({"caFile": b"CA2"}).ca == b"CA2"
    assert GitAuth.from_secret({"bearerToken": TOKEN.encode()}).bearer_token == TOKEN


def test_repr_never_shows_values() -> None:
    auth = GitAuth(username="bob", password=PASSWORD, bearer_token=TOKEN, identity=KEY)
    assert PASSWORD not in repr(auth)
    assert TOKEN not in repr(auth)
    assert "BEGIN" not in repr(auth)
    assert "password" in repr(auth)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"fatal: Authentication failed for 'https://bob:{PASSWORD}@h/r.git/'", "fatal: Authentication failed for 'https://***@h/r.git/'"),
        (f"header: Bearer {TOKEN}", "header: Bearer ***"),
        ("Authorization: Basic " + base64.b64encode(f"bob:{PASSWORD}".encode()).decode(), "Authorization: Basic ***"),
        ("remote: nothing to hide", "remote: nothing to hide"),
        ("see http://user:pw@example.com/x and ssh://git@host/x", "see http://***@example.com/x and ssh://git@host/x"),
    ],
)  # fmt: skip
def test_scrubber_removes_secrets_and_url_passwords(text: str, expected: str) -> None:
    scrub = Scrubber(GitAuth(username="bob", password=PASSWORD, bearer_token=TOKEN).secrets())
    assert scrub(text) == expected


def test_scrubber_removes_private_key_lines() -> None:
    scrub = Scrubber(GitAuth(identity=KEY).secrets())
    assert "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ" not in scrub(KEY.decode())


def test_parse_url_moves_userinfo_out_of_http_urls() -> None:
    remote = parse_url(f"https://bob:{PASSWORD}@git.example.com:8443/org/repo.git")
    assert remote.url == "https://git.example.com:8443/org/repo.git"
    assert (remote.username, remote.password) == ("bob", PASSWORD)
    assert remote.origin == "https://git.example.com:8443/"
    assert parse_url("ssh://git@example.com:2222/org/repo.git").url == "ssh://git@example.com:2222/org/repo.git"
    assert redact_url(f"https://bob:{PASSWORD}@h/x") == "https://***@h/x"


@pytest.mark.parametrize(
    "url", ["ftp://h/x", "git@github.com:org/repo.git", "file:///tmp/x", "https:///nohost", "http://h:99999/x"]
)
def test_parse_url_rejects_unsupported(url: str) -> None:
    with pytest.raises(InvalidSpec):
        parse_url(url)


def test_http_environment_carries_credentials_in_scoped_config_only() -> None:
    with git_environment(f"https://bob:{PASSWORD}@h.example/r.git", GitAuth(ca=b"CA")) as genv:
        assert genv.url == "https://h.example/r.git"
        keys = {
            genv.env[f"GIT_CONFIG_KEY_{i}"]: genv.env[f"GIT_CONFIG_VALUE_{i}"]
            for i in range(int(genv.env["GIT_CONFIG_COUNT"]))
        }
        token = base64.b64encode(f"bob:{PASSWORD}".encode()).decode()
        assert keys["http.https://h.example/.extraHeader"] == f"Authorization: Basic {token}"
        ca = keys["http.https://h.example/.sslCAInfo"]
        assert stat.S_IMODE(os.stat(ca).st_mode) == 0o600
        assert genv.env["GIT_TERMINAL_PROMPT"] == "0"
        assert genv.env["GIT_CONFIG_NOSYSTEM"] == "1"
        assert genv.env["GIT_CONFIG_GLOBAL"] == "/dev/null"
        assert genv.has_credentials
        home = genv.home
    assert not home.exists()


def test_ssh_environment_uses_temp_files_and_strict_checking() -> None:
    auth = GitAuth(identity=KEY, known_hosts=b"[h]:22 ssh-ed25519 AAAA\n", identity_passphrase="pp-secret")
    with git_environment("ssh://git@h/r.git", auth) as genv:
        command = genv.env["GIT_SSH_COMMAND"]
        assert "StrictHostKeyChecking=yes" in command
        assert "IdentitiesOnly=yes" in command
        assert "pp-secret" not in command
        assert "BEGIN" not in command
        identity = command.split(" -i ")[1].split()[0]
        assert stat.S_IMODE(os.stat(identity).st_mode) == 0o600
        assert genv.env["SSH_ASKPASS_REQUIRE"] == "force"
    assert not os.path.exists(identity)


def test_ssh_without_known_hosts_is_refused() -> None:
    with (
        pytest.raises(InvalidAuthSecret, match="known_hosts"),
        git_environment("ssh://git@h/r.git", GitAuth(identity=KEY)),
    ):
        pass


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"fatal: unable to access 'https://{TOKEN}@h/r.git/': error 403", "fatal: unable to access 'https://***@h/r.git/': error 403"),
        (f"submodule url http://{TOKEN}@h:8080/sub", "submodule url http://***@h:8080/sub"),
        (f"https://bob:p@ss{PASSWORD}@h/x", "https://***@h/x"),  # a password holding '@' goes whole
        ("ssh://git:pw@host/x and ssh://git@host/x", "ssh://***@host/x and ssh://git@host/x"),
    ],
)  # fmt: skip
def test_any_url_userinfo_is_redacted(text: str, expected: str) -> None:
    # a token is often the whole userinfo (https://TOKEN@host/); only user:password@ was caught
    assert Scrubber()(text) == expected
    assert redact_url(text) == expected


def test_a_token_used_as_the_user_name_is_a_secret() -> None:
    remote = parse_url(f"https://{TOKEN}@git.example.com/org/repo.git")
    assert (remote.url, remote.username, remote.password) == ("https://git.example.com/org/repo.git", TOKEN, None)
    scrub = Scrubber(GitAuth(username=remote.username).secrets())
    basic = base64.b64encode(f"{TOKEN}:".encode()).decode()
    assert scrub(f"remote: bad credentials {TOKEN}; Authorization: Basic {basic}") == (
        "remote: bad credentials ***; Authorization: Basic ***"
    )
    # next to a password, or too short to be a token, a user name is an account and stays readable
    assert GitAuth(username="bob", password=PASSWORD).secrets().count("bob") == 0
    assert "git" not in GitAuth(username="git").secrets()


def test_invalid_url_messages_do_not_carry_a_token() -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_url(f"https://{TOKEN}@h:99999/x")
    assert TOKEN not in str(caught.value)
    assert "https://***@h:99999/x" in str(caught.value)
