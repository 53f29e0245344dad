"""HelmRelease drift detection: an in-sync release's manifest objects against the cluster — rules and diff (pure), dry-run and correction (I/O).

Flux's behaviour (helm-controller ``internal/action/diff.go``, ``internal/reconcile/correct_cluster_drift.go``,
fluxcd/pkg ``ssa/jsondiff``), carried as facts:

* each manifest object gets Helm's ownership metadata (``app.kubernetes.io/managed-by: Helm``, the
  ``meta.helm.sh/release-*`` annotations) and the release namespace when namespaced and unset;
* an object whose label or annotation ``helm.toolkit.fluxcd.io/driftDetection`` is ``disabled`` (case
  ignored; on the manifest or in the cluster) is *excluded*, as is one an ignore rule ignores at the root
  pointer ``""``;
* the object is server-side applied as a dry run (field manager ``helm-controller``, ownership forced); a
  dry run that comes back without a resourceVersion means the object is missing (*create*);
* the ignore rules' JSON pointers are removed from both the live object and the dry run (a missing path is
  fine); then labels and annotations are compared (additions and changes only: Kubernetes' own controllers
  add labels) and everything but ``metadata`` and ``status`` is compared: a difference is *update*, with
  the JSON patch from the live object to the dry run;
* correcting creates the missing objects and JSON-patches the changed ones with that patch, so an ignored
  path is left as the cluster has it (a whole-object re-apply would reset it).

The diff is ``jsonpatch.make_patch`` (python-json-patch) and pointers are ``jsonpointer``: both maintained
libraries; ``make_patch`` may write a list change as ``move``, counted as a change in the summary.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import jsonpatch
import jsonpointer
import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

from gitops_mesh.errors import ApiError, GitopsMeshError, InvalidSpec, NotFound, TransientError
from gitops_mesh.kube.client import KubeClient, PatchType
from gitops_mesh.kube.objects import KubeObject, has_metadata_value, metadata, resource_version, split_api_version
from gitops_mesh.kube.selectors import LabelSelector, requirement

FIELD_MANAGER: Final = "helm-controller"
#: Flux's DriftDetectionMetadataKey / DriftDetectionDisabledValue
DRIFT_DETECTION_KEY: Final = "helm.toolkit.fluxcd.io/driftDetection"
DISABLED: Final = "disabled"
#: the Drifted condition's message when nothing drifted (Flux's word for word)
NO_DRIFT: Final = "No drift detected against the cluster state"

# Caps on what a tenant's spec may ask for: each rule is matched against every object of the release.
MAX_RULES: Final = 256
MAX_PATHS: Final = 256
MAX_POINTER: Final = 1024
MAX_SELECTOR: Final = 4096
#: dry runs in flight at once for one release
CONCURRENCY: Final = 8

_HELM_LABELS: Final = {"app.kubernetes.io/managed-by": "Helm"}


class Mode(StrEnum):
    """``spec.driftDetection.mode`` (Flux's DriftDetectionMode); absent means disabled."""

    ENABLED = "enabled"
    WARN = "warn"
    DISABLED = "disabled"


class DiffType(StrEnum):
    """What the dry run found for one object (fluxcd/pkg jsondiff.DiffType)."""

    NONE = "unchanged"
    CREATE = "removed"  # Flux names it by what happened in the cluster: the object was removed
    UPDATE = "changed"
    EXCLUDE = "excluded"


# --- the spec ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """An ignore rule's ``target`` (a kustomize Selector): anchored RE2 patterns, label/annotation selectors."""

    group: Any = None
    version: Any = None
    kind: Any = None
    name: Any = None
    namespace: Any = None
    label_selector: LabelSelector | None = None
    annotation_selector: LabelSelector | None = None

    def matches(self, obj: KubeObject) -> bool:
        group, version = split_api_version(str(obj.get("apiVersion") or ""))
        meta = metadata(obj)
        checks = (
            (self.group, group),
            (self.version, version),
            (self.kind, str(obj.get("kind") or "")),
            (self.name, str(meta.get("name") or "")),
            (self.namespace, str(meta.get("namespace") or "")),
        )
        if any(pattern is not None and pattern.fullmatch(value) is None for pattern, value in checks):
            return False
        if self.label_selector is not None and not self.label_selector.matches(_string_map(meta.get("labels"))):
            return False
        return self.annotation_selector is None or self.annotation_selector.matches(
            _string_map(meta.get("annotations"))
        )


@dataclass(frozen=True, slots=True)
class IgnoreRule:
    """JSON pointers (RFC 6901) to leave out of the comparison, for every object or the target's."""

    paths: tuple[str, ...]
    target: Target | None = None

    def applies_to(self, obj: KubeObject) -> bool:
        return self.target is None or self.target.matches(obj)


@dataclass(frozen=True, slots=True)
class DriftDetection:
    """``spec.driftDetection`` parsed."""

    mode: Mode = Mode.DISABLED
    ignore: tuple[IgnoreRule, ...] = ()

    @property
    def detects(self) -> bool:
        """Flux's MustDetectChanges: enabled or warn."""
        return self.mode in (Mode.ENABLED, Mode.WARN)


def drift_detection(spec: Mapping[str, Any]) -> DriftDetection:
    """``spec.driftDetection`` of a HelmRelease; a malformed mode, pointer, pattern or selector is InvalidSpec."""
    raw = spec.get("driftDetection")
    if raw is None:
        return DriftDetection()
    if not isinstance(raw, Mapping):
        raise InvalidSpec("spec.driftDetection must be an object")
    mode_text = raw.get("mode") or Mode.DISABLED.value
    try:
        mode = Mode(mode_text)
    except ValueError:
        raise InvalidSpec(
            f"spec.driftDetection.mode must be one of enabled, warn, disabled, not {mode_text!r:.64}"
        ) from None
    rules = raw.get("ignore") or []
    if not isinstance(rules, list):
        raise InvalidSpec("spec.driftDetection.ignore must be a list")
    if len(rules) > MAX_RULES:
        raise InvalidSpec(f"spec.driftDetection.ignore has more than {MAX_RULES} rules")
    return DriftDetection(mode, tuple(_rule(r, f"spec.driftDetection.ignore[{i}]") for i, r in enumerate(rules)))


def _rule(raw: Any, where: str) -> IgnoreRule:
    if not isinstance(raw, Mapping):
        raise InvalidSpec(f"{where} must be an object")
    paths = raw.get("paths")
    if not isinstance(paths, list) or not paths:
        raise InvalidSpec(f"{where}.paths must be a non-empty list of JSON pointers")
    if len(paths) > MAX_PATHS:
        raise InvalidSpec(f"{where}.paths has more than {MAX_PATHS} pointers")
    for i, p in enumerate(paths):
        _check_pointer(p, f"{where}.paths[{i}]")
    target = raw.get("target")
    if target is not None and not isinstance(target, Mapping):
        raise InvalidSpec(f"{where}.target must be an object")
    return IgnoreRule(tuple(paths), _target(target, f"{where}.target") if target is not None else None)


def _check_pointer(p: Any, where: str) -> None:
    if not isinstance(p, str) or len(p) > MAX_POINTER:
        raise InvalidSpec(f"{where} must be a JSON pointer of at most {MAX_POINTER} characters")
    try:
        jsonpointer.JsonPointer(p)
    except jsonpointer.JsonPointerException as e:
        raise InvalidSpec(f"{where} is not a JSON pointer: {e}") from None


def _target(raw: Mapping[str, Any], where: str) -> Target:
    patterns: dict[str, Any] = {}
    for key in ("group", "version", "kind", "name", "namespace"):
        value = raw.get(key)
        if value in (None, ""):
            continue  # Flux: an empty pattern matches everything
        if not isinstance(value, str) or len(value) > MAX_SELECTOR:
            raise InvalidSpec(f"{where}.{key} must be a pattern of at most {MAX_SELECTOR} characters")
        try:
            patterns[key] = re2.compile(f"(?:{value})")
        except re2.error:
            raise InvalidSpec(f"{where}.{key} is not a valid regular expression") from None
    return Target(
        **patterns,
        label_selector=_selector(raw.get("labelSelector"), f"{where}.labelSelector"),
        annotation_selector=_selector(raw.get("annotationSelector"), f"{where}.annotationSelector"),
    )


def _selector(raw: Any, where: str) -> LabelSelector | None:
    if raw in (None, ""):
        return None
    if not isinstance(raw, str) or len(raw) > MAX_SELECTOR:
        raise InvalidSpec(f"{where} must be a selector of at most {MAX_SELECTOR} characters")
    try:
        return parse_selector_string(raw)
    except InvalidSpec as e:
        raise InvalidSpec(f"{where}: {e}") from None


def parse_selector_string(text: str) -> LabelSelector:
    """A label selector in apimachinery's string form (``labels.Parse``): ``a=b,c!=d,e in (f,g),h notin (i),j,!k``.

    ``>``/``<`` (Gt/Lt) are refused: they take integers only and no Flux ignore rule needs them.
    """
    reqs = []
    for part in _split_requirements(text):
        part = part.strip()
        if not part:
            raise InvalidSpec("empty requirement")
        if part.startswith("!"):
            reqs.append(requirement(part[1:].strip(), "DoesNotExist"))
            continue
        for op, name in ((" notin ", "NotIn"), (" in ", "In")):
            key, sep, rest = part.partition(op)
            if sep:
                rest = rest.strip()
                if not (rest.startswith("(") and rest.endswith(")")):
                    raise InvalidSpec(f"{name} needs a parenthesised list of values")
                reqs.append(requirement(key.strip(), name, [v.strip() for v in rest[1:-1].split(",") if v.strip()]))
                break
        else:
            if ">" in part or "<" in part:
                raise InvalidSpec("the > and < operators are not supported")
            key, sep, value = part.partition("!=")
            if sep:
                reqs.append(requirement(key.strip(), "NotIn", [value.strip()]))
                continue
            key, sep, value = part.partition("=")
            if sep:
                value = value[1:] if value.startswith("=") else value
                reqs.append(requirement(key.strip(), "In", [value.strip()]))
            else:
                reqs.append(requirement(part, "Exists"))
    return LabelSelector(tuple(reqs))


def _split_requirements(text: str) -> list[str]:
    """Commas split requirements, except inside a value list's parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        if depth not in (0, 1):
            raise InvalidSpec("unbalanced parentheses")
    if depth:
        raise InvalidSpec("unbalanced parentheses")
    parts.append(text[start:])
    return parts


def _string_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


# --- one object, pure -----------------------------------------------------------------------------------------


def excluded(obj: KubeObject | None) -> bool:
    """The object opted out: ``helm.toolkit.fluxcd.io/driftDetection: disabled`` as a label or annotation."""
    return has_metadata_value(obj, DRIFT_DETECTION_KEY, DISABLED)


def ignored_paths(rules: Iterable[IgnoreRule], obj: KubeObject) -> list[str]:
    """The pointers of every rule whose target (if any) selects the object."""
    return [p for rule in rules if rule.applies_to(obj) for p in rule.paths]


def with_helm_metadata(obj: KubeObject, release_name: str, release_namespace: str) -> KubeObject:
    """The object as Helm created it: its ownership label and annotations set (Flux's setHelmMetadata)."""
    out = copy.deepcopy(dict(obj))
    meta = out.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), **_HELM_LABELS}
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        "meta.helm.sh/release-name": release_name,
        "meta.helm.sh/release-namespace": release_namespace,
    }
    return out


