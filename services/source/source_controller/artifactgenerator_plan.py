"""ArtifactGenerator's decisions, pure: the spec checked, the sources observed, drift, what each ExternalArtifact is.

The reconciler (:mod:`.artifactgenerator`) does the I/O between them. Names, reasons, labels, the
sources digest and the drift rules are source-watcher's (``source.extensions.fluxcd.io/v1beta1``):

* the spec: aliases unique, artifact names unique and valid object names, ``revision``/``originRevision``
  naming an alias, copy entries well formed (ValidationFailed, Stalled); a source in another namespace
  under ``--no-cross-namespace-refs`` is AccessDenied (Stalled);
* a source not found or without an artifact is SourceFetchFailed, retried after ``--requeue-dependency``;
* nothing is rebuilt while the object is Ready for its generation, the sources digest (alias, digest,
  revision and URL of each source's artifact) is the one recorded, every inventory artifact is in storage
  and the ExternalArtifacts labelled as ours are exactly the inventory;
* an ExternalArtifact's revision is ``latest@<digest of its tarball>`` (or the revision of the source
  ``revision`` names); ``originRevision`` sets ``org.opencontainers.image.revision`` in its metadata to
  the source's own origin revision, else the source's revision.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gitops_mesh.bus.envelope import EventKind, Severity
from gitops_mesh.errors import InvalidSpec, TransientError
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import Announcement, Outcome
from gitops_mesh.watches import is_ready_at_generation, ref_key
from source_controller.artifact_status import bus_artifact
from source_controller.generator.copying import CopyOp, parse_copy
from source_controller.generator.globs import BadPattern
from source_controller.generator.pathpattern import PathPattern, PathPatternError, expand, parse_path_pattern
from source_controller.status_edits import Done, StatusEdit

API_VERSION = "source.extensions.fluxcd.io/v1beta1"
KIND = "ArtifactGenerator"
EA_API_VERSION = "source.toolkit.fluxcd.io/v1"
EA_KIND = "ExternalArtifact"
FINALIZER = "source.extensions.fluxcd.io/finalizer"
GENERATOR_LABEL = "source.extensions.fluxcd.io/generator"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
ORIGIN_REVISION = "org.opencontainers.image.revision"
RECONCILE_ANNOTATION = "source.extensions.fluxcd.io/reconcile"
SOURCE_KINDS = ("GitRepository", "OCIRepository", "Bucket", "HelmChart", "ExternalArtifact")
#: source-watcher's GetRequeueAfter: an hour between periodic drift checks (news comes by the watches).
REQUEUE_AFTER = 3600.0

VALIDATION_FAILED = "ValidationFailed"
ACCESS_DENIED = "AccessDenied"
SOURCE_FETCH_FAILED = "SourceFetchFailed"
BUILD_FAILED = "BuildFailed"
RECONCILIATION_FAILED = "ReconciliationFailed"

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

#: Looks a source up by kind, namespace and name in the process's caches.
Lookup = Callable[[str, str, str], KubeObject | None]


@dataclass(frozen=True, slots=True)
class SourceRef:
    alias: str
    kind: str
    namespace: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Output:
    """One entry of spec.artifacts, checked."""

    name: str
    revision: str  # an alias, or "" for latest@<digest>
    origin_revision: str  # an alias, or ""
    copy: tuple[CopyOp, ...]
    #: the pathPattern's captures (lowercased) of the directory this output was rendered for
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Spec:
    sources: tuple[SourceRef, ...]
    #: with a pathPattern, the templates (names and copy paths unrendered, copy unparsed)
    outputs: tuple[Output, ...]
    path_pattern: PathPattern | None = None
    templates: tuple[Mapping[str, Any], ...] = ()


def is_disabled(obj: KubeObject) -> bool:
    """source-watcher's suspension: the ``source.extensions.fluxcd.io/reconcile: disabled`` annotation."""
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(RECONCILE_ANNOTATION)
    return isinstance(value, str) and value.lower() == "disabled"


