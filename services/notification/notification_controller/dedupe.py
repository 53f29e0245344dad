"""Rate limiting repeats (pure): the same object, message and revision once per ``--rate-limit-interval``.

Flux keys an event on sha256(name, namespace, kind, message, revision, originRevision, token) and drops
repeats for 5 minutes. Controllers put volatile text in messages ("Reconciliation finished in 2.08s",
"next run in 1m30s", timestamps), so Flux lets those repeats through; here the key is taken over the
message with that text replaced:

* Go/Kubernetes durations standing alone: ``2.08s``, ``1m30s``, ``250ms``, ``2h0m0s``, ``1.5µs``;
* RFC 3339 / ISO 8601 timestamps (``2024-01-02T15:04:05.123Z``, ``…+02:00``) and Go's
  ``time.String()`` form (``2024-01-02 15:04:05 +0000 UTC``).

Hex strings are deliberately kept: in Flux messages they are commit hashes, digests and ReplicaSet
suffixes, and two messages differing in those are two different things to tell people about. A token in
a longer word (``app-1s``, ``v2m``) is not a duration.

The key also names the Alert (and its Provider), so each Alert rate-limits on its own, as each delivers on
its own. The cache is in memory: a restarted controller may send a repeat inside the window again. That is
the at-least-once side of the design; every delivery carries the event id (``X-Gotk-Event-Id``) for the
receiver to drop what it has seen.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gitops_mesh.bus.envelope import Event
from notification_controller.matching import ORIGIN_REVISION_KEY, REVISION_KEY, TOKEN_KEY, object_group

#: Flux's default --rate-limit-interval.
DEFAULT_INTERVAL = 300.0

_UNIT = r"(?:ns|us|µs|μs|ms|h|m|s)"
_DURATION = re.compile(rf"(?<![\w.:-])[-+]?(?:\d+(?:\.\d+)?{_UNIT})+(?![\w-]|\.\w)")
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?"
    r"(?:\s?(?:Z|[+-]\d{2}:?\d{2}))?(?:\s[A-Z]{2,5}(?![\w]))?"
)


def normalize_message(message: str) -> str:
    """The message with timestamps and durations replaced by placeholders."""
    return _DURATION.sub("<duration>", _TIMESTAMP.sub("<time>", message))


def _meta(event: Event, key: str) -> str | None:
    group = object_group(event)
    for k in (f"{group}/{key}", key):
        if k in event.metadata:
            return event.metadata[k]
    return None


def dedupe_key(event: Event, *, alert: str, provider: str = "") -> str:
    """Hex sha256 over Flux's fields (message normalised) and the Alert/Provider it is delivered for."""
    o = event.involved_object
    comps = [
        "event",
        f"name={o.name}",
        f"namespace={o.namespace}",
        f"kind={o.kind}",
        f"message={normalize_message(event.message)}",
    ]
    origin = _meta(event, ORIGIN_REVISION_KEY)
    if origin is not None:
        comps.append(f"originRevision={origin}")
    revision = event.revision or _meta(event, REVISION_KEY)
    if revision:
        comps.append(f"revision={revision}")
    token = _meta(event, TOKEN_KEY)
    if token is not None:
        comps.append(f"token={token}")
    comps += [f"alert={alert}", f"provider={provider}"]
    return hashlib.sha256("/".join(comps).encode()).hexdigest()


@dataclass(slots=True)
class _Sent:
    event_id: str
    at: float


class RateLimiter:
    """Lets a key through once per ``interval`` seconds (in-memory TTL cache, bounded in size).

    The same event id is always let through again: a redelivery of an event (a crash before its offset
    was committed, a retried handler) is not a repeat, and dropping it would lose the notification.
    """

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._max_keys = max_keys
        self._sent: OrderedDict[str, _Sent] = OrderedDict()

    def allow(self, key: str, event_id: str) -> bool:
        """True (and remembered) unless ``key`` went through for another event less than ``interval`` ago."""
        if self.interval <= 0:
            return True
        now = self._clock()
        self._expire(now)
        seen = self._sent.get(key)
        if seen is not None and seen.event_id != event_id and now - seen.at < self.interval:
            return False
        if seen is None or seen.event_id != event_id:
            self._sent[key] = _Sent(event_id, now)
            self._sent.move_to_end(key)
        while len(self._sent) > self._max_keys:
            self._sent.popitem(last=False)
        return True

    def forget(self, key: str, event_id: str) -> None:
        """Undo :meth:`allow` for an event whose delivery was not made after all (nothing matched it)."""
        seen = self._sent.get(key)
        if seen is not None and seen.event_id == event_id:
            del self._sent[key]

    def _expire(self, now: float) -> None:
        # Entries are in insertion order, so the oldest are first.
        while self._sent:
            key, first = next(iter(self._sent.items()))
            if now - first.at < self.interval:
                return
            del self._sent[key]

    def __len__(self) -> int:
        return len(self._sent)

    def snapshot(self) -> Mapping[str, str]:
        """key -> event id, for tests and debugging."""
        return {k: v.event_id for k, v in self._sent.items()}
