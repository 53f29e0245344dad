"""Provider and Receiver spec fields this controller does not implement, refused when set (see
gitops_mesh.reconcile.unsupported). Every Alert field is implemented: Alerts have no table.

A refused Provider is Stalled and each delivery through it is parked with the same message; a refused
Receiver is Stalled, so its webhook answers 404 (never Ready) or 503 (Ready before).
"""

from __future__ import annotations

from gitops_mesh.reconcile.unsupported import UNSUPPORTED_FIELD, Unsupported, refuse_unsupported, unsupported_fields

#: The Receiver types :func:`notification_controller.receivers.validate` checks requests for.
RECEIVER_TYPES = frozenset({"generic", "generic-hmac", "github", "gitlab", "bitbucket", "harbor", "cdevents"})

PROVIDER: tuple[Unsupported, ...] = (
    Unsupported(
        "serviceAccountName",
        "workload identity (a ServiceAccount's cloud credentials) is not implemented; use spec.secretRef",
    ),
    Unsupported(
        "commitStatusExpr",
        "CEL commit status expressions are not implemented; ignoring one would post statuses under another id",
    ),
)

RECEIVER: tuple[Unsupported, ...] = (
    Unsupported(
        "resourceFilter",
        "CEL resource filters are not implemented; ignoring one would request a reconcile of every resource "
        "spec.resources matches",
    ),
    Unsupported(
        "type",
        "requests of this type cannot be verified, so every one would be refused",
        allowed=RECEIVER_TYPES,
    ),
)

__all__ = ["PROVIDER", "RECEIVER", "RECEIVER_TYPES", "UNSUPPORTED_FIELD", "refuse_unsupported", "unsupported_fields"]
