"""Helm repositories over HTTP(S): credentials and TLS from Secrets, Helm's URL rules, capped and hashed downloads."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp
from yarl import URL

from gitops_mesh.artifacts.errors import StorageError
from gitops_mesh.errors import InvalidSpec
from gitops_mesh.http_headers import parse_retry_after
from gitops_mesh.tls import InvalidTLSMaterial, tls_context
from source_controller.helm.errors import InvalidRepositoryAuth, RepositoryAuthFailed, RepositoryFetchFailed

#: HelmRepository spec.timeout default.
DEFAULT_TIMEOUT: Final = 60.0
USER_AGENT: Final = "gitops-mesh-source-controller"
_CHUNK = 1 << 16
_SCHEMES = ("http", "https")


@dataclass(frozen=True, repr=False)
class Credentials:
    """Basic auth for a repository; ``repr`` never shows the password."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***')"


@dataclass(frozen=True, repr=False)
class ClientCert:
    """A PEM client certificate and its key, for mutual TLS."""

    cert: bytes
    key: bytes

    def __repr__(self) -> str:
        return "ClientCert(***)"


@dataclass(frozen=True, repr=False)
class RepositoryAuth:
    """Everything a HelmRepository's Secrets say about reaching it."""

    credentials: Credentials | None = None
    ca: bytes | None = None
    client_cert: ClientCert | None = None
    pass_credentials: bool = False

    def __repr__(self) -> str:
        return (
            f"RepositoryAuth(credentials={self.credentials!r}, ca={'set' if self.ca else None}, "
            f"client_cert={'set' if self.client_cert else None}, pass_credentials={self.pass_credentials})"
        )

    @classmethod
    def from_secrets(
        cls,
        secret: Mapping[str, bytes] | None = None,
        cert_secret: Mapping[str, bytes] | None = None,
        *,
        pass_credentials: bool = False,
    ) -> RepositoryAuth:
        """Read ``secretRef`` and ``certSecretRef`` data (already base64-decoded) the way Flux does."""
        secret = secret or {}
        username = secret.get("username") or b""
        password = secret.get("password") or b""
        credentials = None
        if username or password:
            if not (username and password):
                raise InvalidRepositoryAuth("invalid secretRef data: required fields 'username' and 'password'")
            credentials = Credentials(username.decode(), password.decode())
        if cert_secret is not None:
            cert, key, ca = cert_secret.get("tls.crt"), cert_secret.get("tls.key"), cert_secret.get("ca.crt")
            where = "certSecretRef"
        else:
            cert, key, ca = secret.get("certFile"), secret.get("keyFile"), secret.get("caFile")
            where = "secretRef"
        if bool(cert) != bool(key):
            raise InvalidRepositoryAuth(
                f"invalid {where} data: a client certificate needs both its certificate and key"
            )
        client_cert = ClientCert(cert, key) if cert and key else None
        return cls(credentials, ca or None, client_cert, pass_credentials)


@dataclass(frozen=True, slots=True)
class Downloaded:
    """What a download wrote: its size and the hex sha256 of its bytes."""

    size: int
    sha256: str


def parse_repository_url(url: str) -> URL:
    """The repository URL, checked: http(s) with a host (OCI repositories are not fetched)."""
    try:
        parsed = URL(url)
    except ValueError as e:
        raise InvalidSpec(f"invalid Helm repository URL {url!r}: {e}", reason="URLInvalid") from e
    if parsed.scheme not in _SCHEMES or not parsed.host:
        raise InvalidSpec(
            f"invalid Helm repository URL {display_url(parsed)}: the scheme must be http or https", reason="URLInvalid"
        )
    return parsed


def index_url(url: str) -> URL:
    """``<url>/index.yaml``, whether or not the URL ends in a slash; the query string is kept."""
    base = parse_repository_url(url)
    return base.with_path(base.path.rstrip("/") + "/index.yaml", keep_query=True)


def chart_url(repo_url: str, reference: str) -> URL:
    """Resolve a chart URL from the index against the repository URL, as Helm does."""
    try:
        ref = URL(reference)
    except ValueError as e:
        raise RepositoryFetchFailed(f"invalid chart URL {reference!r} in the index: {e}", url=reference) from e
    if ref.is_absolute():
        if ref.scheme not in _SCHEMES:
            raise RepositoryFetchFailed(
                f"chart URL {display_url(ref)} in the index is not http or https", url=display_url(ref)
            )
        return ref
    base = parse_repository_url(repo_url)
    base = base.with_path(base.path.rstrip("/") + "/", keep_query=True)
    resolved = base.join(ref)
    if not ref.query_string and base.query_string:
        resolved = resolved.with_query(base.query_string)
    return resolved


