"""Pure: registry credentials — a Secret's ``.dockerconfigjson`` entry for a registry, and the
``WWW-Authenticate`` challenge (RFC 9110 §11.6.1) that says how to use them (Basic, or a Bearer token from a realm).

The client (:mod:`.client`) does the I/O; this module never sees a socket. :class:`Credentials` keeps its
secret out of ``repr`` so a log of the object shows none.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gitops_mesh.oci.errors import InvalidReference
from gitops_mesh.oci.reference import DOCKER_HUB_REGISTRY

DOCKER_CONFIG_KEY = ".dockerconfigjson"
#: A dockerconfigjson is a few entries; a bigger one is not a pull secret.
MAX_DOCKER_CONFIG_BYTES = 1 << 20
_DOCKER_HUB_KEYS = frozenset({"docker.io", "index.docker.io", DOCKER_HUB_REGISTRY})


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user name and a password (or an identity token, sent as the password with ``<token>`` as user)."""

    username: str
    password: str = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> Credentials:
        """``user:password`` (the command line's form)."""
        user, sep, password = text.partition(":")
        if not sep or not user:
            raise ValueError("credentials must be 'user:password'")
        return cls(user, password)

    def basic(self) -> str:
        """The ``Authorization`` value of HTTP Basic."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


class DockerConfigError(ValueError):
    """A ``.dockerconfigjson`` that cannot be read (the message never quotes it)."""


def _host_of(key: str) -> str:
    """A config key (``host``, ``host:port``, ``https://host/v1/``) as the host[:port] it names."""
    if "://" in key:
        return urlsplit(key).netloc.lower()
    return key.split("/", 1)[0].lower()


def docker_config_credentials(data: bytes, registry: str) -> Credentials | None:
    """The credentials for ``registry`` (host[:port]) in a ``.dockerconfigjson``; None when it has no entry for it."""
    if len(data) > MAX_DOCKER_CONFIG_BYTES:
        raise DockerConfigError(f"{DOCKER_CONFIG_KEY} is larger than {MAX_DOCKER_CONFIG_BYTES} bytes")
    try:
        config = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise DockerConfigError(f"{DOCKER_CONFIG_KEY} is not JSON") from e
    auths = config.get("auths") if isinstance(config, dict) else None
    if not isinstance(auths, dict):
        raise DockerConfigError(f"{DOCKER_CONFIG_KEY} has no 'auths' object")
    wanted = registry.lower()
    hub = wanted in _DOCKER_HUB_KEYS
    for key, entry in auths.items():
        host = _host_of(str(key))
        if (host == wanted or (hub and host in _DOCKER_HUB_KEYS)) and isinstance(entry, dict):
            return _entry_credentials(entry, str(host))
    return None


def _entry_credentials(entry: Mapping[str, object], host: str) -> Credentials:
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(password, str) and username:
        return Credentials(username, password)
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode()
        except (binascii.Error, ValueError) as e:
            raise DockerConfigError(
                f"the 'auth' of {host} in {DOCKER_CONFIG_KEY} is not base64 of 'user:password'"
            ) from e
        user, sep, secret = decoded.partition(":")
        if sep and user:
            return Credentials(user, secret)
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        # docker's convention: an identity token is sent as the password of the user "<token>".
        return Credentials("<token>", token)
    raise DockerConfigError(f"the entry of {host} in {DOCKER_CONFIG_KEY} has no usable credentials")


def first_credentials(configs: Iterable[bytes], registry: str) -> Credentials | None:
    """The first of several dockerconfigjsons (a ServiceAccount's imagePullSecrets) with an entry for ``registry``."""
    for data in configs:
        found = docker_config_credentials(data, registry)
        if found is not None:
            return found
    return None


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: the scheme (lowercase) and its parameters (names lowercase)."""

    scheme: str
    params: Mapping[str, str]


_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
#: A challenge header is a line; a longer one is not worth reading.
MAX_CHALLENGE_LENGTH = 8192


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text, self.i = text, 0

    def skip_space(self) -> None:
        while self.i < len(self.text) and self.text[self.i] in " \t":
            self.i += 1

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def token(self) -> str:
        start = self.i
        while self.i < len(self.text) and self.text[self.i] in _TCHAR:
            self.i += 1
        return self.text[start : self.i]

    def bare(self) -> str:
        """An unquoted value: RFC 9110 says a token, registries also write URLs bare; read to the next separator."""
        start = self.i
        while self.i < len(self.text) and self.text[self.i] not in ", \t":
            self.i += 1
        return self.text[start : self.i]

    def quoted(self) -> str:
        self.i += 1  # the opening quote
        out: list[str] = []
        while self.i < len(self.text):
            c = self.text[self.i]
            self.i += 1
            if c == "\\" and self.i < len(self.text):
                out.append(self.text[self.i])
                self.i += 1
            elif c == '"':
                return "".join(out)
            else:
                out.append(c)
        raise ValueError("unterminated quoted string")


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in a ``WWW-Authenticate`` value, in order; unreadable text ends the list (never raises)."""
    s = _Scanner(header[:MAX_CHALLENGE_LENGTH])
    out: list[Challenge] = []
    try:
        while True:
            s.skip_space()
            while s.peek() == ",":
                s.i += 1
                s.skip_space()
            scheme = s.token()
            if not scheme:
                return out
            params: dict[str, str] = {}
            while True:
                s.skip_space()
                mark = s.i
                name = s.token()
                s.skip_space()
                if not name or s.peek() != "=":
                    # The next challenge's scheme (or token68, which registries do not use).
                    s.i = mark
                    break
                s.i += 1
                s.skip_space()
                params[name.lower()] = s.quoted() if s.peek() == '"' else s.bare()
                s.skip_space()
                if s.peek() != ",":
                    break
                s.i += 1
            out.append(Challenge(scheme.lower(), params))
            if s.i == mark and not params:
                s.i += 1
    except ValueError:
        return out


def bearer_scope(repository: str, actions: Iterable[str]) -> str:
    """The token scope that reads (``pull``) or writes (``pull,push``) a repository."""
    return f"repository:{repository}:{','.join(actions)}"


def check_realm(realm: str, *, registry_scheme: str) -> str:
    """A Bearer realm we may send credentials to: http(s) only, and https when the registry is https."""
    parts = urlsplit(realm)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise InvalidReference(f"the registry's token realm {realm[:120]!r} is not an http(s) URL")
    if parts.scheme == "http" and registry_scheme == "https":
        raise InvalidReference(f"the registry's token realm {realm[:120]!r} is plain http while the registry is https")
    return realm
