"""An asynchronous client of one OCI registry (distribution API v2) over the process's aiohttp session.

    client = RegistryClient(http, "ghcr.io", credentials=creds, transport=Transport(ssl=tls_context(ca)))
    desc = await client.resolve(repo, "v1.2.3")             # HEAD: the manifest's digest, nothing downloaded
    manifest = await client.manifest(repo, desc.digest)     # GET, capped, digest checked, media type checked
    await client.fetch_blob(repo, manifest.layers[0], path)  # streamed to disk, size capped, digest checked
    tags = await client.tags(repo)                          # every page of tags/list
    await client.push_blob(repo, data); await client.push_manifest(repo, "v1", manifest_bytes)

What it decides:

* **Auth**: a request goes out anonymous (or with what the registry asked for before); a 401's
  ``WWW-Authenticate`` says Basic (the credentials, if any) or Bearer (a token from the realm, fetched with
  the credentials as Basic, or anonymously, for the repository's ``pull`` or ``pull,push`` scope), and the
  request is sent once more. Tokens are kept per scope for the client's life (one reconcile, one push), and
  in an :class:`AuthCache` the process shares between its clients until they expire.
  A realm must be http(s), and https when the registry is.
* **Transport**: ``https://`` unless :attr:`Transport.insecure` (Flux's ``spec.insecure``: plain HTTP).
  Unlike go-containerregistry, loopback hosts get no plain-HTTP exception: a tenant's URL reaches plain HTTP
  only when the spec says so. Custom CAs and client certificates come as an SSL context (:mod:`.tls`); a
  proxy (with its own credentials) per client.
* **Redirects** (blob GETs answered with a 307 to object storage) are followed by hand, at most
  ``max_redirects``: the Authorization header goes only to the registry's own origin, and never from
  https down to http.
* **Caps**: manifests, tokens, error bodies and tag pages are read up to their caps and refused past them;
  a blob larger than the caller's cap is refused before a byte is read, and one longer than its descriptor
  says stops being read there. Every request has connect and read timeouts; a caller bounds a whole
  operation with ``asyncio.timeout``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import aiofiles
import aiofiles.os
import aiohttp
import orjson
from aiofiles.threadpool.binary import AsyncBufferedIOBase

from gitops_mesh.artifacts.digests import new_hasher, parse_digest
from gitops_mesh.http_headers import parse_retry_after
from gitops_mesh.oci.auth import Credentials, bearer_scope, check_realm, parse_challenges
from gitops_mesh.oci.errors import (
    BlobInvalid,
    InvalidManifest,
    ManifestNotFound,
    RegistryAuthFailed,
    RegistryUnavailable,
    TooLarge,
    UnexpectedAnswer,
)
from gitops_mesh.oci.manifest import (
    DEFAULT_MAX_MANIFEST_BYTES,
    MANIFEST_ACCEPT,
    Descriptor,
    Manifest,
    parse_manifest,
)
from gitops_mesh.oci.reference import Repository, check_reference, is_digest

PULL = ("pull",)
PUSH = ("pull", "push")
_BLOCK = 1 << 16


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client reads at most; a caller sets ``max_blob_bytes`` to what it is willing to store."""

    max_manifest_bytes: int = DEFAULT_MAX_MANIFEST_BYTES
    max_blob_bytes: int = 1 << 30
    max_token_bytes: int = 1 << 20
    #: tags across all pages of one listing, and the pages themselves
    max_tags: int = 100_000
    max_tag_pages: int = 200
    #: tags asked for per page (``n``); the registry may answer fewer and link the next page
    tag_page_size: int = 1000
    max_redirects: int = 5
    #: what is read of an error answer to quote its code (never more: it is the registry's text)
    max_error_bytes: int = 4096


@dataclass(frozen=True, slots=True)
class Transport:
    """How to reach the registry: plain HTTP or TLS (``ssl``: a context from :func:`.tls.tls_context`), a proxy."""

    insecure: bool = False
    ssl: ssl.SSLContext | None = None
    proxy: str | None = None
    proxy_auth: aiohttp.BasicAuth | None = field(default=None, repr=False)
    #: seconds to connect, and between two reads of an answer
    timeout: float = 60.0


