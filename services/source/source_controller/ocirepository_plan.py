"""OCIRepository's decisions, pure: which reference to resolve, the revision it makes, whether to verify, whether
the stored artifact is current, which layer to take, and Flux's words for each step's failure and success.
The reconciler (:mod:`.ocirepository`) does the I/O between them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

from gitops_mesh.bus.envelope import EventKind, Severity
from gitops_mesh.errors import GitopsMeshError, InvalidSpec, TerminalError, TransientError
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.oci import InvalidReference, Manifest, Repository, parse_repository
from gitops_mesh.oci.manifest import REVISION_ANNOTATION, SOURCE_ANNOTATION, Descriptor
from gitops_mesh.oci.reference import DEFAULT_TAG, check_digest, check_tag
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import Announcement, Outcome
from gitops_mesh.reconcile.unsupported import UNSUPPORTED_FIELD
from gitops_mesh.runner import interval_of
from gitops_mesh.semver import InvalidConstraint, best_match, parse_constraint
from source_controller.artifact_status import bus_artifact
from source_controller.status_edits import Done, Failure, Mark, StatusEdit

# Flux's reasons (source-controller api/v1).
OCI_PULL_FAILED = "OCIArtifactPullFailed"
OCI_LAYER_OPERATION_FAILED = "OCIArtifactLayerOperationFailed"
AUTHENTICATION_FAILED = "AuthenticationFailed"
READ_OPERATION_FAILED = "ReadOperationFailed"
URL_INVALID = "URLInvalid"
VERIFICATION_ERROR = "VerificationError"

EXTRACT = "extract"
COPY = "copy"
#: Helm's chart layer: its OCI tags write a version's ``+`` as ``_`` (Flux converts them for semver).
HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
#: A tenant's semverFilter is matched on each tag with RE2 (linear time); its length is capped.
MAX_FILTER_LENGTH = 1024

OBSERVED_KEYS = ("observedIgnore", "observedLayerSelector")


@dataclass(frozen=True, slots=True)
class Ref:
    """What spec.ref asks for, by Flux's precedence: digest over semver over tag (default ``latest``)."""

    tag: str = ""
    semver: str = ""
    semver_filter: str = ""
    digest: str = ""


def artifact_ref(spec: Mapping[str, Any]) -> Ref:
    """spec.ref checked: a malformed tag or digest is InvalidSpec (only an edit fixes it)."""
    ref = spec.get("ref") or {}
    try:
        if ref.get("digest"):
            return Ref(digest=check_digest(str(ref["digest"])))
        if ref.get("semver"):
            return Ref(semver=str(ref["semver"]), semver_filter=str(ref.get("semverFilter") or ""))
        return Ref(tag=check_tag(str(ref.get("tag") or DEFAULT_TAG)))
    except InvalidReference as e:
        raise InvalidSpec(f"spec.ref: {e}", reason=URL_INVALID) from e


def repository_of(spec: Mapping[str, Any]) -> Repository:
    """spec.url as a repository; a URL that names nothing is Stalled (URLInvalid), as Flux stalls it."""
    url = str(spec.get("url") or "")
    try:
        return parse_repository(url)
    except InvalidReference as e:
        raise InvalidSpec(f"URL validation failed for '{url}': {e}", reason=URL_INVALID) from e


def refuse_keyless(spec: Mapping[str, Any]) -> None:
    """spec.verify without secretRef asks for keyless verification, which is not implemented: refused."""
    verify = spec.get("verify")
    if verify and not (verify.get("secretRef") or {}).get("name"):
        raise InvalidSpec(
            "spec.verify without secretRef (cosign keyless verification) is not supported by this controller: "
            "Fulcio/Rekor verification is not implemented; put the signers' public keys ('*.pub') in a Secret "
            "and name it in spec.verify.secretRef",
            reason=UNSUPPORTED_FIELD,
        )


def _semver_tag(tag: str, media_type: str) -> str:
    return tag.replace("_", "+") if media_type == HELM_CHART_LAYER else tag


