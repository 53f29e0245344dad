"""Apply, manifests (pure): Flux's stages and kind order, owner labels, per-object annotations, validation, drift."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from gitops_mesh.kube.objects import KubeObject, has_metadata_value, metadata, split_api_version

GROUP = "kustomize.toolkit.fluxcd.io"
NAME_LABEL = f"{GROUP}/name"
NAMESPACE_LABEL = f"{GROUP}/namespace"
SSA_ANNOTATION = f"{GROUP}/ssa"
FORCE_ANNOTATION = f"{GROUP}/force"
PRUNE_ANNOTATION = f"{GROUP}/prune"
RECONCILE_ANNOTATION = f"{GROUP}/reconcile"
ENABLED = "Enabled"
DISABLED = "Disabled"
DEFAULT_FIELD_MANAGER = "kustomize-controller"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"

#: Metadata Flux removes from in-cluster objects before applying: kubectl's client-side apply record and the
#: markers of Flux v1.
CLEANUP_ANNOTATIONS = (LAST_APPLIED_ANNOTATION, f"{GROUP}/checksum", "fluxcd.io/sync-checksum")
CLEANUP_LABELS = ("fluxcd.io/sync-gc-mark",)

#: (manager name prefix, operation) whose top-level fields are handed to our manager before applying, so the
#: apply takes back what ``kubectl apply/edit/patch/scale/...`` changed. Our own manager's Update entry is
#: added at run time (edits made before server-side apply).
FOREIGN_MANAGERS: tuple[tuple[str, str], ...] = (
    ("kubectl", "Apply"),
    ("kubectl", "Update"),
    ("before-first-apply", "Update"),
)


class SSAPolicy(StrEnum):
    """Values of the ``kustomize.toolkit.fluxcd.io/ssa`` annotation (matched case-insensitively, as Flux does)."""

    OVERRIDE = "Override"  # the default: apply, and take back fields kubectl changed
    MERGE = "Merge"  # apply, but keep what other managers (kubectl included) added
    IF_NOT_PRESENT = "IfNotPresent"  # create when missing, never touch afterwards
    IGNORE = "Ignore"  # never apply


class Stage(IntEnum):
    """ssa ApplyAllStaged: each stage is applied (and the first two waited for) before the next starts."""

    DEFINITIONS = 0  # CustomResourceDefinitions, Namespaces, ClusterRoles
    CLASSES = 1  # every kind whose name ends in "Class": StorageClass, IngressClass, PriorityClass, ...
    RESOURCES = 2


#: fluxcd/pkg ssa (v0.77) ReconcileOrder: the listed kinds first, in this order; unlisted kinds next; the
#: webhook configurations last. Ties break on API group, kind, namespace, name.
_FIRST = (
    "CustomResourceDefinition",
    "Namespace",
    "ClusterRole",
    "ClusterClass",
    "RuntimeClass",
    "PriorityClass",
    "StorageClass",
    "VolumeSnapshotClass",
    "IngressClass",
    "GatewayClass",
    "ClusterRoleBinding",
    "ResourceQuota",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "Service",
    "LimitRange",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
)
_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
_RANK = {kind: i - len(_FIRST) for i, kind in enumerate(_FIRST)} | {kind: i + 1 for i, kind in enumerate(_LAST)}

# Flux applies one object after the other; we apply a stage in three concurrent waves. Only these orderings
# are visible to the apiserver: quota, limits and service accounts are consulted by admission of the objects
# that follow, a RoleBinding's escalation check reads its Role, and a webhook registered early would judge
# the objects of its own release.
_PREREQUISITE_KINDS = frozenset({"ResourceQuota", "LimitRange", "ServiceAccount", "Role"})
_WEBHOOK_KINDS = frozenset(_LAST)


@dataclass(frozen=True, slots=True)
class Owner:
    """The Kustomization whose objects these are; its name and namespace label every object it applies."""

    name: str
    namespace: str

    def labels(self) -> dict[str, str]:
        return {NAME_LABEL: self.name, NAMESPACE_LABEL: self.namespace}

    def owns(self, obj: KubeObject) -> bool:
        labels = metadata(obj).get("labels") or {}
        return all(labels.get(k) == v for k, v in self.labels().items())


# --- identity and ordering ----------------------------------------------------------------------------------


def group_kind(obj: KubeObject) -> tuple[str, str]:
    group, _ = split_api_version(str(obj.get("apiVersion") or ""))
    return group, str(obj.get("kind") or "")


def subject(kind: str, namespace: str, name: str) -> str:
    """Flux's ``<kind>/<namespace>/<name>`` (``<kind>/<name>`` when cluster-scoped), as events and logs say it."""
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def subject_of(obj: KubeObject) -> str:
    meta = metadata(obj)
    return subject(str(obj.get("kind") or "?"), str(meta.get("namespace") or ""), str(meta.get("name") or "?"))