def sends_credentials(repo_url: str, target: URL, *, pass_credentials: bool) -> bool:
    """Helm's getter rule: credentials go to the repository's own origin, elsewhere only when passed on."""
    return pass_credentials or parse_repository_url(repo_url).origin() == target.origin()


def display_url(url: URL | str) -> str:
    """A URL safe for messages and logs: no user info, no query (it may hold a token)."""
    try:
        parsed = url if isinstance(url, URL) else URL(url)
        return str(parsed.with_user(None).with_query(None).with_fragment(None))
    except ValueError:
        return "<invalid URL>"


def ssl_context(ca: bytes | None, client_cert: ClientCert | None) -> ssl.SSLContext | bool:
    """True (default verification) without TLS material, else a context with the CA added to the system roots."""
    if ca is None and client_cert is None:
        return True
    return _ssl_context(ca, client_cert.cert if client_cert else None, client_cert.key if client_cert else None)


def _ssl_context(ca: bytes | None, cert: bytes | None, key: bytes | None) -> ssl.SSLContext:
    try:
        return tls_context(ca, cert, key)
    except InvalidTLSMaterial as e:
        raise InvalidRepositoryAuth(str(e)) from e


def _status_error(resp: aiohttp.ClientResponse, what: str, shown: str) -> RepositoryFetchFailed:
    status = resp.status
    phrase = f"HTTP {status} {resp.reason or ''}".rstrip()
    if status in (401, 403):
        hint = "check the username and password in secretRef" if status == 401 else "access denied"
        return RepositoryAuthFailed(f"{what} {shown}: {phrase}: {hint}", url=shown, status=status)
    if status == 404:
        return RepositoryFetchFailed(f"{what} not found at {shown} ({phrase})", url=shown, status=status)
    return RepositoryFetchFailed(
        f"{what} {shown}: {phrase}",
        url=shown,
        status=status,
        retry_after=parse_retry_after(resp.headers.get("Retry-After")),
    )


async def download(
    session: aiohttp.ClientSession,
    url: URL,
    dest: Path,
    *,
    auth: Credentials | None,
    ssl: ssl.SSLContext | bool,
    timeout: float,
    max_size: int,
    what: str,
    too_large: Callable[[int], Exception],
) -> Downloaded:
    """Stream ``url`` into ``dest``, hashing as it goes; more than ``max_size`` bytes raises ``too_large(seen)``."""
    shown = display_url(url)
    headers = {"User-Agent": USER_AGENT}
    if auth is not None:
        # aiohttp drops this header when a redirect leaves the origin.
        headers["Authorization"] = aiohttp.encode_basic_auth(auth.username, auth.password)
    hasher = hashlib.sha256()
    size = 0
    try:
        async with session.get(
            url,
            ssl=ssl,
            timeout=aiohttp.ClientTimeout(total=timeout),
            headers=headers,
        ) as resp:
            if resp.status != 200:
                raise _status_error(resp, what, shown)
            if resp.content_length is not None and resp.content_length > max_size:
                raise too_large(resp.content_length)
            with dest.open("wb") as out:
                # Page-cache writes of 64 KiB cost less than a hop to a thread per chunk.
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    size += len(chunk)
                    if size > max_size:
                        raise too_large(size)
                    hasher.update(chunk)
                    out.write(chunk)
    except TimeoutError as e:
        raise RepositoryFetchFailed(f"{what} {shown}: timed out after {timeout:g}s", url=shown) from e
    except aiohttp.ClientConnectorCertificateError as e:
        raise RepositoryFetchFailed(
            f"{what} {shown}: TLS certificate verification failed ({e.certificate_error}); "
            "is the repository's CA in certSecretRef ca.crt?",
            url=shown,
        ) from e
    except aiohttp.ClientSSLError as e:
        raise RepositoryFetchFailed(f"{what} {shown}: TLS error: {e}", url=shown) from e
    except aiohttp.ClientConnectorError as e:
        raise RepositoryFetchFailed(
            f"{what} {shown}: cannot connect to {e.host}:{e.port}: {e.strerror or e.os_error}", url=shown
        ) from e
    except aiohttp.TooManyRedirects as e:
        raise RepositoryFetchFailed(f"{what} {shown}: too many redirects", url=shown) from e
    except aiohttp.InvalidURL as e:
        raise RepositoryFetchFailed(f"{what} {shown}: invalid URL (or redirect to one)", url=shown) from e
    except aiohttp.ClientError as e:
        raise RepositoryFetchFailed(f"{what} {shown}: {type(e).__name__}: {e}", url=shown) from e
    except OSError as e:
        raise StorageError(f"cannot write {what} to {dest}: {e.strerror or e}") from e
    return Downloaded(size=size, sha256=hasher.hexdigest())