@dataclass(frozen=True, slots=True)
class ObjectDiff:
    """One manifest object's verdict; ``patch`` turns the live object into the dry run (UPDATE only)."""

    desired: KubeObject
    type: DiffType
    patch: tuple[Mapping[str, Any], ...] = ()

    @property
    def subject(self) -> str:
        """``Kind/namespace/name`` (namespace left out for a cluster-scoped object), as Flux's ResourceName."""
        meta = metadata(self.desired)
        ns = meta.get("namespace")
        return "/".join(str(p) for p in (self.desired.get("kind"), ns, meta.get("name")) if p)

    def counts(self) -> tuple[int, int, int]:
        """(additions, changes, removals) of the patch; a ``move``/``copy`` counts as a change."""
        ops = [str(op.get("op")) for op in self.patch]
        added, removed = ops.count("add"), ops.count("remove")
        return added, len(ops) - added - removed, removed


def remove_paths(obj: KubeObject, paths: Iterable[str]) -> KubeObject:
    """A copy without the values at ``paths``; a pointer that leads nowhere is skipped (Flux allows it)."""
    out = copy.deepcopy(dict(obj))
    for p in paths:
        pointer = jsonpointer.JsonPointer(p)
        if not pointer.parts:
            continue  # the root: the caller excluded the whole object already
        try:
            parent, last = pointer.to_last(out)
        except jsonpointer.JsonPointerException:
            continue
        if isinstance(parent, dict):
            parent.pop(last, None)
        elif isinstance(parent, list) and isinstance(last, int) and 0 <= last < len(parent):
            del parent[last]
    return out


