"""GitRepository's decisions, pure: the includes it waits for, whether the stored artifact is current, what to
fetch, and what each step leaves on status. The reconciler (:mod:`.gitrepository`) does the I/O between them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gitops_mesh.bus.envelope import EventKind, Severity
from gitops_mesh.errors import DependencyNotReady, GitopsMeshError, InvalidSpec
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import Announcement, Outcome
from gitops_mesh.runner import interval_of
from gitops_mesh.watches import is_ready_at_generation
from source_controller.artifact_status import bus_artifact
from source_controller.git.remote import sparse_directories
from source_controller.status_edits import Done, Mark, StatusEdit

#: The spec fields recorded in status because they shape the artifact without changing the commit.
OBSERVED_KEYS = ("observedIgnore", "observedRecurseSubmodules", "observedSparseCheckout", "observedInclude")
INCLUDED_ARTIFACTS = "includedArtifacts"

#: Looks a GitRepository up by namespace and name in the process's cache.
Lookup = Callable[[str, str], KubeObject | None]


def observed_config(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec fields that change an artifact's content without changing the commit (Flux's observed*)."""
    observed: dict[str, Any] = {}
    if spec.get("ignore") is not None:
        observed["observedIgnore"] = spec["ignore"]
    if spec.get("recurseSubmodules"):
        observed["observedRecurseSubmodules"] = True
    if spec.get("sparseCheckout"):
        observed["observedSparseCheckout"] = list(spec["sparseCheckout"])
    if spec.get("include"):
        observed["observedInclude"] = list(spec["include"])
    return observed


def is_up_to_date(
    status: Mapping[str, Any], revision: str, spec: Mapping[str, Any], includes: Sequence[Mapping[str, Any]]
) -> bool:
    """Same revision, same content-shaping spec, same included artifacts, verified if asked."""
    artifact = status.get("artifact") or {}
    if artifact.get("revision") != revision:
        return False
    wanted = observed_config(spec)
    if any(status.get(k) != wanted.get(k) for k in OBSERVED_KEYS):
        return False
    if [a.get("digest") for a in status.get(INCLUDED_ARTIFACTS) or []] != [a.get("digest") for a in includes]:
        return False
    verified = c.is_true(status.get("conditions") or [], c.ConditionType.SOURCE_VERIFIED)
    return verified or not spec.get("verify")


def included_artifacts(namespace: str, spec: Mapping[str, Any], lookup: Lookup) -> list[dict[str, Any]]:
    """The artifacts of spec.include's GitRepositories, in order; each must be Ready at its generation, else
    we wait (DependencyNotReady): its new artifact wakes us through the include index."""
    out = []
    for inc in spec.get("include") or []:
        name = inc["repository"]["name"]
        other = lookup(namespace, name)
        if other is None:
            raise DependencyNotReady(f"included GitRepository '{namespace}/{name}' not found")
        artifact = (other.get("status") or {}).get("artifact")
        if not artifact or not is_ready_at_generation(other):
            raise DependencyNotReady(f"included GitRepository '{namespace}/{name}' has no artifact yet")
        out.append(artifact)
    return out


def stored_message(revision: str) -> str:
    return f"stored artifact for revision '{revision}'"


@dataclass(frozen=True, slots=True)
class Observed:
    """What the I/O found before deciding: where the ref points, and what is already stored."""

    #: the revision spec.ref resolves to on the remote now
    revision: str
    #: status.artifact's file is in storage
    artifact_stored: bool
    #: the included GitRepositories' artifacts, in spec.include's order
    includes: Sequence[dict[str, Any]] = ()


@dataclass(frozen=True, slots=True)
class Fetch:
    """Fetch the commit and pack it."""

    #: no files on disk: the commit's objects are packed as they are (no include, submodules, sparse)
    streamed: bool
    recurse_submodules: bool
    sparse: tuple[str, ...]


def plan(obj: KubeObject, observed: Observed) -> Done | Fetch:
    """Nothing to do when the stored artifact is this revision with this spec; else what to fetch.

    An invalid spec.sparseCheckout entry (a ``..``) is InvalidSpec here, before anything is fetched.
    """
    spec, status = obj["spec"], obj.get("status") or {}
    sparse_directories(spec.get("sparseCheckout") or ())
    if observed.artifact_stored and is_up_to_date(status, observed.revision, spec, observed.includes):
        return Done(
            StatusEdit(deletes=(c.ConditionType.FETCH_FAILED, c.ConditionType.ARTIFACT_OUTDATED)),
            Outcome.succeeded(requeue_after=interval_of(obj), message=stored_message(observed.revision)),
        )
    recurse, sparse = bool(spec.get("recurseSubmodules")), tuple(spec.get("sparseCheckout") or ())
    return Fetch(streamed=not (spec.get("include") or recurse or sparse), recurse_submodules=recurse, sparse=sparse)


def fetch_failed(error: GitopsMeshError) -> StatusEdit:
    """Resolving or fetching the ref failed: FetchFailed with the git error's reason."""
    return StatusEdit.failed(c.ConditionType.FETCH_FAILED, error)


#: The commit was fetched.
FETCHED = StatusEdit(deletes=(c.ConditionType.FETCH_FAILED,))
#: spec.verify is not set: no verdict on signatures.
NOT_VERIFIED = StatusEdit(deletes=(c.ConditionType.SOURCE_VERIFIED,))


def verification_secret(verify: Mapping[str, Any]) -> str:
    """spec.verify's Secret of trusted keys (required)."""
    secret = (verify.get("secretRef") or {}).get("name")
    if not secret:
        raise InvalidSpec("spec.verify.secretRef is required to verify signatures")
    return str(secret)


def verified(message: str) -> StatusEdit:
    return StatusEdit(marks=(Mark(c.ConditionType.SOURCE_VERIFIED, c.Reason.SUCCEEDED, message),))


def verification_failed(error: GitopsMeshError) -> StatusEdit:
    mark = Mark(c.ConditionType.SOURCE_VERIFIED, error.reason, str(error), c.ConditionStatus.FALSE)
    return StatusEdit(marks=(mark,))


def stored(obj: KubeObject, revision: str, artifact: dict[str, Any], includes: Sequence[dict[str, Any]] = ()) -> Done:
    """The new artifact is stored: record it with the spec it was built for, announce it if its revision is new."""
    status = obj.get("status") or {}
    writes = {"artifact": artifact, **observed_config(obj["spec"])}
    if includes:
        writes[INCLUDED_ARTIFACTS] = list(includes)
    message = stored_message(revision)
    announce = []
    if (status.get("artifact") or {}).get("revision") != revision:
        announce.append(
            Announcement(
                EventKind.ARTIFACT_READY,
                "NewArtifact",
                message,
                revision=revision,
                severity=Severity.INFO,
                artifact=bus_artifact(artifact),
            )
        )
    edit = StatusEdit(
        marks=(Mark(c.ConditionType.ARTIFACT_IN_STORAGE, c.Reason.SUCCEEDED, message),),
        deletes=(c.ConditionType.STORAGE_OPERATION_FAILED, c.ConditionType.ARTIFACT_OUTDATED),
        writes=writes,
        drops=tuple(k for k in (*OBSERVED_KEYS, INCLUDED_ARTIFACTS) if k not in writes),
    )
    return Done(edit, Outcome.succeeded(requeue_after=interval_of(obj), message=message, announce=announce))
