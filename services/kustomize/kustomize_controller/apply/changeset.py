"""Apply, results (pure): what was done to each object, as Flux prints it, and the errors that carry it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from gitops_mesh.errors import GitopsMeshError, TransientError
from kustomize_controller.apply.inventory import InventoryEntry, ObjectId, entries

# How many failures an error message spells out; the rest are counted.
_MAX_LISTED = 5


class Action(StrEnum):
    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    DELETED = "deleted"


#: The actions that change the cluster, the ones an ``applied`` event and Flux's change log list.
CHANGES = frozenset({Action.CREATED, Action.CONFIGURED, Action.DELETED})


@dataclass(frozen=True, slots=True)
class ChangeSetEntry:
    ref: ObjectId
    action: Action

    @property
    def subject(self) -> str:
        return self.ref.subject

    def __str__(self) -> str:
        return f"{self.ref.subject} {self.action}"


@dataclass
class ChangeSet:
    """Entries in the order the objects were handled (Flux's staged apply order)."""

    entries: list[ChangeSetEntry] = field(default_factory=list)

    def add(self, ref: ObjectId, action: Action) -> None:
        self.entries.append(ChangeSetEntry(ref, action))

    def extend(self, more: Iterable[ChangeSetEntry]) -> None:
        self.entries.extend(more)

    def __iter__(self) -> Iterator[ChangeSetEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __str__(self) -> str:
        """One ``<Kind>/<namespace>/<name> <action>`` line per entry."""
        return "\n".join(str(e) for e in self.entries)

    def changes(self) -> list[ChangeSetEntry]:
        return [e for e in self.entries if e.action in CHANGES]

    def change_log(self) -> str:
        """Flux's apply log: only what changed, one line each (empty when nothing did)."""
        return "\n".join(str(e) for e in self.changes())

    def counts(self) -> dict[str, int]:
        """Entries per action, e.g. ``{"created": 3, "unchanged": 1}``."""
        return dict(Counter(str(e.action) for e in self.entries))

    def refs(self, *actions: Action) -> list[ObjectId]:
        wanted = set(actions) or set(Action)
        return [e.ref for e in self.entries if e.action in wanted]

    def inventory(self) -> list[InventoryEntry]:
        """status.inventory.entries for this apply: every object handled, skipped ones included (as in Flux)."""
        return entries(e.ref for e in self.entries)


@dataclass(frozen=True, slots=True)
class ObjectFailure:
    """One object the apiserver (or our checks) refused, and why."""

    subject: str
    message: str
    error: GitopsMeshError | None = None

    def __str__(self) -> str:
        return f"{self.subject} {self.message}" if self.subject else self.message


class ChangeSetError(GitopsMeshError):
    """An apply or prune that stopped part-way: ``change_set`` says what was done before it stopped.

    Raised as :class:`ChangeSetRejected` (the apiserver refused an object: invalid, its CRD or namespace not
    there yet, a webhook's denial, forbidden) or :class:`ChangeSetInterrupted` (the apiserver was away, a
    wait ran out). Both are retried, as Flux retries every failed apply: a rejection at the Kustomization's
    retryInterval (the cluster or the manifests may change meanwhile), an interruption after its own delay.
    """

    change_set: ChangeSet
    failures: tuple[ObjectFailure, ...]


class ChangeSetRejected(TransientError, ChangeSetError):
    def __init__(self, message: str, *, change_set: ChangeSet, failures: Sequence[ObjectFailure]) -> None:
        super().__init__(message, reason="ReconciliationFailed")
        self.change_set = change_set
        self.failures = tuple(failures)


class ChangeSetInterrupted(TransientError, ChangeSetError):
    def __init__(
        self,
        message: str,
        *,
        change_set: ChangeSet,
        failures: Sequence[ObjectFailure],
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after, reason="ReconciliationFailed")
        self.change_set = change_set
        self.failures = tuple(failures)


def describe(failures: Sequence[ObjectFailure]) -> str:
    listed = "; ".join(str(f) for f in failures[:_MAX_LISTED])
    more = len(failures) - _MAX_LISTED
    return f"{listed}; and {more} more" if more > 0 else listed


def failed(failures: Sequence[ObjectFailure], change_set: ChangeSet) -> ChangeSetError:
    """The error for ``failures``: rejected when the apiserver (or our own check) refused any of them, else
    interrupted (with the longest delay an error asked for)."""
    message = describe(failures)
    if any(f.error is None or not isinstance(f.error, TransientError) for f in failures):
        return ChangeSetRejected(message, change_set=change_set, failures=failures)
    retry = [f.error.retry_after for f in failures if isinstance(f.error, TransientError) and f.error.retry_after]
    return ChangeSetInterrupted(
        message, change_set=change_set, failures=failures, retry_after=max(retry) if retry else None
    )