def _labels_and_annotations(obj: KubeObject) -> dict[str, Any]:
    # The name stays so an "add" of a whole labels map never reads as replacing all of metadata (as Flux).
    meta = metadata(obj)
    return {"metadata": {k: meta[k] for k in ("name", "labels", "annotations") if k in meta}}


def _without_metadata_and_status(obj: KubeObject) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def compare(desired: KubeObject, live: KubeObject | None, dry_run: KubeObject, ignore: Sequence[str]) -> ObjectDiff:
    """The verdict for one object from its live state and the dry run of the manifest over it."""
    if live is None or not resource_version(dry_run):
        return ObjectDiff(desired, DiffType.CREATE)
    have, want = remove_paths(live, ignore), remove_paths(dry_run, ignore)
    meta_ops = [
        op
        for op in jsonpatch.make_patch(_labels_and_annotations(have), _labels_and_annotations(want)).patch
        if op.get("op") in ("add", "replace")  # removals: labels other controllers add are not drift
    ]
    ops = meta_ops + jsonpatch.make_patch(_without_metadata_and_status(have), _without_metadata_and_status(want)).patch
    return ObjectDiff(desired, DiffType.UPDATE if ops else DiffType.NONE, tuple(ops))


# --- a release, pure ----------------------------------------------------------------------------------------------


