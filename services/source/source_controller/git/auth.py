"""Git credentials from a Secret, turned into a process environment that never puts a secret in argv."""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from gitops_mesh import commands
from gitops_mesh.errors import InvalidSpec
from source_controller.git import attributes
from source_controller.git.errors import InvalidAuthSecret

SCHEMES = ("http", "https", "ssh")
REDACTED = commands.REDACTED
# Proxy settings the controller's own environment may carry; git honours them like Flux does.
_PASSTHROUGH = (
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
)
# A user name without a password shorter than this is a name, not a token: scrubbing it would garble messages.
_TOKEN_MIN = 8
# Prints the SSH key passphrase from the environment; the script itself holds no secret.
_ASKPASS = '#!/bin/sh\nprintf "%s\\n" "$GITOPS_MESH_SSH_PASSPHRASE"\n'


@dataclass(frozen=True, repr=False)
class GitAuth:
    """Credentials for one remote; ``repr`` never shows a value."""

    username: str | None = None
    password: str | None = None
    bearer_token: str | None = None
    identity: bytes | None = None
    #: the ``password`` key when ``identity`` is set: the private key's passphrase
    identity_passphrase: str | None = None
    known_hosts: bytes | None = None
    ca: bytes | None = None

    @classmethod
    def from_secret(cls, data: Mapping[str, bytes] | None) -> GitAuth:
        """Read Flux's keys from a Secret's (decoded) data: username, password, bearerToken, identity,
        known_hosts, ca.crt (or caFile); ``identity.pub`` is not needed."""
        data = data or {}

        def text(key: str) -> str | None:
            value = data.get(key)
            return value.decode() if value else None

        identity = data.get("identity") or None
        return cls(
            username=text("username"),
            password=None if identity else text("password"),
            bearer_token=text("bearerToken"),
            identity=identity,
            identity_passphrase=text("password") if identity else None,
            known_hosts=data.get("known_hosts") or None,
            ca=data.get("ca.crt") or data.get("caFile") or None,
        )

    def secrets(self) -> list[str]:
        """Every value that must never be shown, including the encodings git or a server might echo.

        A user name without a password is itself the credential (``https://TOKEN@host/``, a token as the
        user), so it is a secret too; next to a password it is an account name and stays readable.
        """
        values = [v for v in (self.password, self.bearer_token, self.identity_passphrase) if v]
        if self.username and not self.password and not self.identity and len(self.username) >= _TOKEN_MIN:
            values.append(self.username)
        if self.username or self.password:
            values.append(_basic_token(self.username or "", self.password or ""))
        if self.identity:
            values.extend(line for line in self.identity.decode(errors="replace").splitlines() if len(line) > 8)
        return values

    def __repr__(self) -> str:
        shown = [k for k, v in vars(self).items() if v]
        return f"GitAuth(<{', '.join(shown) or 'anonymous'}>)"


