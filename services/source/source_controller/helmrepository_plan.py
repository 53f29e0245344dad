"""HelmRepository's decisions, pure: Flux's wording of a failed fetch, whether the fetched index is already
stored, and what storing it (or a static OCI repository) leaves on status. The I/O is :mod:`.helmrepository`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitops_mesh.bus.envelope import EventKind, Severity
from gitops_mesh.errors import GitopsMeshError, TerminalError, TransientError
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import Announcement, Outcome
from gitops_mesh.runner import interval_of
from source_controller.artifact_status import bus_artifact
from source_controller.helm import InvalidIndex, RepositoryFetchFailed
from source_controller.status_edits import Done, Failure, Mark, StatusEdit

OCI_READY_MESSAGE = "Helm repository is ready"


def is_oci(spec: Mapping[str, Any]) -> bool:
    return spec.get("type") == "oci"


def is_up_to_date(status: Mapping[str, Any], revision: str) -> bool:
    """The stored artifact already holds this index revision."""
    return bool((status.get("artifact") or {}).get("revision") == revision)


def stored_message(revision: str) -> str:
    return f"stored artifact: revision '{revision}'"


def fetch_error(error: GitopsMeshError) -> GitopsMeshError:
    """The error to report for a failed index fetch: Flux's wording, the same reason and retry class."""
    if isinstance(error, InvalidIndex):
        message = f"failed to load Helm repository from index YAML: {error}"
    elif isinstance(error, RepositoryFetchFailed):
        message = f"failed to fetch Helm repository index: {error}"
        if error.status == 404:
            message += "; spec.url must be the repository root, the directory holding index.yaml"
    else:
        return error
    if isinstance(error, TerminalError):
        return TerminalError(message, reason=error.reason)
    retry_after = error.retry_after if isinstance(error, TransientError) else None
    return TransientError(message, reason=error.reason, retry_after=retry_after)


def fetch_failed(error: GitopsMeshError) -> Failure:
    """Reading the credentials or fetching the index failed: FetchFailed; the stored artifact stays."""
    reported = fetch_error(error)
    return Failure(StatusEdit.failed(c.ConditionType.FETCH_FAILED, reported), reported)


@dataclass(frozen=True, slots=True)
class Observed:
    """What the I/O found: the fetched index's revision, and whether status.artifact's file is in storage."""

    revision: str
    artifact_stored: bool


@dataclass(frozen=True, slots=True)
class Store:
    """Store the fetched index, after ``edit``."""

    edit: StatusEdit


def _in_storage(message: str) -> tuple[Mark, ...]:
    return (Mark(c.ConditionType.ARTIFACT_IN_STORAGE, c.Reason.SUCCEEDED, message),)


def plan(obj: KubeObject, observed: Observed) -> Done | Store:
    """The index was fetched: nothing more to do when it is the stored one, else store it."""
    fetched = (c.ConditionType.FETCH_FAILED,)
    if observed.artifact_stored and is_up_to_date(obj.get("status") or {}, observed.revision):
        message = stored_message(observed.revision)
        return Done(
            StatusEdit(marks=_in_storage(message), deletes=(*fetched, c.ConditionType.ARTIFACT_OUTDATED)),
            Outcome.succeeded(requeue_after=interval_of(obj), message=message, reason=c.Reason.SUCCEEDED),
        )
    return Store(StatusEdit(deletes=fetched))


def index_stored(obj: KubeObject, revision: str, artifact: dict[str, Any], url: str) -> Done:
    """The new index is stored (``url`` is its index.yaml link): record it, announce it if its revision is new."""
    announce = []
    if ((obj.get("status") or {}).get("artifact") or {}).get("revision") != revision:
        announce.append(
            Announcement(
                EventKind.ARTIFACT_READY,
                "NewArtifact",
                f"stored fetched index of size {artifact['size']} from '{obj['spec']['url']}'",
                revision=revision,
                severity=Severity.INFO,
                artifact=bus_artifact(artifact),
            )
        )
    message = stored_message(revision)
    edit = StatusEdit(
        marks=_in_storage(message),
        deletes=(c.ConditionType.STORAGE_OPERATION_FAILED, c.ConditionType.ARTIFACT_OUTDATED),
        writes={"artifact": artifact, "url": url},
    )
    outcome = Outcome.succeeded(
        requeue_after=interval_of(obj), message=message, reason=c.Reason.SUCCEEDED, announce=announce
    )
    return Done(edit, outcome)


def holds_artifact(obj: KubeObject) -> bool:
    """status has an artifact (or its link) from an earlier ``type: default`` spec."""
    status = obj.get("status") or {}
    return bool(status.get("artifact") or status.get("url"))


def oci_url_invalid(error: Exception) -> TerminalError:
    """An OCI repository URL that names no registry: Flux's URLInvalid, Stalled until the spec changes."""
    return TerminalError(str(error), reason="URLInvalid")


def oci_ready(obj: KubeObject) -> Done:
    """``type: oci``: the registry answered; Ready, with no artifact and no artifact conditions."""
    edit = StatusEdit(
        deletes=(
            c.ConditionType.ARTIFACT_IN_STORAGE,
            c.ConditionType.ARTIFACT_OUTDATED,
            c.ConditionType.FETCH_FAILED,
            c.ConditionType.STORAGE_OPERATION_FAILED,
        ),
        drops=("artifact", "url"),
    )
    # The login is checked again every interval, as Flux's OCI reconciler did (credentials expire).
    outcome = Outcome.succeeded(requeue_after=interval_of(obj), message=OCI_READY_MESSAGE, reason=c.Reason.SUCCEEDED)
    return Done(edit, outcome)
