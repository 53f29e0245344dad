"""Sending one request to a provider and deciding what its answer means (classification is pure).

- 2xx is delivered (unless the API says otherwise in the body, as Slack's Web API does);
- 408, 429 and 5xx, connection errors and timeouts are worth retrying, after ``Retry-After`` when given;
- any other answer (4xx, a redirect loop) is a rejection: the same request will be refused again;
- a request that cannot be written (an invalid URL, a header with a line break) is a rejection of this one
  delivery, never an error that fails the whole event.

Every detail is redacted (:func:`~notification_controller.providers.base.redact_text`): a provider's address
may carry its secret in the path (Slack, Teams), the query or the userinfo, and aiohttp quotes whole URLs.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import aiohttp

from gitops_mesh.http_headers import parse_retry_after
from notification_controller.providers import Request
from notification_controller.providers.base import redact, redact_text

#: How much of a provider's answer is read (for logs and the DLQ's reason); the rest is discarded.
MAX_ANSWER = 4096


class AttemptKind(StrEnum):
    DELIVERED = "delivered"
    #: The provider does not take this notification (type rules, suspended provider): nothing to do.
    SKIPPED = "skipped"
    RETRY = "retry"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Attempt:
    kind: AttemptKind
    #: A CamelCase reason for metrics, Events and the DLQ (``HTTP503``, ``ConnectionError``, ...).
    reason: str
    detail: str = ""
    retry_after: float | None = None
    status: int | None = None

    @classmethod
    def delivered(cls, status: int) -> Attempt:
        return cls(AttemptKind.DELIVERED, "Delivered", status=status)

    @classmethod
    def skipped(cls, why: str) -> Attempt:
        return cls(AttemptKind.SKIPPED, "NotApplicable", why)

    # A failure's detail goes to the DLQ, the Alert's Warning event and logs: no URL in it keeps its secrets.

    @classmethod
    def retry(cls, reason: str, detail: str, retry_after: float | None = None) -> Attempt:
        return cls(AttemptKind.RETRY, reason, redact_text(detail), retry_after)

    @classmethod
    def rejected(cls, reason: str, detail: str, status: int | None = None) -> Attempt:
        return cls(AttemptKind.REJECTED, reason, redact_text(detail), status=status)


def classify(request: Request, status: int, headers: Mapping[str, str], body: bytes) -> Attempt:
    """What an HTTP answer means for the delivery."""
    text = body[:MAX_ANSWER].decode("utf-8", "replace").strip()
    if 200 <= status < 300:
        failure = request.check_body(body) if request.check_body is not None else None
        if failure is None:
            return Attempt.delivered(status)
        if "ratelimited" in failure:
            return Attempt.retry("RateLimited", failure, parse_retry_after(headers.get("Retry-After")))
        return Attempt.rejected("RejectedByAPI", failure, status)
    detail = f"{redact(request.url)} answered {status}" + (f": {redact_text(text[:500], request.url)}" if text else "")
    if status in (408, 429) or 500 <= status < 600:
        return Attempt.retry(f"HTTP{status}", detail, parse_retry_after(headers.get("Retry-After")))
    return Attempt.rejected(f"HTTP{status}", detail, status)


class HttpSender:
    """Sends requests over one aiohttp session; TLS contexts for provider CAs are built once per CA."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._contexts: dict[str, ssl.SSLContext] = {}

    def _ssl(self, ca_pem: bytes) -> ssl.SSLContext | bool:
        if not ca_pem:
            return True
        digest = hashlib.sha256(ca_pem).hexdigest()
        ctx = self._contexts.get(digest)
        if ctx is None:
            ctx = ssl.create_default_context(cadata=ca_pem.decode("ascii", "replace"))
            self._contexts[digest] = ctx
        return ctx

    async def send(self, request: Request) -> Attempt:
        where = redact(request.url)
        try:
            ssl_option = self._ssl(request.ca_pem)
        except (ssl.SSLError, ValueError) as e:
            return Attempt.rejected("InvalidProviderConfig", f"the provider's CA certificate is unusable: {e}")
        try:
            async with self._session.request(
                request.method,
                request.url,
                data=request.body,
                headers=dict(request.headers),
                proxy=request.proxy or None,
                ssl=ssl_option,
                timeout=aiohttp.ClientTimeout(total=request.timeout),
            ) as resp:
                body = await resp.content.read(MAX_ANSWER)
                return classify(request, resp.status, resp.headers, body)
        except aiohttp.InvalidURL:
            # Its message is the URL itself.
            return Attempt.rejected("InvalidAddress", f"{where}: InvalidURL: the address is not a valid URL")
        except aiohttp.TooManyRedirects as e:
            return Attempt.rejected(
                "InvalidAddress", f"{where}: TooManyRedirects: gave up after {len(e.history)} redirects"
            )
        except TimeoutError:
            return Attempt.retry("Timeout", f"{where}: no answer within {request.timeout:g}s")
        except aiohttp.ClientSSLError as e:
            return Attempt.retry("TLSError", f"{where}: {redact_text(str(e), request.url)}")
        except (aiohttp.ClientError, OSError) as e:
            return Attempt.retry("ConnectionError", f"{where}: {type(e).__name__}: {redact_text(str(e), request.url)}")
        except ValueError as e:
            # aiohttp refuses to write a header with a control character (build_request refuses it first;
            # this keeps any other unwritable request one refused delivery, not a failed event).
            detail = f"{where}: the request cannot be written: {type(e).__name__}: {redact_text(str(e), request.url)}"
            return Attempt.rejected("InvalidRequest", detail)