def has_changes(diffs: Iterable[ObjectDiff]) -> bool:
    return any(d.type in (DiffType.CREATE, DiffType.UPDATE) for d in diffs)


def summarize(diffs: Iterable[ObjectDiff]) -> str:
    """Flux's SummarizeDiffSet: one line per removed, changed or excluded object."""
    lines = []
    for d in diffs:
        if d.type is DiffType.UPDATE:
            added, changed, removed = d.counts()
            lines.append(f"{d.subject} changed ({added} additions, {changed} changes, {removed} removals)")
        elif d.type in (DiffType.CREATE, DiffType.EXCLUDE):
            lines.append(f"{d.subject} {d.type.value}")
    return "\n".join(lines)


def summarize_brief(diffs: Sequence[ObjectDiff]) -> str:
    """Flux's SummarizeDiffSetBrief, for the log: ``removed: 1, changed: 3, excluded: 0``."""
    count = {t: sum(1 for d in diffs if d.type is t) for t in DiffType}
    return f"removed: {count[DiffType.CREATE]}, changed: {count[DiffType.UPDATE]}, excluded: {count[DiffType.EXCLUDE]}"


def drifted_message(release_full_name: str, diffs: Iterable[ObjectDiff]) -> str:
    """The DriftDetected event's and the Drifted condition's message."""
    return f"Cluster state of release {release_full_name} has drifted from the desired state:\n{summarize(diffs)}"


@dataclass(frozen=True, slots=True)
class Correction:
    """What correcting did: ``Kind/ns/name created|configured`` lines, and one line per failure."""

    changes: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()

    def message(self, release_full_name: str) -> str:
        """Flux's DriftCorrected / DriftCorrectionFailed event text."""
        if not self.failures:
            return f"Cluster state of release {release_full_name} has been corrected:\n" + "\n".join(self.changes)
        head = "Failed to partially" if self.changes else "Failed to"
        text = f"{head} correct cluster state of release {release_full_name}:\n" + "\n".join(self.failures)
        if self.changes:
            text += "\n\nSuccessful corrections:\n" + "\n".join(self.changes)
        return text

    @property
    def reason(self) -> str:
        return "DriftCorrectionFailed" if self.failures else "DriftCorrected"


def _order(d: ObjectDiff) -> tuple[str, str, str, str]:
    group, _ = split_api_version(str(d.desired.get("apiVersion") or ""))
    meta = metadata(d.desired)
    return (group, str(d.desired.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or ""))


# --- I/O ----------------------------------------------------------------------------------------------------------