def _basic_token(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


class Scrubber:
    """Removes secrets and URL userinfo from text before it reaches a log, an event or a status."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # longest first, so a secret containing another is replaced whole
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return commands.redact_userinfo(text)


def redact_url(url: str) -> str:
    """The URL with its userinfo (``user:password@``, or a token as the user) replaced, for messages."""
    return commands.redact_userinfo(url)


@dataclass(frozen=True)
class RemoteURL:
    """A remote URL split into what git may see in argv and the credentials it must not."""

    url: str
    scheme: str
    origin: str
    username: str | None = None
    password: str | None = None


def parse_url(url: str) -> RemoteURL:
    """Validate the scheme and take ``user:password@`` out of an HTTP(S) URL (SSH keeps its user)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise InvalidSpec(f"invalid URL {redact_url(url)!r}: {e}") from e
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES or not parts.hostname:
        raise InvalidSpec(f"unsupported URL {redact_url(url)!r}: expected http://, https:// or ssh://host/path")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    hostport = f"{host}:{port}" if port else host
    origin = f"{scheme}://{hostport}/"
    if scheme == "ssh":
        netloc = f"{parts.username}@{hostport}" if parts.username else hostport
        return RemoteURL(urlunsplit(SplitResult(scheme, netloc, parts.path, "", "")), scheme, origin)
    clean = urlunsplit(SplitResult(scheme, hostport, parts.path, parts.query, ""))
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return RemoteURL(clean, scheme, origin, user, password)


@dataclass
class GitEnv:
    """What a git subprocess runs with: a credential-free URL, its environment, and the scrubber for output."""

    url: str
    env: dict[str, str]
    scrub: Scrubber
    has_credentials: bool
    home: Path
    _config: list[tuple[str, str]] = field(default_factory=list)

    def with_config(self, key: str, value: str) -> None:
        """Add a git config entry through GIT_CONFIG_KEY_n/VALUE_n (never ``-c`` on the command line)."""
        self._config.append((key, value))
        self.env["GIT_CONFIG_COUNT"] = str(len(self._config))
        n = len(self._config) - 1
        self.env[f"GIT_CONFIG_KEY_{n}"] = key
        self.env[f"GIT_CONFIG_VALUE_{n}"] = value


def _write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def base_env(home: Path) -> dict[str, str]:
    """A clean git environment: no prompts, no system or global config, protocols limited to http(s) and ssh."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C",
        "LC_ALL": "C",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_ALLOW_PROTOCOL": "http:https:ssh",
        "GIT_SSH_VARIANT": "ssh",
        "GIT_SSH_COMMAND": "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes "
        "-o UserKnownHostsFile=/dev/null -o GlobalKnownHostsFile=/dev/null",
    }
    env.update({k: os.environ[k] for k in _PASSTHROUGH if k in os.environ})
    return env


@contextmanager
def git_environment(url: str, auth: GitAuth | None = None, *, connect_timeout: float = 30.0) -> Iterator[GitEnv]:
    """Temp files (0600) and env for talking to ``url`` with ``auth``; everything is removed on exit.

    HTTP(S): an ``Authorization`` header scoped to the URL's origin (``http.<origin>.extraHeader``) and the CA
    (``http.<origin>.sslCAInfo``), both through GIT_CONFIG_* variables. SSH: the identity and known_hosts in
    temp files named by GIT_SSH_COMMAND, strict host key checking, and the key passphrase via SSH_ASKPASS.
    """
    remote = parse_url(url)
    auth = auth or GitAuth()
    if remote.username or remote.password:
        auth = GitAuth(
            username=auth.username or remote.username,
            password=auth.password or remote.password,
            bearer_token=auth.bearer_token,
            identity=auth.identity,
            identity_passphrase=auth.identity_passphrase,
            known_hosts=auth.known_hosts,
            ca=auth.ca,
        )
    tmp = Path(tempfile.mkdtemp(prefix="gitops-git-"))
    try:
        home = tmp / "home"
        home.mkdir(mode=0o700)
        genv = GitEnv(remote.url, base_env(home), Scrubber(auth.secrets()), False, home)
        # every repository git creates (the fetched one, its submodules) ignores the commit's .gitattributes
        genv.env["GIT_TEMPLATE_DIR"] = str(attributes.template(tmp))
        if remote.scheme in ("http", "https"):
            _http(genv, remote, auth, tmp)
        else:
            _ssh(genv, remote, auth, tmp, connect_timeout)
        yield genv
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _http(genv: GitEnv, remote: RemoteURL, auth: GitAuth, tmp: Path) -> None:
    if auth.bearer_token:
        genv.with_config(f"http.{remote.origin}.extraHeader", f"Authorization: Bearer {auth.bearer_token}")
        genv.has_credentials = True
    elif auth.username or auth.password:
        token = _basic_token(auth.username or "", auth.password or "")
        genv.with_config(f"http.{remote.origin}.extraHeader", f"Authorization: Basic {token}")
        genv.has_credentials = True
    if auth.ca:
        ca = _write(tmp / "ca.crt", auth.ca)
        genv.with_config(f"http.{remote.origin}.sslCAInfo", str(ca))


def _ssh(genv: GitEnv, remote: RemoteURL, auth: GitAuth, tmp: Path, connect_timeout: float) -> None:
    if not auth.known_hosts:
        raise InvalidAuthSecret(
            f"{remote.url} is an SSH URL: the Secret must hold known_hosts with the server's host key "
            "(strict host key checking is always on; get it with ssh-keyscan)"
        )
    known_hosts = _write(tmp / "known_hosts", auth.known_hosts)
    options = [
        "ssh",
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "PasswordAuthentication=no",
        "-o",
        "KbdInteractiveAuthentication=no",
        "-o",
        f"ConnectTimeout={max(1, int(connect_timeout))}",
    ]
    if auth.identity:
        key = auth.identity if auth.identity.endswith(b"\n") else auth.identity + b"\n"
        options += ["-i", str(_write(tmp / "identity", key))]
        genv.has_credentials = True
    else:
        options += ["-o", "IdentityFile=none"]
    if auth.identity_passphrase:
        # BatchMode would refuse to ask for the passphrase; SSH_ASKPASS_REQUIRE=force asks the helper instead
        genv.env["SSH_ASKPASS"] = str(_write(tmp / "askpass", _ASKPASS.encode(), 0o700))
        genv.env["SSH_ASKPASS_REQUIRE"] = "force"
        genv.env["GITOPS_MESH_SSH_PASSPHRASE"] = auth.identity_passphrase
    else:
        options += ["-o", "BatchMode=yes"]
    genv.env["GIT_SSH_COMMAND"] = shlex.join(options)