def is_cluster_definition(group: str, kind: str) -> bool:
    return (
        (group == "apiextensions.k8s.io" and kind == "CustomResourceDefinition")
        or (group == "" and kind == "Namespace")
        or (group == "rbac.authorization.k8s.io" and kind == "ClusterRole")
    )


def is_class_definition(kind: str) -> bool:
    return kind.endswith("Class")


def stage_of(group: str, kind: str) -> Stage:
    if is_cluster_definition(group, kind):
        return Stage.DEFINITIONS
    if is_class_definition(kind):
        return Stage.CLASSES
    return Stage.RESOURCES


def kind_rank(kind: str) -> int:
    return _RANK.get(kind, 0)


def order_key(group: str, kind: str, namespace: str, name: str) -> tuple[int, int, str, str, str, str]:
    """Apply order: stage, then ssa's kind rank, group, kind, namespace, name. Deletion runs it backwards."""
    return (stage_of(group, kind), kind_rank(kind), group, kind, namespace, name)


def object_order_key(obj: KubeObject) -> tuple[int, int, str, str, str, str]:
    group, kind = group_kind(obj)
    meta = metadata(obj)
    return order_key(group, kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def split_stages(objects: Iterable[KubeObject]) -> list[tuple[Stage, list[KubeObject]]]:
    """The non-empty stages in apply order, each sorted in apply order."""
    by_stage: dict[Stage, list[KubeObject]] = {}
    for obj in objects:
        by_stage.setdefault(stage_of(*group_kind(obj)), []).append(obj)
    return [(stage, sorted(by_stage[stage], key=object_order_key)) for stage in Stage if stage in by_stage]


def waves(objects: Sequence[KubeObject]) -> list[list[KubeObject]]:
    """The objects of one stage in the groups that may be applied concurrently, in order (empty groups left out)."""
    first: list[KubeObject] = []
    main: list[KubeObject] = []
    last: list[KubeObject] = []
    for obj in sorted(objects, key=object_order_key):
        kind = str(obj.get("kind") or "")
        (first if kind in _PREREQUISITE_KINDS else last if kind in _WEBHOOK_KINDS else main).append(obj)
    return [wave for wave in (first, main, last) if wave]


# --- validation -----------------------------------------------------------------------------------------------


def problems(obj: Any, index: int) -> list[str]:
    """What makes ``obj`` (the ``index``-th of the build) unappliable, each naming the object."""
    if not isinstance(obj, dict):
        return [f"object #{index}: not a mapping but {type(obj).__name__}"]
    meta = obj.get("metadata")
    who = (
        subject_of(obj)
        if isinstance(meta, dict) and meta.get("name")
        else f"object #{index} ({obj.get('kind') or '?'})"
    )
    found: list[str] = []
    if not isinstance(obj.get("apiVersion"), str) or not obj.get("apiVersion"):
        found.append(f"{who}: apiVersion is required")
    if not isinstance(obj.get("kind"), str) or not obj.get("kind"):
        found.append(f"{who}: kind is required")
    if not isinstance(meta, dict):
        found.append(f"{who}: metadata is required")
        return found
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        found.append(f"{who}: metadata.name is required")
    namespace = meta.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        found.append(f"{who}: metadata.namespace must be a string")
    for field in ("labels", "annotations"):
        values = meta.get(field)
        if values is None:
            continue
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            found.append(f"{who}: metadata.{field} must map strings to strings")
    return found


def validate(objects: Sequence[Any]) -> list[str]:
    """Every problem of every object, then every duplicate (same group, kind, namespace and name)."""
    found: list[str] = []
    seen: set[tuple[str, str, str, str]] = set()
    for index, obj in enumerate(objects):
        mine = problems(obj, index)
        found.extend(mine)
        if mine:
            continue
        group, kind = group_kind(obj)
        meta = metadata(obj)
        key = (group, kind, str(meta.get("namespace") or ""), str(meta["name"]))
        if key in seen:
            found.append(f"{subject_of(obj)}: appears more than once")
        seen.add(key)
    return found


# --- per-object policy ----------------------------------------------------------------------------------------


def ssa_policy(obj: KubeObject | None) -> SSAPolicy:
    for policy in (SSAPolicy.MERGE, SSAPolicy.IF_NOT_PRESENT, SSAPolicy.IGNORE):
        if has_metadata_value(obj, SSA_ANNOTATION, policy):
            return policy
    return SSAPolicy.OVERRIDE


def reconcile_disabled(obj: KubeObject | None) -> bool:
    return has_metadata_value(obj, RECONCILE_ANNOTATION, DISABLED)


def skip_apply(desired: KubeObject, existing: KubeObject | None) -> bool:
    """``reconcile: disabled`` or ``ssa: Ignore`` on either side; ``ssa: IfNotPresent`` once the object exists."""
    for obj in (desired, existing):
        if reconcile_disabled(obj) or has_metadata_value(obj, SSA_ANNOTATION, SSAPolicy.IGNORE):
            return True
    return existing is not None and has_metadata_value(desired, SSA_ANNOTATION, SSAPolicy.IF_NOT_PRESENT)


def force_enabled(desired: KubeObject, existing: KubeObject | None, force: bool) -> bool:
    """May an immutable-field error be resolved by deleting and recreating the object?"""
    return force or any(has_metadata_value(o, FORCE_ANNOTATION, ENABLED) for o in (desired, existing))


def keeps_foreign_fields(desired: KubeObject, existing: KubeObject | None) -> bool:
    """``ssa: Merge`` on either side: leave other managers' fields and kubectl's annotation alone."""
    return any(has_metadata_value(o, SSA_ANNOTATION, SSAPolicy.MERGE) for o in (desired, existing))


def prune_disabled(obj: KubeObject | None) -> bool:
    """``prune: disabled`` or ``reconcile: disabled``: the object outlives its removal from the source."""
    return has_metadata_value(obj, PRUNE_ANNOTATION, DISABLED) or reconcile_disabled(obj)


def with_owner_labels(obj: KubeObject, owner: Owner) -> KubeObject:
    """A deep copy of ``obj`` labelled with its owner (the caller's object is left alone)."""
    out = copy.deepcopy(obj)
    meta = out.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), **owner.labels()}
    return out


