"""One delivery (an event for one Alert) and its wire form on the retry and dead-letter topics (pure).

A delivery that is still failing travels as the original CloudEvent with its ``type`` changed to
``io.gitops-mesh.notification-retry.v1`` and its bookkeeping in ``data.metadata`` under
``notification.gitops-mesh.io/``. The event keeps its id (the idempotency key receivers see), its
involved object and its time, so the shared Consumer, the DLQ tooling and a human reading the topic all
see an ordinary envelope; replaying a dead letter is copying it back onto the retry topic.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from gitops_mesh.bus.envelope import Event, encode, message_key

#: The event kind of a delivery parked on the retry topic (and, once given up, on the DLQ).
RETRY_KIND = "notification-retry"
#: The retry topic's name under the bus prefix; created by the controller at start-up.
RETRY_TOPIC = "notification-retries"

_PREFIX = "notification.gitops-mesh.io/"
_KIND = _PREFIX + "kind"
_ALERT = _PREFIX + "alert"
_PROVIDER = _PREFIX + "provider"
_ATTEMPTS = _PREFIX + "attempts"
_FIRST_FAILURE = _PREFIX + "first-failure"
_NOT_BEFORE = _PREFIX + "not-before"
_LAST_ERROR = _PREFIX + "last-error"
_SEQ = _PREFIX + "seq"

_counter = itertools.count()


def next_seq() -> int:
    """A sequence number that grows across the process (and, being time-based, across restarts)."""
    return time.time_ns() + next(_counter)


class RecordError(ValueError):
    """An envelope on the retry topic that is not a delivery (the Consumer dead-letters it)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to one Alert's Provider, with what its attempts so far taught us."""

    event: Event
    alert: str  # namespace/name
    provider: str  # namespace/name
    attempts: int = 0
    #: Wall-clock time (epoch seconds) of the first failed attempt; None before any failure.
    first_failure: float | None = None
    last_error: str = ""
    #: Not to be attempted before this wall-clock time (epoch seconds); 0 = at once.
    not_before: float = 0.0
    #: Order among this (provider, object)'s deliveries in the retry lane (set at handover).
    seq: int = 0

    @property
    def id(self) -> str:
        """Stable across redeliveries and retries: the event and the Alert it is delivered for."""
        return f"{self.event.id}/{self.alert}"

    @property
    def order_key(self) -> str:
        """Deliveries with the same order key go out in order: one Provider, one involved object."""
        o = self.event.involved_object
        return f"{self.provider}|{o.kind}/{o.namespace}/{o.name}"

    def failed(self, error: str, *, now: float) -> Delivery:
        return replace(
            self,
            attempts=self.attempts + 1,
            first_failure=self.first_failure if self.first_failure is not None else now,
            last_error=error[:1000],
        )


def to_record(d: Delivery) -> tuple[bytes, bytes]:
    """(key, value) of the retry/DLQ record: keyed by the order key, so one object's retries stay in order."""
    meta = dict(d.event.metadata)
    meta.update(
        {
            _KIND: d.event.kind,
            _ALERT: d.alert,
            _PROVIDER: d.provider,
            _ATTEMPTS: str(d.attempts),
            _FIRST_FAILURE: repr(d.first_failure) if d.first_failure is not None else "",
            _NOT_BEFORE: repr(d.not_before),
            _LAST_ERROR: d.last_error,
            _SEQ: str(d.seq),
        }
    )
    envelope = replace(d.event, kind=RETRY_KIND, metadata=meta)
    return d.order_key.encode(), encode(envelope.to_cloudevent())


def from_record(event: Event) -> Delivery:
    """The delivery a retry-topic envelope carries; raises RecordError for anything else."""
    meta: Mapping[str, str] = event.metadata
    if event.kind != RETRY_KIND or _ALERT not in meta or _PROVIDER not in meta:
        raise RecordError(f"{event.type} {event.id} is not a notification delivery")
    try:
        first = meta.get(_FIRST_FAILURE, "")
        delivery = Delivery(
            event=replace(
                event,
                kind=meta.get(_KIND) or "unknown",
                metadata={k: v for k, v in meta.items() if not k.startswith(_PREFIX)},
            ),
            alert=meta[_ALERT],
            provider=meta[_PROVIDER],
            attempts=int(meta.get(_ATTEMPTS) or 0),
            first_failure=float(first) if first else None,
            last_error=meta.get(_LAST_ERROR, ""),
            not_before=float(meta.get(_NOT_BEFORE) or 0.0),
            seq=int(meta.get(_SEQ) or 0),
        )
    except ValueError as e:
        raise RecordError(f"delivery {event.id}: bad bookkeeping: {e}") from e
    return delivery


def source_key(d: Delivery) -> bytes:
    """The key the original event had on its own topic."""
    o = d.event.involved_object
    return message_key(o.kind, o.namespace, o.name)
