"""Apply: the manifests of a build onto the cluster, as Flux's ssa ResourceManager does, and their health."""

from gitops_mesh.kube.health import Health, HealthReport, Status, Verdict, check, compute, wait
from kustomize_controller.apply.applier import apply_all
from kustomize_controller.apply.changeset import (
    Action,
    ChangeSet,
    ChangeSetEntry,
    ChangeSetError,
    ChangeSetInterrupted,
    ChangeSetRejected,
    ObjectFailure,
)
from kustomize_controller.apply.inventory import InventoryEntry, ObjectId, deletion_order, diff, parse_entry
from kustomize_controller.apply.objects import Owner, SSAPolicy, Stage
from kustomize_controller.apply.prune import DeletionPolicy, deletion_policy, finalize, prune, remaining

__all__ = [
    "Action",
    "ChangeSet",
    "ChangeSetEntry",
    "ChangeSetError",
    "ChangeSetInterrupted",
    "ChangeSetRejected",
    "DeletionPolicy",
    "Health",
    "HealthReport",
    "InventoryEntry",
    "ObjectFailure",
    "ObjectId",
    "Owner",
    "SSAPolicy",
    "Stage",
    "Status",
    "Verdict",
    "apply_all",
    "check",
    "compute",
    "deletion_order",
    "deletion_policy",
    "diff",
    "finalize",
    "parse_entry",
    "prune",
    "remaining",
    "wait",
]