def with_namespace(obj: KubeObject, *, namespaced: bool, default_namespace: str | None) -> KubeObject:
    """The namespace the apiserver will use: none for cluster-scoped kinds, the default when left out."""
    meta = metadata(obj)
    namespace = meta.get("namespace") or ""
    wanted = (namespace or default_namespace or "") if namespaced else ""
    if wanted == namespace:
        return obj
    new_meta = {k: v for k, v in meta.items() if k != "namespace"}
    if wanted:
        new_meta["namespace"] = wanted
    return {**obj, "metadata": new_meta}


# --- drift ----------------------------------------------------------------------------------------------------

_ABSENT = ("<absent>",)  # a projected path the object does not have (distinct from a null value)


def _item(items: Any, selector: str) -> Any:
    """The element of a list a FieldsV1 ``k:{...}`` / ``v:...`` / ``i:N`` key selects."""
    if not isinstance(items, list):
        return _ABSENT
    kind, _, raw = selector.partition(":")
    try:
        wanted = json.loads(raw) if kind in ("k", "v") else int(raw)
    except ValueError:
        return _ABSENT
    if kind == "k" and isinstance(wanted, dict):
        for item in items:
            if isinstance(item, dict) and all(item.get(k) == v for k, v in wanted.items()):
                return item
        return _ABSENT
    if kind == "v":
        return wanted if wanted in items else _ABSENT
    if kind == "i" and isinstance(wanted, int) and 0 <= wanted < len(items):
        return items[wanted]
    return _ABSENT


def project(value: Any, fields: Mapping[str, Any]) -> Any:
    """``value`` cut down to the paths of a FieldsV1 trie; a path with no children keeps its whole value."""
    if not fields or value is _ABSENT:
        return value
    out: dict[str, Any] = {}
    for key, sub in fields.items():
        if key == ".":
            continue
        if key.startswith("f:"):
            found = value.get(key[2:], _ABSENT) if isinstance(value, dict) else _ABSENT
        else:
            found = _item(value, key)
        out[key] = project(found, sub if isinstance(sub, Mapping) else {})
    return out