def source_refs(obj: KubeObject) -> list[str]:
    """The generator cache's index: a generator under each source's ``Kind/namespace/name``."""
    ns = (obj.get("metadata") or {}).get("namespace") or ""
    out = []
    for src in (obj.get("spec") or {}).get("sources") or []:
        if isinstance(src, dict) and src.get("kind") and src.get("name"):
            out.append(ref_key(str(src["kind"]), str(src.get("namespace") or ns), str(src["name"])))
    return out


def output_refs(obj: KubeObject) -> list[str]:
    """Index values: the ExternalArtifacts of the inventory, so deleting one regenerates it at once."""
    return [
        ref_key(EA_KIND, str(ref.get("namespace")), str(ref.get("name")))
        for ref in (obj.get("status") or {}).get("inventory") or []
        if isinstance(ref, dict) and ref.get("name")
    ]


def _alias(value: object, what: str, aliases: set[str]) -> str:
    if not value:
        return ""
    alias = str(value).removeprefix("@")
    if not str(value).startswith("@") or alias not in aliases:
        raise InvalidSpec(f"{what} source alias '{alias}' not found", reason=VALIDATION_FAILED)
    return alias


def validate(obj: KubeObject, *, cross_namespace: bool = True) -> Spec:
    """The spec as :class:`Spec`, or InvalidSpec (ValidationFailed / AccessDenied) naming the problem."""
    ns = obj["metadata"]["namespace"]
    spec = obj.get("spec") or {}
    sources: list[SourceRef] = []
    aliases: set[str] = set()
    for src in spec.get("sources") or []:
        alias = str(src.get("alias") or "")
        if alias in aliases:
            raise InvalidSpec(f"duplicate source alias '{alias}' found", reason=VALIDATION_FAILED)
        aliases.add(alias)
        kind, name = str(src.get("kind") or ""), str(src.get("name") or "")
        if kind not in SOURCE_KINDS:
            raise InvalidSpec(f"source `{name}` kind '{kind}' not supported", reason=VALIDATION_FAILED)
        src_ns = str(src.get("namespace") or ns)
        if not cross_namespace and src_ns != ns:
            raise InvalidSpec(
                f"cross-namespace reference to source {kind}/{src_ns}/{name} is not allowed", reason=ACCESS_DENIED
            )
        sources.append(SourceRef(alias, kind, src_ns, name))
    if not sources:
        raise InvalidSpec("spec.sources must name at least one source", reason=VALIDATION_FAILED)
    path_pattern = _path_pattern(spec.get("pathPattern"), aliases)
    outputs: list[Output] = []
    names: set[str] = set()
    for art in spec.get("artifacts") or []:
        name = str(art.get("name") or "")
        if name in names:
            raise InvalidSpec(f"duplicate artifact name '{name}' found", reason=VALIDATION_FAILED)
        names.add(name)
        revision = _alias(art.get("revision"), f"artifact {name} revision", aliases)
        origin = _alias(art.get("originRevision"), f"artifact {name} originRevision", aliases)
        if path_pattern is not None:
            # Names and copy paths hold {captures}: checked once rendered for each matched directory.
            outputs.append(Output(name, revision, origin, ()))
            continue
        if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
            raise InvalidSpec(
                f"artifact name {name!r} is not a valid Kubernetes object name: a lowercase RFC 1123 subdomain",
                reason=VALIDATION_FAILED,
            )
        ops = _copy_ops(name, art, aliases)
        outputs.append(Output(name, revision, origin, ops))
    if not outputs:
        raise InvalidSpec("spec.artifacts must name at least one artifact", reason=VALIDATION_FAILED)
    templates = tuple(dict(a) for a in spec.get("artifacts") or []) if path_pattern is not None else ()
    return Spec(tuple(sources), tuple(outputs), path_pattern, templates)


def _path_pattern(value: object, aliases: set[str]) -> PathPattern | None:
    """spec.pathPattern parsed; a malformed one stalls with BuildFailed, as in source-watcher."""
    if not value:
        return None
    try:
        pattern = parse_path_pattern(str(value))
    except PathPatternError as e:
        raise InvalidSpec(str(e), reason=BUILD_FAILED) from None
    if pattern.alias not in aliases:
        raise InvalidSpec(
            f"pathPattern {value!r}: source alias {pattern.alias} not found in local sources", reason=BUILD_FAILED
        )
    return pattern


