"""The runtime's own exception tree; adapters wrap library errors into these at their edge.

GitopsMeshError
├── TransientError          retry: after ``retry_after``, the object's retryInterval, or with backoff
│   ├── KubeUnavailable     apiserver unreachable, 5xx, 429, timeouts
│   ├── Conflict            409: stale resourceVersion or apply conflict
│   ├── Gone                410: watch resourceVersion expired, relist
│   ├── BusUnavailable      Kafka unreachable
│   └── DependencyNotReady  a dependency is not ready yet (requeue on --requeue-dependency)
├── ApiError                what the apiserver answered, neutral: the caller decides what it means
│   ├── NotFound            404
│   ├── Forbidden           401/403
│   └── Invalid             400/422 (and other 4xx): the apiserver rejected what we sent
└── TerminalError           no retry until the object's own spec changes (Stalled=True)
    └── InvalidSpec         our own validation of a spec failed

An :class:`ApiError` is neither transient nor terminal by itself: a 404 is "gone, good" to a finalizer,
"not there yet" to a reconcile waiting for a Secret, "no such CRD yet" to an apply. A reconcile that lets
one escape is retried, as Flux retries everything that depends on other objects or on the cluster; only
a :class:`TerminalError`, raised on purpose by a reconciler about its own spec, stalls an object.
"""

from __future__ import annotations


class GitopsMeshError(Exception):
    """Base of every error the runtime raises on purpose."""

    #: A short CamelCase reason for conditions and events (Flux's vocabulary where it has one).
    reason: str = "Failed"

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class TransientError(GitopsMeshError):
    """Worth retrying: the world may change without the spec changing."""

    def __init__(self, message: str, *, retry_after: float | None = None, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class TerminalError(GitopsMeshError):
    """Retrying the same spec cannot help: the object is Stalled until its generation changes."""


class ApiError(GitopsMeshError):
    """An answer of the apiserver that is not transient by nature; ``code`` is its HTTP status."""

    code: int = 0

    def __init__(self, message: str, *, code: int | None = None, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        if code is not None:
            self.code = code


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


class NotFound(ApiError):
    """404 from the apiserver."""

    code = 404


class Forbidden(ApiError):
    """401 or 403 from the apiserver (RBAC, impersonation)."""

    code = 403


class Invalid(ApiError):
    """400, 422 (or another 4xx): the apiserver rejected what we sent."""

    code = 422


class InvalidSpec(TerminalError):
    """Our own checks rejected a spec (a malformed field, a reference that can never resolve)."""

    reason = "InvalidSpec"