def _owned(obj: KubeObject, field_manager: str) -> Mapping[str, Any] | None:
    for entry in metadata(obj).get("managedFields") or ():
        if (
            isinstance(entry, dict)
            and entry.get("manager") == field_manager
            and entry.get("operation") == "Apply"
            and not entry.get("subresource")
        ):
            fields = entry.get("fieldsV1")
            return fields if isinstance(fields, Mapping) else {}
    return None


def changed(before: KubeObject, after: KubeObject, field_manager: str = DEFAULT_FIELD_MANAGER) -> bool:
    """Did our apply change the object? ``after`` is the apiserver's answer, ``before`` what we read just before.

    An unchanged resourceVersion settles it: a no-op apply writes nothing. Otherwise someone may have written in
    between (controllers update status, the Deployment controller its revision annotation), so only the fields
    ``field_manager`` owned before or owns now are compared: an apply sets, or removes, nothing else.
    """
    if metadata(before).get("resourceVersion") == metadata(after).get("resourceVersion"):
        return False
    now = _owned(after, field_manager)
    if now is None:
        return True
    paths = merge_fields(_owned(before, field_manager) or {}, now)
    return bool(project(before, paths) != project(after, paths))


# --- managed fields cleanup -------------------------------------------------------------------------------------


def merge_fields(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """The union of two FieldsV1 tries (``{"f:spec": {"f:replicas": {}}}``): every path in either."""
    out: dict[str, Any] = dict(a)
    for key, value in b.items():
        mine = out.get(key)
        out[key] = merge_fields(mine, value) if isinstance(mine, Mapping) and isinstance(value, Mapping) else value
    return out


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _is_foreign(entry: Mapping[str, Any], managers: Sequence[tuple[str, str]]) -> bool:
    if entry.get("subresource"):
        return False
    name = str(entry.get("manager") or "")
    operation = entry.get("operation")
    return any(name.startswith(prefix) and operation == op for prefix, op in managers)


def cleanup_patch(existing: KubeObject, field_manager: str = DEFAULT_FIELD_MANAGER) -> list[dict[str, Any]]:
    """The JSON patch that hands kubectl's fields to ``field_manager`` and drops its annotation (empty: none needed).

    As fluxcd/pkg ssa PatchReplaceFieldsManagers: the foreign entries are merged into our Apply entry (or the
    first is renamed into it), so our next apply owns those fields and sets or removes them as the manifest
    says. The patch carries the resourceVersion it was computed from, so a concurrent write makes it a 409
    instead of dropping that writer's managed fields.
    """
    meta = metadata(existing)
    managers = (*FOREIGN_MANAGERS, (field_manager, "Update"))
    entries: list[dict[str, Any]] = [e for e in meta.get("managedFields") or () if isinstance(e, dict)]
    ours: dict[str, Any] | None = next(
        (e for e in entries if e.get("manager") == field_manager and e.get("operation") == "Apply"), None
    )
    kept: list[dict[str, Any]] = []
    merged = False
    for entry in entries:
        if entry is ours:
            continue
        if not _is_foreign(entry, managers):
            kept.append(entry)
            continue
        merged = True
        if ours is None:
            ours = {**entry, "manager": field_manager, "operation": "Apply"}
        else:
            ours = {**ours, "fieldsV1": merge_fields(ours.get("fieldsV1") or {}, entry.get("fieldsV1") or {})}
    ops: list[dict[str, Any]] = []
    if merged and ours is not None:
        ops.append({"op": "replace", "path": "/metadata/managedFields", "value": [*kept, ours]})
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    ops.extend(
        {"op": "remove", "path": _pointer("metadata", "annotations", k)}
        for k in CLEANUP_ANNOTATIONS
        if k in annotations
    )
    ops.extend({"op": "remove", "path": _pointer("metadata", "labels", k)} for k in CLEANUP_LABELS if k in labels)
    if ops:
        ops.append({"op": "replace", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")})
    return ops


# --- apiserver answers ------------------------------------------------------------------------------------------

# The wordings of immutable-field rejections of the core types (and CEL's ``self == oldSelf`` rules). Flux
# treats every 409/422 of a dry run as one; we do not, so a plain validation error never deletes a workload.
_IMMUTABLE_MARKERS = (
    "field is immutable",
    "is immutable",
    "immutable field",
    "may not change once set",
    "updates to statefulset spec for fields other than",
)


def is_immutable_error(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _IMMUTABLE_MARKERS)