def select_tag(ref: Ref, tags: Iterable[str], layer_media_type: str = "") -> str:
    """The highest tag in spec.ref.semver's range among those semverFilter keeps (Flux's getTagBySemver).

    InvalidSpec for a malformed range or filter (Flux retries those; only an edit fixes them);
    TransientError when no tag matches yet (a later push may bring one).
    """
    try:
        constraint = parse_constraint(ref.semver)
    except InvalidConstraint as e:
        raise InvalidSpec(f"semver '{ref.semver}' parse error: {e}", reason=READ_OPERATION_FAILED) from e
    candidates = list(tags)
    if ref.semver_filter:
        if len(ref.semver_filter) > MAX_FILTER_LENGTH:
            raise InvalidSpec(f"spec.ref.semverFilter is longer than {MAX_FILTER_LENGTH} characters")
        try:
            pattern = re2.compile(ref.semver_filter)
        except re2.error as e:
            raise InvalidSpec(f"spec.ref.semverFilter is not a valid regular expression: {e}") from e
        candidates = [t for t in candidates if pattern.search(t)]
    by_version = {_semver_tag(t, layer_media_type): t for t in candidates}
    best = best_match(constraint, by_version)
    if best is None:
        raise TransientError(f"no match found for semver: {ref.semver}", reason=READ_OPERATION_FAILED)
    return by_version[best]


def revision_of(tag: str, digest: str) -> str:
    """Flux's revision: ``<tag>@<digest>``, or the digest alone for a digest reference."""
    return f"{tag}@{digest}" if tag else digest


def digest_of(revision: str) -> str:
    return revision.rsplit("@", 1)[-1]


def layer_selector(spec: Mapping[str, Any]) -> tuple[str, str]:
    """spec.layerSelector's media type ("" for the first layer) and operation (default extract)."""
    selector = spec.get("layerSelector") or {}
    return str(selector.get("mediaType") or ""), str(selector.get("operation") or EXTRACT)


def needs_verification(obj: KubeObject, revision: str) -> bool:
    """Flux verifies on a new revision, a new generation, or after a failed verification."""
    spec, status = obj["spec"], obj.get("status") or {}
    if not spec.get("verify"):
        return False
    if (status.get("artifact") or {}).get("revision") != revision:
        return True
    verified = c.get(status.get("conditions") or [], c.ConditionType.SOURCE_VERIFIED)
    return (
        verified is None
        or verified["status"] != c.ConditionStatus.TRUE
        or verified.get("observedGeneration") != (obj.get("metadata") or {}).get("generation")
    )


