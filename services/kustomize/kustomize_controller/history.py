"""status.history: the last five distinct applied sets, as Flux records them (pure)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from gitops_mesh.timestamps import rfc3339

MAX_HISTORY = 5


def snapshot_digest(inventory_ids: list[str], revision: str) -> str:
    """One digest per (applied objects, revision): a repeat of the same apply updates its entry."""
    h = hashlib.sha256()
    for i in sorted(inventory_ids):
        h.update(i.encode())
        h.update(b"\n")
    h.update(revision.encode())
    return "sha256:" + h.hexdigest()


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
    stamp = rfc3339(now)
    entries = [dict(e) for e in history]
    current = next((e for e in entries if e.get("digest") == digest), None)
    if current is None:
        current = {"digest": digest, "firstReconciled": stamp, "totalReconciliations": 0}
    else:
        entries.remove(current)
    current.update(
        {
            "lastReconciled": stamp,
            "lastReconciledDuration": f"{duration:.3f}s",
            "lastReconciledStatus": status,
            "totalReconciliations": int(current.get("totalReconciliations", 0)) + 1,
            "metadata": {"revision": revision},
        }
    )
    return [current, *entries][:MAX_HISTORY]
