"""Manifest rules without a cluster: stages and kind order, annotations, owner labels, validation, drift, cleanup."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_mesh.kube.objects import KubeObject
from kustomize_controller.apply.objects import (
    LAST_APPLIED_ANNOTATION,
    NAME_LABEL,
    NAMESPACE_LABEL,
    Owner,
    SSAPolicy,
    Stage,
    changed,
    cleanup_patch,
    force_enabled,
    is_immutable_error,
    keeps_foreign_fields,
    merge_fields,
    project,
    prune_disabled,
    skip_apply,
    split_stages,
    ssa_policy,
    stage_of,
    validate,
    waves,
    with_namespace,
    with_owner_labels,
)


def obj(
    api_version: str,
    kind: str,
    name: str,
    namespace: str | None = None,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    **body: Any,
) -> KubeObject:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **body}


def kinds(objects: list[KubeObject]) -> list[str]:
    return [o["kind"] for o in objects]


# --- stages and order ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "kind", "stage"),
    [
        ("apiextensions.k8s.io", "CustomResourceDefinition", Stage.DEFINITIONS),
        ("", "Namespace", Stage.DEFINITIONS),
        ("rbac.authorization.k8s.io", "ClusterRole", Stage.DEFINITIONS),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding", Stage.RESOURCES),
        ("example.com", "Namespace", Stage.RESOURCES),  # only the core Namespace
        ("example.com", "CustomResourceDefinition", Stage.RESOURCES),
        ("storage.k8s.io", "StorageClass", Stage.CLASSES),
        ("networking.k8s.io", "IngressClass", Stage.CLASSES),
        ("scheduling.k8s.io", "PriorityClass", Stage.CLASSES),
        ("example.com", "WidgetClass", Stage.CLASSES),  # any kind ending in "Class"
        ("example.com", "Widgetclass", Stage.RESOURCES),  # case-sensitive, as Flux
        ("apps", "Deployment", Stage.RESOURCES),
    ],
)
def test_stage_of(group: str, kind: str, stage: Stage) -> None:
    assert stage_of(group, kind) is stage


def test_split_stages_orders_each_stage_as_flux_sorts() -> None:
    objects = [
        obj("networking.k8s.io/v1", "Ingress", "web", "app"),
        obj("apps/v1", "Deployment", "web", "app"),
        obj("example.com/v1", "Widget", "w", "app"),
        obj("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "hook"),
        obj("v1", "Service", "web", "app"),
        obj("v1", "ServiceAccount", "web", "app"),
        obj("networking.k8s.io/v1", "IngressClass", "nginx"),
        obj("rbac.authorization.k8s.io/v1", "ClusterRole", "reader"),
        obj("v1", "Namespace", "app"),
        obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.com"),
        obj("v1", "ConfigMap", "b", "app"),
        obj("v1", "ConfigMap", "a", "app"),
    ]
    stages = split_stages(objects)
    assert [s for s, _ in stages] == [Stage.DEFINITIONS, Stage.CLASSES, Stage.RESOURCES]
    assert kinds(stages[0][1]) == ["CustomResourceDefinition", "Namespace", "ClusterRole"]
    assert kinds(stages[1][1]) == ["IngressClass"]
    # ssa ReconcileOrder, then group, kind, namespace, name; unlisted kinds after the listed ones.
    rest = stages[2][1]
    assert [(o["kind"], o["metadata"]["name"]) for o in rest] == [
        ("ServiceAccount", "web"),
        ("ConfigMap", "a"),
        ("ConfigMap", "b"),
        ("Service", "web"),
        ("Deployment", "web"),
        ("Widget", "w"),
        ("Ingress", "web"),
        ("ValidatingWebhookConfiguration", "hook"),
    ]


def test_empty_stages_are_left_out() -> None:
    assert [s for s, _ in split_stages([obj("v1", "ConfigMap", "a", "ns")])] == [Stage.RESOURCES]
    assert split_stages([]) == []


def test_waves_put_admission_prerequisites_first_and_webhooks_last() -> None:
    objects = [
        obj("apps/v1", "Deployment", "web", "app"),
        obj("rbac.authorization.k8s.io/v1", "RoleBinding", "rb", "app"),
        obj("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "m"),
        obj("v1", "LimitRange", "lr", "app"),
        obj("rbac.authorization.k8s.io/v1", "Role", "r", "app"),
        obj("v1", "ServiceAccount", "sa", "app"),
        obj("v1", "ResourceQuota", "q", "app"),
        obj("v1", "Pod", "p", "app"),
    ]
    assert [kinds(w) for w in waves(objects)] == [
        ["ResourceQuota", "ServiceAccount", "Role", "LimitRange"],
        ["RoleBinding", "Deployment", "Pod"],
        ["MutatingWebhookConfiguration"],
    ]
    assert [kinds(w) for w in waves([obj("v1", "Service", "s", "ns")])] == [["Service"]]


# --- owner labels, namespaces --------------------------------------------------------------------------------


def test_owner_labels_are_added_to_a_copy() -> None:
    original = obj("v1", "ConfigMap", "a", "ns", labels={"app": "x", NAME_LABEL: "stale"})
    before = copy.deepcopy(original)
    labelled = with_owner_labels(original, Owner("apps", "flux-system"))
    assert labelled["metadata"]["labels"] == {"app": "x", NAME_LABEL: "apps", NAMESPACE_LABEL: "flux-system"}
    assert original == before
    assert Owner("apps", "flux-system").owns(labelled)
    assert not Owner("apps", "other").owns(labelled)
    assert not Owner("apps", "flux-system").owns(original)


def test_namespace_placement() -> None:
    namespaced = obj("v1", "ConfigMap", "a")
    assert with_namespace(namespaced, namespaced=True, default_namespace="dflt")["metadata"]["namespace"] == "dflt"
    assert with_namespace(namespaced, namespaced=True, default_namespace=None) is namespaced
    explicit = obj("v1", "ConfigMap", "a", "mine")
    assert with_namespace(explicit, namespaced=True, default_namespace="dflt")["metadata"]["namespace"] == "mine"
    cluster = obj("rbac.authorization.k8s.io/v1", "ClusterRole", "r", "stray")
    assert "namespace" not in with_namespace(cluster, namespaced=False, default_namespace="dflt")["metadata"]


# --- annotations -----------------------------------------------------------------------------------------------


SSA = "kustomize.toolkit.fluxcd.io/ssa"
FORCE = "kustomize.toolkit.fluxcd.io/force"
PRUNE = "kustomize.toolkit.fluxcd.io/prune"
RECONCILE = "kustomize.toolkit.fluxcd.io/reconcile"


@pytest.mark.parametrize(
    ("value", "policy"),
    [
        (None, SSAPolicy.OVERRIDE),
        ("Override", SSAPolicy.OVERRIDE),
        ("Merge", SSAPolicy.MERGE),
        ("merge", SSAPolicy.MERGE),
        ("IfNotPresent", SSAPolicy.IF_NOT_PRESENT),
        ("ifnotpresent", SSAPolicy.IF_NOT_PRESENT),
        ("Ignore", SSAPolicy.IGNORE),
        ("bogus", SSAPolicy.OVERRIDE),
    ],
)
def test_ssa_policy(value: str | None, policy: SSAPolicy) -> None:
    assert ssa_policy(obj("v1", "ConfigMap", "a", "ns", annotations={SSA: value} if value else None)) is policy


def test_skip_apply() -> None:
    plain = obj("v1", "ConfigMap", "a", "ns")
    live = obj("v1", "ConfigMap", "a", "ns")
    assert not skip_apply(plain, None)
    assert not skip_apply(plain, live)
    for marks in ({RECONCILE: "disabled"}, {RECONCILE: "Disabled"}, {SSA: "Ignore"}):
        marked = obj("v1", "ConfigMap", "a", "ns", annotations=marks)
        assert skip_apply(marked, None)
        assert skip_apply(plain, marked)  # the in-cluster object's mark counts too
    # A label works like an annotation (Flux's AnyInMetadata).
    assert skip_apply(obj("v1", "ConfigMap", "a", "ns", labels={RECONCILE: "disabled"}), None)
    once = obj("v1", "ConfigMap", "a", "ns", annotations={SSA: "IfNotPresent"})
    assert not skip_apply(once, None)
    assert skip_apply(once, live)
    # IfNotPresent only counts on the manifest.
    assert not skip_apply(plain, once)


def test_force_merge_and_prune_marks() -> None:
    plain = obj("v1", "ConfigMap", "a", "ns")
    forced = obj("v1", "ConfigMap", "a", "ns", annotations={FORCE: "Enabled"})
    assert not force_enabled(plain, plain, False)
    assert force_enabled(plain, plain, True)
    assert force_enabled(forced, None, False)
    assert force_enabled(plain, forced, False)
    merged = obj("v1", "ConfigMap", "a", "ns", annotations={SSA: "Merge"})
    assert keeps_foreign_fields(merged, plain)
    assert keeps_foreign_fields(plain, merged)
    assert not keeps_foreign_fields(plain, None)
    assert prune_disabled(obj("v1", "ConfigMap", "a", "ns", annotations={PRUNE: "disabled"}))
    assert prune_disabled(obj("v1", "ConfigMap", "a", "ns", labels={PRUNE: "Disabled"}))
    assert prune_disabled(obj("v1", "ConfigMap", "a", "ns", annotations={RECONCILE: "disabled"}))
    assert not prune_disabled(obj("v1", "ConfigMap", "a", "ns", annotations={PRUNE: "enabled"}))


# --- validation -------------------------------------------------------------------------------------------------


def test_validation_names_each_object() -> None:
    found = validate(
        [
            obj("apps/v1", "Deployment", "web", "default"),
            {"kind": "Deployment", "metadata": {"name": "web", "namespace": "default"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}},
            {"apiVersion": "v1", "metadata": {"name": "x"}},
            {"apiVersion": "v1", "kind": "Service"},
            "not a mapping",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": 1}}},
            obj("apps/v1", "Deployment", "web", "default"),
        ]
    )
    assert found == [
        "Deployment/default/web: apiVersion is required",
        "object #2 (ConfigMap): metadata.name is required",
        "?/x: kind is required",
        "object #4 (Service): metadata is required",
        "object #5: not a mapping but str",
        "ConfigMap/c: metadata.labels must map strings to strings",
        "Deployment/default/web: appears more than once",
    ]


def test_valid_objects_have_no_problems() -> None:
    assert validate([obj("v1", "ConfigMap", "a", "ns"), obj("v1", "ConfigMap", "a", "other")]) == []


# --- drift --------------------------------------------------------------------------------------------------------


def live(rv: str, replicas: int = 1, labels: dict[str, str] | None = None, **status: Any) -> KubeObject:
    labels = {"app": "web"} if labels is None else labels
    o = obj("apps/v1", "Deployment", "web", "ns", labels=labels, spec={"replicas": replicas})
    owned = {"f:metadata": {"f:labels": {".": {}, **{f"f:{k}": {} for k in labels}}}, "f:spec": {"f:replicas": {}}}
    o["metadata"].update(
        resourceVersion=rv,
        generation=int(rv),
        managedFields=[{"manager": "kustomize-controller", "operation": "Apply", "fieldsV1": owned}],
    )
    o["status"] = status
    return o


def test_changed_looks_at_our_fields_only() -> None:
    assert not changed(live("5"), live("5"))
    # Someone updated status, or a controller annotated the object, between our read and our apply.
    assert not changed(live("5"), live("6", readyReplicas=1))
    annotated = live("6")
    annotated["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "1"}
    assert not changed(live("5"), annotated)
    assert changed(live("5"), live("6", replicas=2))
    assert changed(live("5"), live("6", labels={"app": "web", "tier": "web"}))
    # A label we owned and no longer apply is removed: the union of both entries is compared.
    assert changed(live("5", labels={"app": "web", "tier": "web"}), live("6"))
    foreign = live("6")
    foreign["metadata"]["managedFields"] = []
    assert changed(live("5"), foreign)


@pytest.mark.parametrize(
    ("value", "fields", "expected"),
    [
        ({"a": 1, "b": 2}, {"f:a": {}}, {"f:a": 1}),
        ({"a": {"x": 1, "y": 2}}, {"f:a": {".": {}, "f:x": {}}}, {"f:a": {"f:x": 1}}),
        ({"a": {"x": 1}}, {"f:a": {}}, {"f:a": {"x": 1}}),  # no children: the whole (atomic) value
        ({}, {"f:a": {}}, {"f:a": ("<absent>",)}),
        (
            {"c": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]},
            {"f:c": {'k:{"name":"b"}': {".": {}, "f:image": {}}}},
            {"f:c": {'k:{"name":"b"}': {"f:image": "2"}}},
        ),
        ({"s": ["x", "y"]}, {"f:s": {'v:"y"': {}, 'v:"z"': {}}}, {"f:s": {'v:"y"': "y", 'v:"z"': ("<absent>",)}}),
        ({"l": [5, 6]}, {"f:l": {"i:1": {}, "i:9": {}}}, {"f:l": {"i:1": 6, "i:9": ("<absent>",)}}),
    ],
)
def test_project(value: Any, fields: dict[str, Any], expected: Any) -> None:
    assert project(value, fields) == expected


# --- managed fields cleanup ----------------------------------------------------------------------------------------


def entry(manager: str, operation: str, fields: dict[str, Any], subresource: str = "") -> dict[str, Any]:
    e: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "apiVersion": "apps/v1",
        "time": "2024-01-01T00:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    if subresource:
        e["subresource"] = subresource
    return e


OURS = entry("kustomize-controller", "Apply", {"f:spec": {"f:replicas": {}, "f:template": {}}})
STATUS = entry("kube-controller-manager", "Update", {"f:status": {"f:replicas": {}}}, subresource="status")
PATCHED = entry("kubectl-patch", "Update", {"f:spec": {"f:replicas": {}, "f:paused": {}}})
EDITED = entry("kubectl-edit", "Update", {"f:metadata": {"f:labels": {"f:x": {}}}})
HPA = entry("hpa-controller", "Update", {"f:spec": {"f:minReadySeconds": {}}})


def with_fields(*managed: dict[str, Any], annotations: dict[str, str] | None = None) -> KubeObject:
    o = obj("apps/v1", "Deployment", "web", "ns", annotations=annotations)
    o["metadata"]["resourceVersion"] = "42"
    o["metadata"]["managedFields"] = list(managed)
    return o


def test_kubectl_fields_are_merged_into_our_apply_entry() -> None:
    ops = cleanup_patch(with_fields(OURS, STATUS, PATCHED, HPA, EDITED))
    assert ops[0]["op"] == "replace"
    assert ops[0]["path"] == "/metadata/managedFields"
    managed = ops[0]["value"]
    assert [(e["manager"], e["operation"]) for e in managed] == [
        ("kube-controller-manager", "Update"),
        ("hpa-controller", "Update"),
        ("kustomize-controller", "Apply"),
    ]
    assert managed[-1]["fieldsV1"] == {
        "f:spec": {"f:replicas": {}, "f:template": {}, "f:paused": {}},
        "f:metadata": {"f:labels": {"f:x": {}}},
    }
    assert ops[-1] == {"op": "replace", "path": "/metadata/resourceVersion", "value": "42"}


def test_first_kubectl_entry_is_renamed_when_we_have_none() -> None:
    ops = cleanup_patch(with_fields(STATUS, PATCHED, EDITED))
    managed = ops[0]["value"]
    assert managed[-1]["manager"] == "kustomize-controller"
    assert managed[-1]["operation"] == "Apply"
    assert managed[-1]["fieldsV1"] == {
        "f:spec": {"f:replicas": {}, "f:paused": {}},
        "f:metadata": {"f:labels": {"f:x": {}}},
    }


def test_server_side_kubectl_and_our_own_updates_are_taken_too() -> None:
    kubectl_ssa = entry("kubectl", "Apply", {"f:data": {"f:k": {}}})
    ours_update = entry("kustomize-controller", "Update", {"f:data": {"f:j": {}}})
    before = entry("before-first-apply", "Update", {"f:data": {"f:i": {}}})
    ops = cleanup_patch(with_fields(OURS, kubectl_ssa, ours_update, before))
    assert [e["manager"] for e in ops[0]["value"]] == ["kustomize-controller"]
    assert set(ops[0]["value"][0]["fieldsV1"]["f:data"]) == {"f:i", "f:j", "f:k"}


def test_kubectl_subresource_entries_are_left() -> None:
    scaled = entry("kubectl-scale", "Update", {"f:spec": {"f:replicas": {}}}, subresource="scale")
    assert cleanup_patch(with_fields(OURS, scaled)) == []


def test_annotations_and_labels_are_removed_with_escaped_pointers() -> None:
    o = with_fields(OURS, annotations={LAST_APPLIED_ANNOTATION: "{}", "keep": "me"})
    o["metadata"]["labels"] = {"fluxcd.io/sync-gc-mark": "x"}
    assert cleanup_patch(o) == [
        {"op": "remove", "path": "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration"},
        {"op": "remove", "path": "/metadata/labels/fluxcd.io~1sync-gc-mark"},
        {"op": "replace", "path": "/metadata/resourceVersion", "value": "42"},
    ]


def test_nothing_to_clean() -> None:
    assert cleanup_patch(with_fields(OURS, STATUS, HPA)) == []
    assert cleanup_patch(obj("v1", "ConfigMap", "a", "ns")) == []


_keys = st.sampled_from(["f:a", "f:b", "f:c", ".", 'k:{"name":"x"}'])
_tries: st.SearchStrategy[dict[str, Any]] = st.recursive(
    st.just({}), lambda inner: st.dictionaries(_keys, inner, max_size=3), max_leaves=12
)


def paths(trie: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out = {prefix} if prefix else set()
    for k, v in trie.items():
        out |= paths(v, (*prefix, k))
    return out


@given(_tries, _tries)
def test_merge_fields_is_the_union(a: dict[str, Any], b: dict[str, Any]) -> None:
    merged = merge_fields(a, b)
    assert paths(merged) == paths(a) | paths(b)
    assert merge_fields(b, a) == merged


# --- immutable errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "immutable"),
    [
        ('Deployment.apps "web" is invalid: spec.selector: Invalid value: {...}: field is immutable', True),
        ('Service "s" is invalid: spec.clusterIPs[0]: Invalid value: ["10.0.0.77"]: may not change once set', True),
        ('Job.batch "j" is invalid: spec.template: Invalid value: {...}: field is immutable', True),
        (
            'StatefulSet.apps "st" is invalid: spec: Forbidden: updates to statefulset spec for fields other than '
            "'replicas', 'ordinals', 'template' are forbidden",
            True,
        ),
        ('PersistentVolumeClaim "p" is invalid: spec: Forbidden: spec is immutable after creation', True),
        ('Widget.example.com "w" is invalid: spec.size: Invalid value: "string": Value is immutable', True),
        ('Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: must be >= 0', False),
        ('ConfigMap "c" is invalid: metadata.name: Invalid value: "C": a lowercase RFC 1123 subdomain', False),
    ],
)
def test_immutable_errors(message: str, immutable: bool) -> None:
    assert is_immutable_error(message) is immutable