class DriftDetectionFailed(TransientError):
    """The cluster state could not be compared (Flux: 'unable to determine cluster state'); retried."""

    reason = "DriftDetectionFailed"


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Every manifest object's verdict, in manifest order, and the objects that could not be compared."""

    diffs: tuple[ObjectDiff, ...]
    errors: tuple[str, ...] = field(default=())

    @property
    def drifted(self) -> bool:
        return has_changes(self.diffs)


async def detect(
    kube: KubeClient,
    objects: Sequence[KubeObject],
    *,
    release_name: str,
    release_namespace: str,
    settings: DriftDetection,
    field_manager: str = FIELD_MANAGER,
) -> DriftReport:
    """Dry-run every manifest object over the cluster and compare (Flux's Diff, graceful).

    A failure on some objects with drift found on others is reported with the drift (Flux logs it and
    goes on); failures and no drift raise :class:`DriftDetectionFailed`.
    """
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(obj: KubeObject) -> ObjectDiff | str:
        async with gate:
            try:
                return await _diff_one(kube, obj, release_name, release_namespace, settings, field_manager)
            except (ApiError, TransientError) as e:
                return f"{ObjectDiff(obj, DiffType.NONE).subject} dry-run failed: {_safe_message(obj, e)}"

    results = await asyncio.gather(*(one(o) for o in objects))
    report = DriftReport(
        tuple(r for r in results if isinstance(r, ObjectDiff)), tuple(r for r in results if isinstance(r, str))
    )
    if report.errors and not report.drifted:
        raise DriftDetectionFailed("unable to determine cluster state: " + "; ".join(report.errors))
    return report


async def _diff_one(
    kube: KubeClient,
    obj: KubeObject,
    release_name: str,
    release_namespace: str,
    settings: DriftDetection,
    field_manager: str,
) -> ObjectDiff:
    desired = with_helm_metadata(obj, release_name, release_namespace)
    api_version, kind = str(desired.get("apiVersion") or ""), str(desired.get("kind") or "")
    meta = desired["metadata"]
    info = await kube.resource(api_version, kind)
    if info.namespaced and not meta.get("namespace"):
        meta["namespace"] = release_namespace
    elif not info.namespaced:
        meta.pop("namespace", None)
    ignore = ignored_paths(settings.ignore, desired)
    if excluded(desired) or "" in ignore:
        return ObjectDiff(desired, DiffType.EXCLUDE)
    namespace = meta.get("namespace") or None
    try:
        live: KubeObject | None = await kube.get(api_version, kind, str(meta.get("name") or ""), namespace=namespace)
    except NotFound:
        live = None
    if excluded(live):
        return ObjectDiff(desired, DiffType.EXCLUDE)
    dry_run = await kube.apply(desired, field_manager=field_manager, force=True, dry_run=True)
    return compare(desired, live, dry_run, ignore)


async def correct(kube: KubeClient, diffs: Iterable[ObjectDiff], *, field_manager: str = FIELD_MANAGER) -> Correction:
    """Create the removed objects, then JSON-patch the changed ones, each kind in order (Flux's ApplyDiff)."""
    changes: list[str] = []
    failures: list[str] = []
    todo = list(diffs)
    for d in sorted((d for d in todo if d.type is DiffType.CREATE), key=_order):
        try:
            await kube.create(d.desired, field_manager=field_manager)
            changes.append(f"{d.subject} created")
        except GitopsMeshError as e:
            failures.append(f"{d.subject} creation failure: {_safe_message(d.desired, e)}")
    for d in sorted((d for d in todo if d.type is DiffType.UPDATE), key=_order):
        meta = metadata(d.desired)
        try:
            await kube.patch(
                str(d.desired.get("apiVersion") or ""),
                str(d.desired.get("kind") or ""),
                str(meta.get("name") or ""),
                list(d.patch),
                namespace=meta.get("namespace") or None,
                patch_type=PatchType.JSON,
                field_manager=field_manager,
            )
            changes.append(f"{d.subject} configured")
        except GitopsMeshError as e:
            failures.append(f"{d.subject} patch failure: {_safe_message(d.desired, e)}")
    return Correction(tuple(changes), tuple(failures))


def _safe_message(obj: KubeObject, e: Exception) -> str:
    """The apiserver's message; for a Secret only its last clause (an Invalid message may quote the data)."""
    text = str(e)
    if obj.get("kind") == "Secret" and ":" in text:
        return text.rsplit(":", 1)[1].strip()
    return text
