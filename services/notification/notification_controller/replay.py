"""Replay protection for generic-hmac Receivers (opt-in): a signed timestamp, a window, and signatures seen.

Flux signs only the body, so a captured request can be sent again forever. With a window set
(``--receiver-replay-window``; 0, the default, keeps Flux's behaviour), a generic-hmac request must carry
``X-Signature-Timestamp: <unix seconds>`` and sign ``<timestamp>.<body>`` with the token, so the
timestamp cannot be changed without the token; a timestamp further than the window from now is refused,
and so is a signature already accepted within the window (:class:`SeenSignatures`: per process, so with
several replicas a replay inside the window is refused only by the replica that saw it first — the most
it can do is request one more reconcile).

Timestamp required once the window is on: were it optional, the body ``<timestamp>.<body>`` sent
without the header would carry a valid body-only signature — the captured request again.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

#: The header carrying the signed timestamp.
TIMESTAMP_HEADER: Final = "X-Signature-Timestamp"
#: Digits of a Unix time in seconds (until the year 33658): anything longer is not a timestamp.
_MAX_DIGITS: Final = 12


def signed_payload(timestamp: str, body: bytes) -> bytes:
    """What the signature covers when the window is on: ``<timestamp>.<body>`` (digits, so unambiguous)."""
    return timestamp.encode("ascii") + b"." + body


def timestamp_problem(timestamp: str | None, *, now: float, window: float) -> str | None:
    """Why ``timestamp`` (the header's value) is not acceptable now, else None."""
    if not timestamp:
        return f"missing {TIMESTAMP_HEADER} header"
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= _MAX_DIGITS):
        return f"{TIMESTAMP_HEADER} is not a Unix time in seconds"
    if abs(now - int(timestamp)) > window:
        return f"{TIMESTAMP_HEADER} is more than {window:g}s away from now"
    return None


class SeenSignatures:
    """Signatures accepted in the last ``window`` seconds: the same one again is a replay."""

    def __init__(self, window: float, *, max_entries: int = 100_000) -> None:
        self._window = window
        self._max = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def first_time(self, signature: str, *, now: float) -> bool:
        """Record ``signature``; False when it was recorded already within the window."""
        key = signature.strip().lower()
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if now - at <= self._window and len(self._seen) < self._max:
                break
            # Expired, or room needed: the timestamp check refuses a request older than the window anyway.
            del self._seen[oldest]
        if key in self._seen:
            return False
        self._seen[key] = now
        return True