def _copy_ops(name: str, art: Mapping[str, Any], aliases: set[str]) -> tuple[CopyOp, ...]:
    """An artifact's copy entries parsed; InvalidSpec (ValidationFailed) names the bad one."""
    ops = []
    for entry in art.get("copy") or []:
        try:
            op = parse_copy(entry)
        except BadPattern as e:
            raise InvalidSpec(f"artifact {name}: {e}", reason=VALIDATION_FAILED) from None
        if op.alias not in aliases:
            raise InvalidSpec(
                f"artifact {name}: copy from '{op.source}': source alias '{op.alias}' not found",
                reason=VALIDATION_FAILED,
            )
        ops.append(op)
    if not ops:
        raise InvalidSpec(f"artifact {name} has no copy operations", reason=VALIDATION_FAILED)
    return tuple(ops)


def rendered_outputs(spec: Spec, matches: list[tuple[str, dict[str, str]]]) -> tuple[Output, ...]:
    """The outputs to generate: spec.artifacts, or with a pathPattern each template per matched directory.

    A pattern, captured value or rendered name Flux refuses stalls (BuildFailed); a rendered copy path
    that is not a valid copy fails the build, retried (a new commit can rename the directory).
    """
    if spec.path_pattern is None:
        return spec.outputs
    try:
        rendered = expand(spec.path_pattern, list(spec.templates), matches)
    except PathPatternError as e:
        raise InvalidSpec(f"failed to expand path pattern: {e}", reason=BUILD_FAILED) from None
    outputs = []
    for r in rendered:
        template = spec.outputs[r.template]
        ops = []
        for entry in r.copy:
            try:
                ops.append(parse_copy(entry))
            except BadPattern as e:
                raise TransientError(f"{r.name} build failed: {e}", reason=BUILD_FAILED) from None
        outputs.append(Output(r.name, template.revision, template.origin_revision, tuple(ops), r.labels))
    return tuple(outputs)


@dataclass(frozen=True, slots=True)
class ObservedSource:
    """A source's artifact as its status shows it (source-watcher's ObservedSource, plus where it is)."""

    ref: SourceRef
    digest: str
    revision: str
    url: str
    path: str
    origin_revision: str = ""

    def describe(self) -> str:
        return f"digest={self.digest},revision={self.revision},url={self.url}"


def observe_sources(spec: Spec, lookup: Lookup, *, retry_after: float) -> dict[str, ObservedSource]:
    """Each alias's artifact; SourceFetchFailed (retried after ``retry_after``) for one missing or not ready."""
    out: dict[str, ObservedSource] = {}
    for ref in spec.sources:
        obj = lookup(ref.kind, ref.namespace, ref.name)
        if obj is None:
            raise TransientError(
                f"get sources failed: {ref.kind} '{ref.namespace}/{ref.name}' not found",
                reason=SOURCE_FETCH_FAILED,
                retry_after=retry_after,
            )
        artifact = (obj.get("status") or {}).get("artifact") or {}
        if not artifact.get("digest") or not artifact.get("url") or not artifact.get("revision"):
            raise TransientError(
                f"get sources failed: source '{ref.kind}/{ref.namespace}/{ref.name}' is not ready",
                reason=SOURCE_FETCH_FAILED,
                retry_after=retry_after,
            )
        metadata = artifact.get("metadata") or {}
        out[ref.alias] = ObservedSource(
            ref,
            str(artifact["digest"]),
            str(artifact["revision"]),
            str(artifact["url"]),
            str(artifact.get("path") or ""),
            str(metadata.get(ORIGIN_REVISION) or ""),
        )
    return out


def sources_digest(observed: Mapping[str, ObservedSource]) -> str:
    """source-watcher's HashObservedSources: sha256 over the sorted ``alias=[digest=..,revision=..,url=..]``."""
    parts = sorted(f"{alias}=[{src.describe()}]" for alias, src in observed.items())
    return "sha256:" + hashlib.sha256("|".join(parts).encode()).hexdigest()


def inventory_of(obj: KubeObject) -> list[dict[str, str]]:
    return [dict(ref) for ref in (obj.get("status") or {}).get("inventory") or [] if isinstance(ref, dict)]


