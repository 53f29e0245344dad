"""Bottom layer, pure: the one RFC 3339 "…Z" formatter behind every timestamp the runtime writes.

Kubernetes and Flux write UTC with a ``Z``: ``metav1.Time`` to the second (conditions, Events,
``status.artifact.lastUpdateTime``, ``status.history``), ``metav1.MicroTime`` with six fractional digits
(Lease times), and the bus's CloudEvents ``time`` with milliseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

#: Fractional digits kept: none (metav1.Time), three (CloudEvents time), six (metav1.MicroTime).
Precision = Literal["seconds", "milliseconds", "microseconds"]


def rfc3339(t: datetime, precision: Precision = "seconds") -> str:
    """``t`` in UTC as ``YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]Z``, truncated (never rounded) to ``precision``.

    A naive datetime is taken as UTC: the runtime only makes aware ones, and a test's naive literal
    means the same instant on every machine.
    """
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(timespec=precision) + "Z"
