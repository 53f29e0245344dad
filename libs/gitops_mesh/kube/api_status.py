"""Kube access, error edge: an apiserver status code and Status body become our error tree."""

from __future__ import annotations

from typing import Any

import orjson

from gitops_mesh.errors import (
    Conflict,
    Forbidden,
    GitopsMeshError,
    Gone,
    Invalid,
    KubeUnavailable,
    NotFound,
)
from gitops_mesh.http_headers import parse_retry_after


class AlreadyExists(Conflict):
    """409 on create: an object with that name exists (create-if-absent callers tell it from a stale update)."""


def parse_status(body: bytes) -> dict[str, Any] | None:
    """The ``Status`` object in an error body, or None when the body is not one (proxies, plain text)."""
    if not body:
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) and doc.get("kind") == "Status" else None


def retry_after_of(header: str | None, status: dict[str, Any] | None) -> float | None:
    """Seconds to wait: the Retry-After header, else the Status body's ``details.retryAfterSeconds``."""
    from_header = parse_retry_after(header)
    if from_header is not None:
        return from_header
    if status:
        details = status.get("details") or {}
        seconds = details.get("retryAfterSeconds")
        if isinstance(seconds, int | float) and seconds > 0:
            return float(seconds)
    return None


def error_from_status(
    code: int,
    status: dict[str, Any] | None,
    *,
    fallback: str = "",
    retry_after: float | None = None,
) -> GitopsMeshError:
    """The error for an HTTP status code; the message is the apiserver's (it names the offending field)."""
    message = str((status or {}).get("message") or fallback or f"HTTP {code}")
    reason = str((status or {}).get("reason") or "")
    if code == 404:
        return NotFound(message, code=code)
    if code == 409:
        return AlreadyExists(message) if reason == "AlreadyExists" else Conflict(message)
    if code == 410:
        return Gone(message)
    if code in (401, 403):
        return Forbidden(message, code=code)
    if code in (400, 422):
        return Invalid(message, code=code)
    if code == 408 or code == 429 or code >= 500:
        return KubeUnavailable(message, retry_after=retry_after)
    # 405, 406, 413, 415: the request itself is wrong; resending it unchanged cannot help.
    return Invalid(message, code=code)


def error_from_response(code: int, body: bytes, retry_after_header: str | None = None) -> GitopsMeshError:
    status = parse_status(body)
    fallback = body[:500].decode("utf-8", "replace").strip()
    return error_from_status(code, status, fallback=fallback, retry_after=retry_after_of(retry_after_header, status))
