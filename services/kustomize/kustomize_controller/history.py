"""status.history: the last five distinct applied sets, as Flux records them (pure)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

MAX_HISTORY = 5


def snapshot_digest(inventory_ids: list[str], revision: str) -> str:
    """One digest per (applied objects, revision): a repeat of the same apply updates its entry."""
    h = hashlib.sha256()
    for i in sorted(inventory_ids):
        h.update(i.encode())
        h.update(b"\n")
    h.update(revision.encode())
    return "sha256:" + h.hexdigest()


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def record(
    history: list[dict[str, Any]],
    *,
    digest: str,
    status: str,
    now: datetime,
    duration: float,
    revision: str,
) -> list[dict[str, Any]]:
    """``history`` with this reconcile counted: newest first, at most five entries."""
    entries = [dict(e) for e in history]
    current = next((e for e in entries if e.get("digest") == digest), None)
    if current is None:
        current = {"digest": digest, "firstReconciled": _fmt(now), "totalReconciliations": 0}
    else:
        entries.remove(current)
    current.update(
        {
            "lastReconciled": _fmt(now),
            "lastReconciledDuration": f"{duration:.3f}s",
            "lastReconciledStatus": status,
            "totalReconciliations": int(current.get("totalReconciliations", 0)) + 1,
            "metadata": {"revision": revision},
        }
    )
    return [current, *entries][:MAX_HISTORY]