def drift(
    obj: KubeObject,
    spec: Spec,
    digest: str,
    *,
    stored: Callable[[str, str, str], bool],
    generated: Sequence[KubeObject],
) -> str | None:
    """Why the artifacts must be generated again (source-watcher's drift reasons), or None when current.

    ``stored(namespace, name, filename)`` says whether an inventory artifact's file is in storage;
    ``generated`` are the ExternalArtifacts in the cluster labelled with this generator's uid.
    """
    status = obj.get("status") or {}
    if not is_ready_at_generation(obj):
        return "NotReady" if c.is_false(status.get("conditions") or [], c.ConditionType.READY) else "GenerationChanged"
    if status.get("observedSourcesDigest") != digest:
        return "SourcesChanged"
    inventory = inventory_of(obj)
    if spec.path_pattern is None and len(inventory) != len(spec.outputs):
        return "ArtifactsChanged"
    for ref in inventory:
        if not stored(ref.get("namespace", ""), ref.get("name", ""), ref.get("filename", "")):
            return "ArtifactMissing"
    if len(generated) != len(inventory):
        return "ExternalArtifactsChanged"
    held = {(r.get("namespace"), r.get("name"), r.get("digest")) for r in inventory}
    for ea in generated:
        meta, artifact = ea.get("metadata") or {}, (ea.get("status") or {}).get("artifact") or {}
        if (meta.get("namespace"), meta.get("name"), artifact.get("digest")) not in held:
            return "ExternalArtifactsChanged"
    return None


def up_to_date(obj: KubeObject) -> Done:
    """No drift: nothing written, Ready kept, next look in an hour."""
    return Done(StatusEdit(), Outcome.succeeded(requeue_after=REQUEUE_AFTER))


def artifact_revision(output: Output, observed: Mapping[str, ObservedSource], digest: str) -> str:
    """``latest@<tarball digest>``, or the revision of the source ``output.revision`` names."""
    if output.revision and output.revision in observed:
        return observed[output.revision].revision
    return f"latest@{digest}"


def artifact_metadata(output: Output, observed: Mapping[str, ObservedSource]) -> dict[str, str]:
    """``org.opencontainers.image.revision`` from the source ``originRevision`` names."""
    src = observed.get(output.origin_revision) if output.origin_revision else None
    if src is None:
        return {}
    return {ORIGIN_REVISION: src.origin_revision or src.revision}


def claim_problem(
    existing: KubeObject | None, obj: KubeObject, *, generator_exists: Callable[[str], bool]
) -> str | None:
    """Why this generator may not write the ExternalArtifact ``existing`` (another producer's), or None.

    Two generators naming the same artifact would overwrite each other's artifact on every source change;
    the first one keeps it. An artifact left by a generator that no longer exists is taken over.
    """
    if existing is None:
        return None
    meta = existing.get("metadata") or {}
    owner = (meta.get("labels") or {}).get(GENERATOR_LABEL)
    uid = obj["metadata"].get("uid")
    if owner == uid:
        return None
    ref = (existing.get("spec") or {}).get("sourceRef") or {}
    where = f"{EA_KIND} '{meta.get('namespace')}/{meta.get('name')}'"
    if ref and ref.get("kind") != KIND:
        return f"{where} is produced by {ref.get('kind')} '{ref.get('name')}', not by an {KIND}"
    if owner and generator_exists(owner):
        return f"{where} is generated by {KIND} '{ref.get('name')}'"
    return None


def external_artifact(
    obj: KubeObject, name: str, *, controller: str, labels: Mapping[str, str] | None = None
) -> KubeObject:
    """The ExternalArtifact as this controller applies it: commonMetadata, the pathPattern's captures
    (``labels``), our two reserved labels, and the sourceRef."""
    meta = obj["metadata"]
    common = (obj.get("spec") or {}).get("commonMetadata") or {}
    labels = {**{str(k): str(v) for k, v in (common.get("labels") or {}).items()}, **(labels or {})}
    labels[MANAGED_BY_LABEL] = controller
    labels[GENERATOR_LABEL] = str(meta.get("uid") or "")
    ea_meta: dict[str, Any] = {"name": name, "namespace": meta["namespace"], "labels": labels}
    annotations = {str(k): str(v) for k, v in (common.get("annotations") or {}).items()}
    if annotations:
        ea_meta["annotations"] = annotations
    return {
        "apiVersion": EA_API_VERSION,
        "kind": EA_KIND,
        "metadata": ea_meta,
        "spec": {
            "sourceRef": {"apiVersion": API_VERSION, "kind": KIND, "name": meta["name"], "namespace": meta["namespace"]}
        },
    }