def observed_config(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec fields that change the artifact without changing the revision (Flux's observed*)."""
    observed: dict[str, Any] = {}
    if spec.get("ignore") is not None:
        observed["observedIgnore"] = spec["ignore"]
    if spec.get("layerSelector") is not None:
        observed["observedLayerSelector"] = dict(spec["layerSelector"])
    return observed


def is_up_to_date(status: Mapping[str, Any], revision: str, spec: Mapping[str, Any]) -> bool:
    """Same revision, same ignore rules and layer selector (Flux's ociContentConfigChanged)."""
    if (status.get("artifact") or {}).get("revision") != revision:
        return False
    wanted = observed_config(spec)
    return all(status.get(k) == wanted.get(k) for k in OBSERVED_KEYS)


def stored_message(revision: str) -> str:
    return f"stored artifact for digest '{revision}'"


@dataclass(frozen=True, slots=True)
class Observed:
    """What the I/O found before deciding: the remote revision, and whether status.artifact's file is stored."""

    revision: str
    artifact_stored: bool


@dataclass(frozen=True, slots=True)
class Pull:
    """Pull the manifest and its selected layer, then store it with ``operation``."""

    media_type: str
    operation: str


def plan(obj: KubeObject, observed: Observed) -> Done | Pull:
    """Nothing to pull when the stored artifact is this revision with this spec (no blob is downloaded)."""
    spec, status = obj["spec"], obj.get("status") or {}
    if observed.artifact_stored and is_up_to_date(status, observed.revision, spec):
        message = stored_message(observed.revision)
        return Done(
            StatusEdit(
                marks=(Mark(c.ConditionType.ARTIFACT_IN_STORAGE, c.Reason.SUCCEEDED, message),),
                deletes=(c.ConditionType.FETCH_FAILED, c.ConditionType.ARTIFACT_OUTDATED),
            ),
            Outcome.succeeded(requeue_after=interval_of(obj), message=message, reason=c.Reason.SUCCEEDED),
        )
    media_type, operation = layer_selector(spec)
    return Pull(media_type, operation)


def select_layer(manifest: Manifest, media_type: str) -> Descriptor:
    """The layer spec.layerSelector names (the first of that media type), else the first layer."""
    if not manifest.layers:
        raise TransientError("no layers found in artifact", reason=OCI_LAYER_OPERATION_FAILED)
    if not media_type:
        return manifest.layers[0]
    for layer in manifest.layers:
        if layer.media_type == media_type:
            return layer
    raise TransientError(
        f"failed to find layer with media type '{media_type}' in artifact", reason=OCI_LAYER_OPERATION_FAILED
    )


def _reworded(error: GitopsMeshError, message: str, reason: str) -> GitopsMeshError:
    """``error`` with Flux's wording and reason, keeping its retry class (and Retry-After)."""
    if isinstance(error, TerminalError):
        return TerminalError(message, reason=reason)
    retry_after = error.retry_after if isinstance(error, TransientError) else None
    return TransientError(message, reason=reason, retry_after=retry_after)


def fetch_failed(error: GitopsMeshError, message: str, reason: str) -> Failure:
    """A step talking to the registry failed: FetchFailed (and Ready=False) with Flux's reason and words."""
    reported = _reworded(error, message, reason)
    return Failure(StatusEdit.failed(c.ConditionType.FETCH_FAILED, reported), reported)


def credentials_failed(error: GitopsMeshError | ValueError, what: str) -> Failure:
    """Reading credentials, TLS material or the proxy failed: FetchFailed/AuthenticationFailed, retried."""
    reported = TransientError(f"{what}: {error}", reason=AUTHENTICATION_FAILED)
    return Failure(StatusEdit.failed(c.ConditionType.FETCH_FAILED, reported), reported)


def verification_failed(error: GitopsMeshError) -> Failure:
    """SourceVerified=False/VerificationError; the stored artifact stays."""
    reported = TransientError(
        f"failed to verify the signature using provider 'cosign': {error}", reason=VERIFICATION_ERROR
    )
    mark = Mark(c.ConditionType.SOURCE_VERIFIED, VERIFICATION_ERROR, str(reported), c.ConditionStatus.FALSE)
    return Failure(StatusEdit(marks=(mark,)), reported)


def verified(revision: str) -> StatusEdit:
    return StatusEdit(
        marks=(Mark(c.ConditionType.SOURCE_VERIFIED, c.Reason.SUCCEEDED, f"verified signature of revision {revision}"),)
    )


#: spec.verify is not set: no verdict on signatures.
NOT_VERIFIED = StatusEdit(deletes=(c.ConditionType.SOURCE_VERIFIED,))
#: The artifact was pulled.
FETCHED = StatusEdit(deletes=(c.ConditionType.FETCH_FAILED,))


def new_artifact_message(revision: str, url: str, annotations: Mapping[str, str]) -> str:
    """Flux's NewArtifact event: the revision and URL, with the origin the publisher annotated."""
    message = f"stored artifact with revision '{revision}' from '{url}'"
    source, origin = annotations.get(SOURCE_ANNOTATION), annotations.get(REVISION_ANNOTATION)
    if source and origin:
        message += f", origin source '{source}', origin revision '{origin}'"
    return message


def stored(obj: KubeObject, revision: str, artifact: dict[str, Any], url: str) -> Done:
    """The new artifact is stored (``url`` its latest link): record it with the spec it was built for, and
    announce it when its content changed (Flux's NewArtifact on a new digest)."""
    spec, status = obj["spec"], obj.get("status") or {}
    writes = {"artifact": artifact, "url": url, **observed_config(spec)}
    message = stored_message(revision)
    announce = []
    if (status.get("artifact") or {}).get("digest") != artifact["digest"]:
        announce.append(
            Announcement(
                EventKind.ARTIFACT_READY,
                "NewArtifact",
                new_artifact_message(revision, spec["url"], artifact.get("metadata") or {}),
                revision=revision,
                severity=Severity.INFO,
                artifact=bus_artifact(artifact),
            )
        )
    edit = StatusEdit(
        marks=(Mark(c.ConditionType.ARTIFACT_IN_STORAGE, c.Reason.SUCCEEDED, message),),
        deletes=(c.ConditionType.STORAGE_OPERATION_FAILED, c.ConditionType.ARTIFACT_OUTDATED),
        writes=writes,
        drops=tuple(k for k in OBSERVED_KEYS if k not in writes),
    )
    return Done(
        edit,
        Outcome.succeeded(
            requeue_after=interval_of(obj), message=message, reason=c.Reason.SUCCEEDED, announce=announce
        ),
    )
