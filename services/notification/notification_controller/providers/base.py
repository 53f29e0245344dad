"""What every provider builder takes and returns: the notification, the Provider's spec and secret, the request.

Builders are pure: ``(Notification, ProviderSpec, Credentials) -> Request | None``; None means this
provider type does not take this notification (Flux skips it too, e.g. a progressing event for a commit
status). Configuration a builder cannot use raises :class:`ProviderConfigError` (terminal: retrying the
same spec cannot help).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from gitops_mesh.bus.envelope import ObjectRef, Severity
from gitops_mesh.errors import InvalidSpec
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.settings import parse_duration
from notification_controller.providers.headers import InvalidHeaders, parse_headers

PROVIDER_API_VERSION = "notification.toolkit.fluxcd.io/v1beta3"
PROVIDER_KIND = "Provider"
#: Flux's header naming the controller that reported the event.
COMPONENT_HEADER = "Gotk-Component"
#: The idempotency key every delivery carries: the CloudEvent id of the event it notifies about.
EVENT_ID_HEADER = "X-Gotk-Event-Id"
#: Flux's default Provider timeout.
DEFAULT_TIMEOUT = 15.0
#: Metadata key and value of Flux's commit-status "update" events, which only git providers take.
COMMIT_STATUS_KEY = "commit_status"
COMMIT_STATUS_UPDATE = "update"
PROGRESSING = "Progressing"
JSON_CONTENT = "application/json"


class ProviderConfigError(InvalidSpec):
    """The Provider (or its Secret) cannot be used as it is: bad address, missing token, bad headers."""

    reason = "InvalidProviderConfig"


@dataclass(frozen=True, slots=True)
class Notification:
    """Flux's ``eventv1.Event`` as a provider receives it (metadata combined by the Alert), and its id."""

    event_id: str
    involved_object: ObjectRef
    severity: Severity
    timestamp: datetime
    message: str
    reason: str
    metadata: Mapping[str, str]
    reporting_controller: str
    reporting_instance: str = ""

    @property
    def object_name(self) -> str:
        """``kind/name.namespace`` with the kind in lower case, as Flux's chat providers title a message."""
        o = self.involved_object
        return f"{o.kind.lower()}/{o.name}.{o.namespace}"


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """A Provider object's spec with its identity; build with :func:`provider_from_object`."""

    namespace: str
    name: str
    type: str
    uid: str = ""
    address: str = ""
    channel: str = ""
    username: str = ""
    proxy: str = ""
    timeout: float = DEFAULT_TIMEOUT
    suspend: bool = False
    secret_ref: str = ""
    cert_secret_ref: str = ""
    proxy_secret_ref: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def provider_from_object(obj: KubeObject) -> ProviderSpec:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    try:
        timeout = parse_duration(spec["timeout"]) if spec.get("timeout") else DEFAULT_TIMEOUT
    except ValueError:
        timeout = DEFAULT_TIMEOUT
    return ProviderSpec(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        type=str(spec.get("type") or ""),
        address=str(spec.get("address") or ""),
        channel=str(spec.get("channel") or ""),
        username=str(spec.get("username") or ""),
        proxy=str(spec.get("proxy") or ""),
        timeout=timeout if timeout > 0 else DEFAULT_TIMEOUT,
        suspend=bool(spec.get("suspend")),
        secret_ref=str((spec.get("secretRef") or {}).get("name") or ""),
        cert_secret_ref=str((spec.get("certSecretRef") or {}).get("name") or ""),
        proxy_secret_ref=str((spec.get("proxySecretRef") or {}).get("name") or ""),
    )


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a Provider's Secrets add: ``secretRef`` (address, token, username, password, headers, proxy),
    ``certSecretRef`` (ca.crt) and ``proxySecretRef`` (address, username, password)."""

    address: str = ""
    token: str = ""
    username: str = ""
    password: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    proxy: str = ""
    ca_pem: bytes = b""

    @classmethod
    def from_secrets(
        cls,
        secret: Mapping[str, bytes] | None = None,
        *,
        cert: Mapping[str, bytes] | None = None,
        proxy: Mapping[str, bytes] | None = None,
        read_headers: Callable[[bytes], dict[str, str]] = parse_headers,
    ) -> Credentials:
        """Decode the Secrets' data; raises ProviderConfigError for ``headers`` that are not a map of sendable
        header fields. ``read_headers`` parses that value (a :class:`HeadersCache`'s, to parse it once)."""
        s = secret or {}

        def text(key: str, source: Mapping[str, bytes] = s) -> str:
            return source.get(key, b"").decode("utf-8", "replace").strip()

        headers: dict[str, str] = {}
        if "headers" in s:
            try:
                headers = read_headers(s["headers"])
            except InvalidHeaders as e:
                raise ProviderConfigError(str(e)) from None
        proxy_url = text("proxy")
        if proxy is not None:
            proxy_url = with_userinfo(text("address", proxy), text("username", proxy), text("password", proxy))
        ca = b""
        if cert is not None:
            ca = cert.get("ca.crt") or cert.get("caFile") or b""
        elif "ca.crt" in s:
            ca = s["ca.crt"]
        return cls(
            address=text("address"),
            token=text("token"),
            username=text("username"),
            password=text("password"),
            headers=headers,
            proxy=proxy_url,
            ca_pem=ca,
        )


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request to a provider, ready to send."""

    url: str
    body: bytes
    headers: Mapping[str, str]
    method: str = "POST"
    timeout: float = DEFAULT_TIMEOUT
    proxy: str = ""
    ca_pem: bytes = b""
    #: For APIs that answer 200 with a failure in the body (Slack's Web API): the failure text, or None.
    check_body: Callable[[bytes], str | None] | None = None


Builder = Callable[[Notification, ProviderSpec, Credentials], Request | None]


# ---- helpers builders share ----------------------------------------------------------------------------


def with_userinfo(url: str, username: str, password: str) -> str:
    if not url or not username:
        return url
    parts = urlsplit(url)
    netloc = f"{username}:{password}@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def raw_address(spec: ProviderSpec, creds: Credentials) -> str:
    """The secret's ``address`` wins over ``spec.address`` (as Flux reads them)."""
    address = (creds.address or spec.address).strip()
    if not address:
        raise ProviderConfigError("provider has no address")
    return address


def address_of(spec: ProviderSpec, creds: Credentials) -> str:
    """The address of a webhook-style provider: it must be an absolute http(s) URL."""
    address = raw_address(spec, creds)
    check_url(address)
    return address


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProviderConfigError(f"invalid URL {redact(url)!r}: want an absolute http(s) URL")


def redact(url: str) -> str:
    """The URL as ``scheme://host[:port]``, plus ``/…`` when it had a path: no userinfo, path or query (Slack
    and Teams put their secrets in the path, a token may be the username). Never raises, whatever ``url`` is."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
    except ValueError:  # an unclosed IPv6 bracket
        return "(not a URL)"
    if not parts.scheme or not host:
        return "(not a URL)"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # what urlsplit took for a port is not one (a secret with '/' in the userinfo)
        port = ""
    return f"{parts.scheme}://{host}{port}" + ("/…" if parts.path else "")


#: Anything that looks like an absolute URL inside a message (up to a space, quote or angle bracket).
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*")


def redact_text(text: str, *urls: str) -> str:
    """``text`` with every URL in it :func:`redact`-ed, and the secret-bearing parts of ``urls`` (userinfo,
    path, query: e.g. a provider's answer that echoes its path) replaced wherever they still appear.

    For every message a delivery error becomes (the DLQ's detail, the Alert's Warning event, logs):
    aiohttp's InvalidURL and TooManyRedirects, among others, quote the whole address.
    """
    text = _URL_IN_TEXT.sub(_redact_match, text)
    for url in urls:
        for part in _secret_parts(url):
            text = text.replace(part, "…")
    return text


def _redact_match(m: re.Match[str]) -> str:
    # Punctuation right after a URL ("<url>: refused", "(<url>).") belongs to the sentence.
    url = m.group().rstrip(".,:;)")
    return redact(url) + m.group()[len(url) :]


def _secret_parts(url: str) -> list[str]:
    try:
        parts = urlsplit(url.strip())
        userinfo = [parts.username or "", parts.password or ""]
    except ValueError:
        return []
    # Short parts ("/", "a") would shred the message without protecting anything.
    return sorted((p for p in [*userinfo, parts.path, parts.query] if len(p) >= 6), key=len, reverse=True)


def merge_headers(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """``base`` updated with ``extra``, header names compared case-insensitively (the later one wins)."""
    out = dict(base)
    for name, value in extra.items():
        for existing in [k for k in out if k.lower() == name.lower()]:
            del out[existing]
        out[name] = value
    return out


def json_body(doc: Any) -> bytes:
    return orjson.dumps(doc)


def skips_chat(n: Notification) -> bool:
    """Chat and webhook providers ignore Flux's commit-status update events (only git providers take them)."""
    return n.metadata.get(COMMIT_STATUS_KEY) == COMMIT_STATUS_UPDATE


def sorted_metadata(metadata: Mapping[str, str]) -> list[tuple[str, str]]:
    """Metadata in key order (Go iterates maps randomly; a stable order keeps payloads comparable)."""
    return sorted(metadata.items())


_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+|[^A-Za-z\d]+")


def split_camelcase(text: str) -> list[str]:
    """``ReconciliationSucceeded`` → ``['Reconciliation', 'Succeeded']`` (as Flux's splitCamelcase)."""
    return _CAMEL.findall(text)


def go_time(t: datetime) -> str:
    """Go's ``time.Time.String()`` of a UTC time, as Flux prints event timestamps in some payloads."""
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
