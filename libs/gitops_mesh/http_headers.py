"""Bottom layer, pure: reading the HTTP headers every client of the runtime honours (Retry-After)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` (RFC 9110 §10.2.3) as seconds to wait: delta-seconds or an HTTP date.

    None when absent or unreadable (the caller's own backoff applies then); a date in the past is 0.
    Delta-seconds are digits only, as the RFC has them: "1.5", "-1" or "inf" are not a delay.
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        # RFC 5322's "-0000" (no zone information) parses naive; HTTP dates are GMT.
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


#: RFC 9110 §5.6.2 ``tchar``: what a field name (a ``token``) is made of.
_TCHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def is_field_name(name: str) -> bool:
    """Whether ``name`` is an RFC 9110 field name (``1*tchar``): no spaces, colons, controls or non-ASCII."""
    raw = name.encode("utf-8", "surrogatepass")
    return bool(raw) and all(b in _TCHARS for b in raw)


def is_field_value(value: str) -> bool:
    """Whether ``value`` may be sent as a field value: RFC 9110 ``field-vchar`` (VCHAR, obs-text), SP and HTAB.

    As Go's net/http checks a header value (what Flux sends with): every control character but HTAB is
    refused — CR and LF above all, which would end the field and start another (header injection) — and
    surrounding whitespace, which a recipient strips, is allowed. Text outside ASCII goes out as UTF-8,
    whose bytes are all obs-text.
    """
    # Lone surrogates (a YAML "\ud800" escape) have no UTF-8 form at all.
    return all(c == "\t" or (" " <= c != "\x7f" and not "\ud800" <= c <= "\udfff") for c in value)


def header_problem(name: str, value: str) -> str | None:
    """Why the field ``name: value`` cannot be sent (without echoing the value, which may be a secret), else None."""
    if not is_field_name(name):
        return f"header name {name[:64]!r} is not an RFC 9110 token"
    if not is_field_value(value):
        return f"the value of header {name!r} has a control character (CR, LF, NUL, ...) or is not text"
    return None
