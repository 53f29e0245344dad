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