def needs_apply(existing: KubeObject | None, desired: KubeObject) -> bool:
    """Whether the object's labels, annotations or spec differ from what we apply (ours win over others')."""
    if existing is None:
        return True
    have, want = existing.get("metadata") or {}, desired["metadata"]
    labels, annotations = have.get("labels") or {}, have.get("annotations") or {}
    return (
        any(labels.get(k) != v for k, v in want["labels"].items())
        or any(annotations.get(k) != v for k, v in (want.get("annotations") or {}).items())
        or existing.get("spec") != desired["spec"]
    )


READY_MESSAGE = "Artifact is ready"


def ready_condition(existing: KubeObject | None, generation: int, now: str) -> dict[str, Any]:
    """The ExternalArtifact's Ready=True/Succeeded, keeping its transition time when it was already so."""
    old = c.get(existing or {}, c.ConditionType.READY)
    kept = (
        old is not None
        and old["status"] == "True"
        and old["reason"] == c.Reason.SUCCEEDED
        and old["message"] == READY_MESSAGE
    )
    return {
        "type": c.ConditionType.READY,
        "status": "True",
        "observedGeneration": generation,
        "lastTransitionTime": old["lastTransitionTime"] if kept and old is not None else now,
        "reason": c.Reason.SUCCEEDED,
        "message": READY_MESSAGE,
    }


def new_artifact(existing: KubeObject | None, artifact: Mapping[str, Any]) -> Announcement | None:
    """The ExternalArtifact's ``artifact-ready`` when its revision is new (its consumers follow revisions)."""
    before = ((existing or {}).get("status") or {}).get("artifact") or {}
    if before.get("revision") == artifact["revision"]:
        return None
    message = f"stored artifact for revision '{artifact['revision']}'"
    return Announcement(
        EventKind.ARTIFACT_READY,
        "NewArtifact",
        message,
        revision=str(artifact["revision"]),
        severity=Severity.INFO,
        artifact=bus_artifact(dict(artifact)),
    )


def inventory_entry(namespace: str, name: str, artifact: Mapping[str, Any]) -> dict[str, str]:
    return {
        "name": name,
        "namespace": namespace,
        "digest": str(artifact["digest"]),
        "filename": str(artifact["path"]).rsplit("/", 1)[-1],
    }


def orphans(old: Sequence[Mapping[str, str]], current: Sequence[Mapping[str, str]]) -> list[Mapping[str, str]]:
    """Inventory entries no longer generated: their ExternalArtifacts and files are removed."""
    keep = {(r.get("namespace"), r.get("name")) for r in current}
    return [r for r in old if (r.get("namespace"), r.get("name")) not in keep]


def changed(old: Sequence[Mapping[str, str]], current: Sequence[Mapping[str, str]]) -> list[str]:
    """``ns/name (digest)`` of each artifact new to the inventory or with a new digest (the event's lines)."""
    held = {(r.get("namespace"), r.get("name"), r.get("digest")) for r in old}
    return [
        f"{r['namespace']}/{r['name']} ({r['digest']})"
        for r in current
        if (r.get("namespace"), r.get("name"), r.get("digest")) not in held
    ]


def succeeded(inventory: Sequence[Mapping[str, str]], digest: str) -> Done:
    """Every artifact generated: the inventory and the sources digest recorded, Ready=True/Succeeded."""
    message = f"reconciliation succeeded, generated {len(inventory)} artifact(s)"
    edit = StatusEdit(writes={"inventory": [dict(r) for r in inventory], "observedSourcesDigest": digest})
    return Done(edit, Outcome.succeeded(requeue_after=REQUEUE_AFTER, message=message, reason=c.Reason.SUCCEEDED))
