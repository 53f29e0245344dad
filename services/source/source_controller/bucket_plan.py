"""Bucket's decisions, pure: what the spec may ask for, whether the listed revision is already stored,
and what each step leaves on status. The reconciler (:mod:`.bucket`) does the I/O between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitops_mesh.bus.envelope import EventKind, Severity
from gitops_mesh.errors import GitopsMeshError, InvalidSpec
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import Announcement, Outcome
from gitops_mesh.reconcile.unsupported import UNSUPPORTED_FIELD
from gitops_mesh.runner import interval_of
from source_controller.artifact_status import bus_artifact
from source_controller.objectstore.gcs_auth import bucket_problem
from source_controller.status_edits import Done, Failure, Mark, StatusEdit

GENERIC, AWS, AZURE, GCP = "generic", "aws", "azure", "gcp"


def provider_of(spec: Mapping[str, Any]) -> str:
    return str(spec.get("provider") or GENERIC)


def refuse_provider_fields(spec: Mapping[str, Any]) -> None:
    """Fields Flux ignores for some providers, or whose authentication is not implemented here: refused by
    name (UnsupportedField, Stalled) rather than accepted and not acted on."""
    provider = provider_of(spec)
    problems = []
    if provider == AZURE and (spec.get("certSecretRef") or {}).get("name"):
        problems.append(
            "spec.certSecretRef is not supported for the 'azure' provider (Flux reads it for generic and aws only)"
        )
    if provider == AWS and not (spec.get("secretRef") or {}).get("name"):
        problems.append(
            "provider 'aws' without spec.secretRef authenticates with IAM (EC2 instance role or IRSA, with "
            "spec.sts.endpoint as its STS endpoint when set), which is not implemented; set spec.secretRef to a "
            "Secret with 'accesskey' and 'secretkey'"
        )
    if provider == GCP:
        problems += _gcp_problems(spec)
    if problems:
        raise InvalidSpec("; ".join(problems), reason=UNSUPPORTED_FIELD)
    if provider == GCP:
        problem = bucket_problem(str(spec.get("bucketName") or ""))
        if problem is not None:
            raise InvalidSpec(f"spec.bucketName '{spec.get('bucketName')}' is not a GCS bucket name: it {problem}")


def _gcp_problems(spec: Mapping[str, Any]) -> list[str]:
    problems = []
    if (spec.get("certSecretRef") or {}).get("name"):
        problems.append(
            "spec.certSecretRef is not supported for the 'gcp' provider (Flux reads it for generic and aws only)"
        )
    if not (spec.get("secretRef") or {}).get("name"):
        problems.append(
            "provider 'gcp' without spec.secretRef authenticates with the controller's own Google credentials "
            "(workload identity, Application Default Credentials), which is not implemented; set spec.secretRef to "
            "a Secret whose 'serviceaccount' holds a service account key file"
        )
    return problems


def stored_message(revision: str) -> str:
    return f"stored artifact: revision '{revision}'"


def new_artifact_message(count: int, bucket: str) -> str:
    return f"stored artifact with {count} fetched files from '{bucket}' bucket"


@dataclass(frozen=True, slots=True)
class Observed:
    """What the listing found: the index's revision; whether status.artifact's file is in storage."""

    revision: str
    artifact_stored: bool


@dataclass(frozen=True, slots=True)
class Fetch:
    """Fetch the changed objects and store a new artifact, after ``edit``."""

    edit: StatusEdit


def is_up_to_date(status: Mapping[str, Any], revision: str) -> bool:
    return bool((status.get("artifact") or {}).get("revision") == revision)


def plan(obj: KubeObject, observed: Observed) -> Done | Fetch:
    """The listing is done: nothing to fetch when its revision is the stored artifact's, else fetch."""
    status = obj.get("status") or {}
    if observed.artifact_stored and is_up_to_date(status, observed.revision):
        message = stored_message(observed.revision)
        return Done(
            StatusEdit(
                marks=(Mark(c.ConditionType.ARTIFACT_IN_STORAGE, c.Reason.SUCCEEDED, message),),
                deletes=(c.ConditionType.FETCH_FAILED, c.ConditionType.ARTIFACT_OUTDATED),
            ),
            Outcome.succeeded(requeue_after=interval_of(obj), message=message, reason=c.Reason.SUCCEEDED),
        )
    marks: tuple[Mark, ...] = ()
    if status.get("artifact"):
        message = f"new upstream revision '{observed.revision}'"
        marks = (Mark(c.ConditionType.ARTIFACT_OUTDATED, "NewRevision", message),)
    return Fetch(StatusEdit(marks=marks))


def fetch_failed(error: GitopsMeshError) -> Failure:
    """Reading the Secrets, listing or fetching failed: FetchFailed with the error's reason; the stored
    artifact (and status.artifact) stays and is still served."""
    return Failure(StatusEdit.failed(c.ConditionType.FETCH_FAILED, error), error)


def stored(obj: KubeObject, revision: str, artifact: dict[str, Any], url: str, count: int) -> Done:
    """The new artifact is stored (``url`` is its latest link): record it, announce it if its revision is new."""
    spec, status = obj["spec"], obj.get("status") or {}
    message = stored_message(revision)
    announce = []
    if (status.get("artifact") or {}).get("revision") != revision:
        announce.append(
            Announcement(
                EventKind.ARTIFACT_READY,
                "NewArtifact",
                new_artifact_message(count, spec["bucketName"]),
                revision=revision,
                severity=Severity.INFO,
                artifact=bus_artifact(artifact),
            )
        )
    writes: dict[str, Any] = {"artifact": artifact, "url": url}
    if spec.get("ignore") is not None:
        writes["observedIgnore"] = spec["ignore"]
    edit = StatusEdit(
        marks=(Mark(c.ConditionType.ARTIFACT_IN_STORAGE, c.Reason.SUCCEEDED, message),),
        deletes=(
            c.ConditionType.FETCH_FAILED,
            c.ConditionType.STORAGE_OPERATION_FAILED,
            c.ConditionType.ARTIFACT_OUTDATED,
        ),
        writes=writes,
        drops=() if "observedIgnore" in writes else ("observedIgnore",),
    )
    outcome = Outcome.succeeded(
        requeue_after=interval_of(obj), message=message, reason=c.Reason.SUCCEEDED, announce=announce
    )
    return Done(edit, outcome)
