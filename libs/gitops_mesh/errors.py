"""The runtime's own exception tree; adapters wrap library errors into these at their edge.

GitopsMeshError
├── TransientError          retry with backoff (or after ``retry_after``)
│   ├── KubeUnavailable     apiserver unreachable, 5xx, timeouts
│   ├── Conflict            409: stale resourceVersion or apply conflict
│   ├── Gone                410: watch resourceVersion expired, relist
│   ├── BusUnavailable      Kafka unreachable
│   └── DependencyNotReady  a dependency is not ready yet (requeue on --requeue-dependency)
└── TerminalError           no retry until the spec changes (Stalled=True)
    ├── NotFound            404
    ├── Forbidden           401/403
    ├── Invalid             400/422: the apiserver rejected the object
    └── InvalidSpec         our own validation of a spec failed
"""

from __future__ import annotations


class GitopsMeshError(Exception):
    """Base of every error the runtime raises on purpose."""

    #: A short CamelCase reason for conditions and events (Flux's vocabulary where it has one).
    reason: str = "Failed"


class TransientError(GitopsMeshError):
    """Worth retrying: the world may change without the spec changing."""

    def __init__(self, message: str, *, retry_after: float | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        if reason is not None:
            self.reason = reason


class TerminalError(GitopsMeshError):
    """Retrying the same spec cannot help: the object is Stalled until its generation changes."""

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class KubeUnavailable(TransientError):
    """The apiserver could not be reached or answered 5xx / 429."""


class Conflict(TransientError):
    """409 from the apiserver."""


class Gone(TransientError):
    """410 from the apiserver: the resourceVersion is too old; relist."""


class BusUnavailable(TransientError):
    """Kafka could not be reached."""


class DependencyNotReady(TransientError):
    """A dependency (source, dependsOn) is not ready; the object waits without holding a worker."""

    reason = "DependencyNotReady"


class NotFound(TerminalError):
    """404 from the apiserver."""


class Forbidden(TerminalError):
    """401 or 403 from the apiserver (RBAC, impersonation)."""


class Invalid(TerminalError):
    """400 or 422: the apiserver rejected what we sent."""


class InvalidSpec(TerminalError):
    """Our own checks rejected a spec (bad reference, cross-namespace ref when forbidden, ...)."""

    reason = "InvalidSpec"