class AuthCache:
    """What a registry accepted (a Basic header, a Bearer token until it expires), shared by the clients of one
    process: the periodic HEAD of a thousand objects then goes out authenticated at once, instead of a 401 and
    a token request each time. Entries are per registry, scope and credentials (a digest of them, never them),
    bounded in number; tokens are dropped ``margin`` seconds before the ``expires_in`` their realm gave
    (default 60 s, as the distribution token spec has it).
    """

    def __init__(
        self, max_entries: int = 4096, margin: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: OrderedDict[tuple[str, str, str], tuple[str, float]] = OrderedDict()
        self.max_entries, self.margin, self.clock = max_entries, margin, clock

    def get(self, key: tuple[str, str, str]) -> str | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[1] <= self.clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return found[0]

    def put(self, key: tuple[str, str, str], authorization: str, ttl: float | None) -> None:
        expires = self.clock() + max(0.0, ttl - self.margin) if ttl is not None else float("inf")
        self._entries[key] = (authorization, expires)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def _describe(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "timed out"
    return str(e) or type(e).__name__


class RegistryClient:
    """One registry, one set of credentials and one transport; cheap to make (one per reconcile or push)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        registry: str,
        *,
        credentials: Credentials | None = None,
        transport: Transport | None = None,
        limits: Limits | None = None,
        auth_cache: AuthCache | None = None,
    ) -> None:
        self._session = session
        self._cache = auth_cache
        self.registry = registry
        self.transport = transport or Transport()
        self.limits = limits or Limits()
        self._credentials = credentials
        who = credentials.basic() if credentials is not None else ""
        self._who = hashlib.sha256(who.encode()).hexdigest()[:32] if who else ""
        self.scheme = "http" if self.transport.insecure else "https"
        self.base = f"{self.scheme}://{registry}"
        #: the Authorization value that worked per scope ("" key: Basic, for every scope)
        self._authorizations: dict[str, str] = {}
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=self.transport.timeout, sock_read=self.transport.timeout
        )

    # Reading

    async def ping(self) -> None:
        """The registry answers ``/v2/`` (authenticating if it asks): a HelmRepository of type oci is Ready then."""
        async with self._send("GET", f"{self.base}/v2/", scope=None) as resp:
            await self._expect(resp, (200,), "the registry's API root /v2/")

    async def resolve(self, repo: Repository, reference: str) -> Descriptor:
        """The manifest ``reference`` (a tag or digest) names, by HEAD; a GET when the HEAD gives no digest."""
        url = self._manifest_url(repo, reference)
        async with self._send("HEAD", url, scope=repo, headers={"Accept": MANIFEST_ACCEPT}) as resp:
            await self._expect(resp, (200,), f"manifest {repo}:{reference}", not_found=ManifestNotFound)
            digest = resp.headers.get("Docker-Content-Digest", "")
            media_type = resp.headers.get("Content-Type", "").split(";", 1)[0].strip()
            size = resp.content_length
        if is_digest(digest) and size is not None and media_type:
            if is_digest(reference) and digest != reference:
                raise InvalidManifest(f"the registry answered {digest} for manifest {repo}@{reference}")
            return Descriptor(media_type, digest, size)
        _, descriptor = await self._manifest_bytes(repo, reference)
        return descriptor

    async def manifest(self, repo: Repository, reference: str) -> Manifest:
        """The single-image manifest ``reference`` names, checked (:func:`.manifest.parse_manifest`)."""
        data, descriptor = await self._manifest_bytes(repo, reference)
        return parse_manifest(data, descriptor)

    async def manifest_bytes(self, repo: Repository, reference: str) -> tuple[bytes, Descriptor]:
        """The raw manifest (any media type, e.g. a signature's) and its descriptor, digest checked."""
        return await self._manifest_bytes(repo, reference)

    async def _manifest_bytes(self, repo: Repository, reference: str) -> tuple[bytes, Descriptor]:
        url = self._manifest_url(repo, reference)
        what = f"manifest {repo}:{reference}"
        async with self._send("GET", url, scope=repo, headers={"Accept": MANIFEST_ACCEPT}) as resp:
            await self._expect(resp, (200,), what, not_found=ManifestNotFound)
            media_type = resp.headers.get("Content-Type", "").split(";", 1)[0].strip()
            if media_type.startswith("text/html"):
                raise UnexpectedAnswer(f"{what}: the registry answered an HTML page, not a manifest", status=200)
            data = await self._read_capped(resp, self.limits.max_manifest_bytes, what)
            served = resp.headers.get("Docker-Content-Digest", "")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        expected = reference if is_digest(reference) else served
        if expected and expected.startswith("sha256:") and expected != digest:
            raise InvalidManifest(f"{what}: the content's digest is {digest}, not {expected}")
        if expected.startswith("sha512:"):
            got512 = "sha512:" + hashlib.sha512(data).hexdigest()
            if got512 != expected:
                raise InvalidManifest(f"{what}: the content's digest is {got512}, not {expected}")
            digest = got512
        return data, Descriptor(media_type, digest, len(data))

    async def tags(self, repo: Repository) -> list[str]:
        """Every tag of ``repo`` (all pages of ``tags/list``, following ``Link: <...>; rel="next"``)."""
        url: str | None = f"{self.base}/v2/{repo.name}/tags/list?n={self.limits.tag_page_size}"
        out: list[str] = []
        pages = 0
        while url is not None:
            pages += 1
            if pages > self.limits.max_tag_pages:
                raise TooLarge(f"the tags of {repo} span more than {self.limits.max_tag_pages} pages")
            async with self._send("GET", url, scope=repo) as resp:
                await self._expect(resp, (200,), f"the tags of {repo}", not_found=ManifestNotFound)
                data = await self._read_capped(resp, self.limits.max_manifest_bytes, f"the tags of {repo}")
                link = resp.headers.get("Link")
            try:
                doc = orjson.loads(data)
            except orjson.JSONDecodeError as e:
                raise UnexpectedAnswer(f"the tags of {repo}: the answer is not JSON", status=200) from e
            tags = doc.get("tags") if isinstance(doc, dict) else None
            if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
                raise UnexpectedAnswer(f"the tags of {repo}: 'tags' is not a list of strings", status=200)
            out.extend(tags or ())
            if len(out) > self.limits.max_tags:
                raise TooLarge(f"{repo} has more than {self.limits.max_tags} tags")
            url = self._next_page(url, link)
        return out

    def _next_page(self, current: str, link: str | None) -> str | None:
        if not link:
            return None
        for part in link.split(","):
            target, _, params = part.partition(";")
            if "next" not in params.replace(" ", "").replace('"', ""):
                continue
            target = target.strip()
            if target.startswith("<") and target.endswith(">"):
                url = urljoin(current, target[1:-1])
                # The next page is the registry's own: never a request with our credentials elsewhere.
                return url if _origin(url) == _origin(self.base) else None
        return None

    async def fetch_blob(self, repo: Repository, descriptor: Descriptor, dest: Path) -> None:
        """Download a blob to ``dest`` (created 0600, removed again on any failure): size and digest checked."""
        if descriptor.size > self.limits.max_blob_bytes:
            raise TooLarge(
                f"blob {descriptor.digest} of {repo} is {descriptor.size} bytes, over the limit of "
                f"{self.limits.max_blob_bytes}"
            )
        try:
            out = await aiofiles.open(dest, "xb", opener=lambda p, f: os.open(p, f, 0o600))
            try:
                await self._download_blob(repo, descriptor, out)
            finally:
                await out.close()
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                await aiofiles.os.unlink(dest)
            raise

    async def _download_blob(self, repo: Repository, descriptor: Descriptor, out: AsyncBufferedIOBase) -> None:
        algo, expected = parse_digest(descriptor.digest)
        hasher = new_hasher(algo)
        url = f"{self.base}/v2/{repo.name}/blobs/{descriptor.digest}"
        size = 0
        async with self._follow("GET", url, scope=repo) as resp:
            await self._expect(resp, (200,), f"blob {descriptor.digest} of {repo}", not_found=BlobInvalid)
            try:
                async for block in resp.content.iter_chunked(_BLOCK):
                    size += len(block)
                    if size > descriptor.size:
                        raise BlobInvalid(
                            f"blob {descriptor.digest} of {repo} is longer than the {descriptor.size} bytes "
                            "its descriptor says"
                        )
                    hasher.update(block)
                    await out.write(block)
            except (aiohttp.ClientError, TimeoutError) as e:
                raise RegistryUnavailable(f"reading blob {descriptor.digest} of {repo}: {_describe(e)}") from e
        if size != descriptor.size or hasher.hexdigest() != expected:
            raise BlobInvalid(
                f"blob {descriptor.digest} of {repo} does not match its descriptor "
                f"(got {size} bytes, {algo}:{hasher.hexdigest()})"
            )

    async def small_blob(self, repo: Repository, descriptor: Descriptor, cap: int) -> bytes:
        """A small blob (a config, a signature payload) read into memory: capped, size and digest checked."""
        if descriptor.size > cap:
            raise TooLarge(f"blob {descriptor.digest} of {repo} is {descriptor.size} bytes, over the limit of {cap}")
        url = f"{self.base}/v2/{repo.name}/blobs/{descriptor.digest}"
        what = f"blob {descriptor.digest} of {repo}"
        async with self._follow("GET", url, scope=repo) as resp:
            await self._expect(resp, (200,), what, not_found=BlobInvalid)
            data = await self._read_capped(resp, descriptor.size, what)
        algo, expected = parse_digest(descriptor.digest)
        hasher = new_hasher(algo)
        hasher.update(data)
        if len(data) != descriptor.size or hasher.hexdigest() != expected:
            raise BlobInvalid(f"{what} does not match its descriptor")
        return data

    # Writing

    async def blob_exists(self, repo: Repository, digest: str) -> bool:
        async with self._send("HEAD", f"{self.base}/v2/{repo.name}/blobs/{digest}", scope=repo, actions=PUSH) as resp:
            if resp.status == 404:
                return False
            await self._expect(resp, (200,), f"blob {digest} of {repo}")
            return True

    async def push_blob(self, repo: Repository, data: bytes, media_type: str) -> Descriptor:
        """Upload ``data`` (monolithic: POST then PUT) unless the registry has it; its descriptor."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        descriptor = Descriptor(media_type, digest, len(data))
        if await self.blob_exists(repo, digest):
            return descriptor
        start = f"{self.base}/v2/{repo.name}/blobs/uploads/"
        async with self._send("POST", start, scope=repo, actions=PUSH) as resp:
            await self._expect(resp, (202,), f"starting an upload to {repo}")
            location = resp.headers.get("Location")
        if not location:
            raise UnexpectedAnswer(f"starting an upload to {repo}: the registry gave no Location", status=202)
        target = urljoin(start, location)
        if _origin(target) != _origin(self.base):
            raise UnexpectedAnswer(f"starting an upload to {repo}: the upload location is on another host")
        target += ("&" if "?" in target else "?") + f"digest={digest}"
        headers = {"Content-Type": "application/octet-stream"}
        async with self._send("PUT", target, scope=repo, actions=PUSH, headers=headers, data=data) as resp:
            await self._expect(resp, (201,), f"uploading blob {digest} to {repo}")
        return descriptor

    async def push_manifest(self, repo: Repository, reference: str, data: bytes, media_type: str) -> Descriptor:
        """PUT a manifest under a tag (or its digest); its descriptor."""
        url = self._manifest_url(repo, reference)
        async with self._send(
            "PUT", url, scope=repo, actions=PUSH, headers={"Content-Type": media_type}, data=data
        ) as resp:
            await self._expect(resp, (201,), f"pushing manifest {repo}:{reference}")
        return Descriptor(media_type, "sha256:" + hashlib.sha256(data).hexdigest(), len(data))

    # The HTTP edge

    def _manifest_url(self, repo: Repository, reference: str) -> str:
        return f"{self.base}/v2/{repo.name}/manifests/{check_reference(reference)}"

    def _request_kwargs(self) -> dict[str, object]:
        kwargs: dict[str, object] = {"allow_redirects": False, "timeout": self._timeout}
        if self.transport.ssl is not None and not self.transport.insecure:
            kwargs["ssl"] = self.transport.ssl
        if self.transport.proxy:
            kwargs["proxy"] = self.transport.proxy
            if self.transport.proxy_auth is not None:
                kwargs["proxy_auth"] = self.transport.proxy_auth
        return kwargs

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], data: bytes | None
    ) -> aiohttp.ClientResponse:
        try:
            return await self._session.request(method, url, headers=dict(headers), data=data, **self._request_kwargs())  # type: ignore[arg-type]
        except (aiohttp.ClientError, TimeoutError) as e:
            raise RegistryUnavailable(f"{method} {_shown(url)}: {_describe(e)}") from e

    @contextlib.asynccontextmanager
    async def _send(
        self,
        method: str,
        url: str,
        *,
        scope: Repository | None,
        actions: Iterable[str] = PULL,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request to the registry, authenticated as its 401 asks (once), its answer released after use."""
        key = bearer_scope(scope.name, actions) if scope is not None else "registry:catalog:*"
        resp: aiohttp.ClientResponse | None = None
        for attempt in range(2):
            sent = dict(headers or {})
            authorization = self._authorization(key)
            if authorization:
                sent["Authorization"] = authorization
            resp = await self._request(method, url, sent, data)
            if resp.status != 401 or attempt == 1:
                break
            try:
                renewed = await self._authenticate(resp.headers.get("WWW-Authenticate", ""), key, authorization)
            except BaseException:
                resp.release()
                raise
            if not renewed:
                # Nothing new to try: the 401 itself is the answer.
                break
            resp.release()
        assert resp is not None
        try:
            yield resp
        finally:
            resp.release()

    @contextlib.asynccontextmanager
    async def _follow(self, method: str, url: str, *, scope: Repository) -> AsyncIterator[aiohttp.ClientResponse]:
        """As :meth:`_send`, following redirects: credentials only to the registry's origin, never https → http."""
        async with contextlib.AsyncExitStack() as stack:
            resp = await stack.enter_async_context(self._send(method, url, scope=scope))
            for _ in range(self.limits.max_redirects):
                if resp.status not in (301, 302, 303, 307, 308):
                    break
                location = resp.headers.get("Location")
                if not location:
                    raise UnexpectedAnswer(f"{method} {_shown(url)}: a redirect without Location", status=resp.status)
                target = urljoin(url, location)
                if urlsplit(target).scheme not in ("http", "https"):
                    raise UnexpectedAnswer(f"{method} {_shown(url)}: a redirect to a non-HTTP URL")
                if urlsplit(url).scheme == "https" and urlsplit(target).scheme == "http":
                    raise UnexpectedAnswer(f"{method} {_shown(url)}: a redirect from https down to http")
                if _origin(target) == _origin(self.base):
                    resp = await stack.enter_async_context(self._send(method, target, scope=scope))
                else:
                    # Object storage behind a registry: its URL carries its own signature, never our credentials.
                    redirected = await self._request(method, target, {}, None)
                    stack.callback(redirected.release)
                    resp = redirected
                url = target
            else:
                if resp.status in (301, 302, 303, 307, 308):
                    raise UnexpectedAnswer(f"{method}: more than {self.limits.max_redirects} redirects")
            yield resp

    async def _authenticate(self, header: str, key: str, tried: str | None) -> bool:
        """Learn how to authenticate from a 401's challenge; False when there is nothing new to try."""
        for challenge in parse_challenges(header):
            if challenge.scheme == "basic":
                if self._credentials is None:
                    return False
                value = self._credentials.basic()
                if value == tried:
                    return False
                self._remember("", value, None)
                return True
            if challenge.scheme == "bearer":
                token, ttl = await self._token(challenge.params, key)
                value = f"Bearer {token}"
                if value == tried:
                    return False
                self._remember(key, value, ttl)
                return True
        return False

    def _authorization(self, key: str) -> str | None:
        """What to send for scope ``key``: this client's, else the process's cache (a token, or Basic for all)."""
        found = self._authorizations.get(key) or self._authorizations.get("")
        if found is None and self._cache is not None:
            found = self._cache.get((self.base, key, self._who)) or self._cache.get((self.base, "", self._who))
        return found

    def _remember(self, key: str, value: str, ttl: float | None) -> None:
        self._authorizations[key] = value
        if self._cache is not None:
            self._cache.put((self.base, key, self._who), value, ttl)

    async def _token(self, params: Mapping[str, str], key: str) -> tuple[str, float]:
        realm = check_realm(params.get("realm", ""), registry_scheme=self.scheme)
        query = {"scope": key}
        if params.get("service"):
            query["service"] = params["service"]
        headers = {"Authorization": self._credentials.basic()} if self._credentials is not None else {}
        try:
            resp = await self._session.get(realm, params=query, headers=headers, **self._request_kwargs())  # type: ignore[arg-type]
        except (aiohttp.ClientError, TimeoutError) as e:
            raise RegistryUnavailable(f"the registry's token service {_shown(realm)}: {_describe(e)}") from e
        try:
            if resp.status in (401, 403):
                raise RegistryAuthFailed(
                    f"the registry's token service refused the credentials (HTTP {resp.status})", status=resp.status
                )
            await self._expect(resp, (200,), "the registry's token service")
            data = await self._read_capped(resp, self.limits.max_token_bytes, "the registry's token")
        finally:
            resp.release()
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise UnexpectedAnswer("the registry's token service answered something that is not JSON") from e
        token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise UnexpectedAnswer("the registry's token service answered no token")
        expires_in = doc.get("expires_in")
        ttl = float(expires_in) if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) else 60.0
        return token, ttl

    async def _read_capped(self, resp: aiohttp.ClientResponse, cap: int, what: str) -> bytes:
        if resp.content_length is not None and resp.content_length > cap:
            raise TooLarge(f"{what} is {resp.content_length} bytes, over the limit of {cap}")
        chunks: list[bytes] = []
        size = 0
        try:
            async for block in resp.content.iter_chunked(_BLOCK):
                size += len(block)
                if size > cap:
                    raise TooLarge(f"{what} is over the limit of {cap} bytes")
                chunks.append(block)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise RegistryUnavailable(f"reading {what}: {_describe(e)}") from e
        return b"".join(chunks)

    async def _expect(
        self,
        resp: aiohttp.ClientResponse,
        ok: tuple[int, ...],
        what: str,
        *,
        not_found: type[ManifestNotFound | BlobInvalid] = ManifestNotFound,
    ) -> None:
        """Nothing when the status is one of ``ok``; else the error that says what the registry answered."""
        status = resp.status
        if status in ok:
            return
        detail = await self._error_detail(resp)
        said = f"{what}: HTTP {status}{detail}"
        if status in (401, 403):
            hint = "check the credentials" if self._credentials is not None else "no credentials were given"
            raise RegistryAuthFailed(f"{said} ({hint})", status=status)
        if status == 404:
            raise not_found(f"{said} (not found)", status=status)
        if status == 429 or status >= 500:
            raise RegistryUnavailable(
                said, status=status, retry_after=parse_retry_after(resp.headers.get("Retry-After"))
            )
        raise UnexpectedAnswer(said, status=status)

    async def _error_detail(self, resp: aiohttp.ClientResponse) -> str:
        """distribution's error code and message, or what kind of page answered (never the page itself)."""
        content_type = resp.headers.get("Content-Type", "")
        if content_type.startswith("text/html"):
            return " (an HTML page: is the URL a registry?)"
        if resp.method == "HEAD":
            return ""
        try:
            data = await resp.content.read(self.limits.max_error_bytes)
            doc = orjson.loads(data)
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            return ""
        errors = doc.get("errors") if isinstance(doc, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code, message = errors[0].get("code"), errors[0].get("message")
            if isinstance(code, str):
                text = f"{code}: {message}" if isinstance(message, str) else code
                return f" ({_printable(text)[:200]})"
        return ""


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


def _shown(url: str) -> str:
    """A URL as errors show it: scheme, host and path; never a query (a signed URL's query is a credential)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
