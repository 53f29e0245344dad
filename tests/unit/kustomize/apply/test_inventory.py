"""Inventory ids as Flux writes them, their parse, and the stale-object diff a prune deletes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kustomize_controller.apply.inventory import (
    InvalidObjectId,
    InventoryEntry,
    ObjectId,
    deletion_order,
    diff,
    entries,
    object_id,
    parse_entry,
)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (ObjectId("apps", "Deployment", "default", "podinfo"), "default_podinfo_apps_Deployment"),
        (ObjectId("", "Service", "default", "web"), "default_web__Service"),
        (ObjectId("", "Namespace", "", "team"), "_team__Namespace"),
        (
            ObjectId("apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.com"),
            "_widgets.example.com_apiextensions.k8s.io_CustomResourceDefinition",
        ),
        # cli-utils transcodes the colons of RBAC names only.
        (
            ObjectId("rbac.authorization.k8s.io", "ClusterRole", "", "system:controller:x"),
            "_system__controller__x_rbac.authorization.k8s.io_ClusterRole",
        ),
        (
            ObjectId("rbac.authorization.k8s.io", "RoleBinding", "ns", "a:b"),
            "ns_a__b_rbac.authorization.k8s.io_RoleBinding",
        ),
    ],
)
def test_flux_id_format(ref: ObjectId, expected: str) -> None:
    assert ref.id == expected
    assert object_id(ref.namespace, ref.name, ref.group, ref.kind) == expected
    assert ObjectId.parse(expected) == ref


def test_entry_carries_the_bare_version_and_parses_back() -> None:
    ref = ObjectId("apps", "Deployment", "default", "web", "v1")
    assert ref.entry() == {"id": "default_web_apps_Deployment", "v": "v1"}
    assert ref.api_version == "apps/v1"
    assert ObjectId("", "Service", "default", "web", "v1").api_version == "v1"
    assert parse_entry({"id": "default_web_apps_Deployment", "v": "v1"}) == (
        "apps",
        "v1",
        "Deployment",
        "default",
        "web",
    )
    assert ref.subject == "Deployment/default/web"
    assert ObjectId("", "Namespace", "", "team").subject == "Namespace/team"


def test_version_is_not_identity() -> None:
    assert ObjectId("apps", "Deployment", "a", "b", "v1") == ObjectId("apps", "Deployment", "a", "b", "v1beta1")
    assert len({ObjectId("apps", "Deployment", "a", "b", "v1"), ObjectId("apps", "Deployment", "a", "b")}) == 1


@pytest.mark.parametrize(
    "bad",
    ["", "nounderscore", "a_b", "a_b_c", "ns_na_me_apps_Deployment", "ns__apps_Deployment", "ns_name_apps_"],
)
def test_malformed_ids_are_refused(bad: str) -> None:
    with pytest.raises(InvalidObjectId):
        ObjectId.parse(bad)


_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_dns = st.lists(_label, min_size=1, max_size=3).map(".".join)
_kind = st.from_regex(r"[A-Z][A-Za-z0-9]{0,15}", fullmatch=True)
_group = st.one_of(st.just(""), _dns)
_refs = st.one_of(
    st.builds(ObjectId, _group, _kind, st.one_of(st.just(""), _label), _dns, st.sampled_from(["v1", "v1beta2"])),
    # RBAC names may hold colons.
    st.builds(
        ObjectId,
        st.just("rbac.authorization.k8s.io"),
        st.sampled_from(["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"]),
        st.one_of(st.just(""), _label),
        st.lists(_dns, min_size=1, max_size=3).map(":".join),
        st.just("v1"),
    ),
)


@given(_refs)
def test_id_round_trip(ref: ObjectId) -> None:
    back = ObjectId.parse(ref.id, ref.version)
    assert back == ref
    assert back.as_tuple() == ref.as_tuple()
    assert ObjectId.from_entry(ref.entry()).as_tuple() == ref.as_tuple()


@given(st.lists(_refs, max_size=12), st.lists(_refs, max_size=12))
def test_diff_is_old_minus_new_in_deletion_order(old: list[ObjectId], new: list[ObjectId]) -> None:
    stale = diff(entries(old), entries(new))
    assert {r.id for r in stale} == {r.id for r in old} - {r.id for r in new}
    assert len(stale) == len({r.id for r in stale})
    assert stale == deletion_order(stale)


def test_diff_keeps_versions_and_ignores_version_changes() -> None:
    old: list[InventoryEntry] = [
        {"id": "default_web_apps_Deployment", "v": "v1"},
        {"id": "default_web__Service", "v": "v1"},
        {"id": "_team__Namespace", "v": "v1"},
        {"id": "team_w_example.com_Widget", "v": "v1alpha1"},
    ]
    new: list[InventoryEntry] = [{"id": "team_w_example.com_Widget", "v": "v1"}]
    stale = diff(old, new)
    # Workloads first (ssa kind order backwards: Service ranks before Deployment), the namespace last.
    assert [r.id for r in stale] == ["default_web_apps_Deployment", "default_web__Service", "_team__Namespace"]
    assert [r.version for r in stale] == ["v1", "v1", "v1"]


def test_deletion_order_reverses_the_stages() -> None:
    crd = ObjectId("apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.com")
    ns = ObjectId("", "Namespace", "", "team")
    cls = ObjectId("networking.k8s.io", "IngressClass", "", "nginx")
    sa = ObjectId("", "ServiceAccount", "team", "app")
    widget = ObjectId("example.com", "Widget", "team", "w")
    hook = ObjectId("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", "", "v")
    assert deletion_order([crd, sa, ns, widget, cls, hook]) == [hook, widget, sa, cls, ns, crd]


def test_entries_dedupe_by_id_in_order() -> None:
    a = ObjectId("", "Service", "ns", "a", "v1")
    b = ObjectId("apps", "Deployment", "ns", "b", "v1")
    assert entries([a, b, a]) == [a.entry(), b.entry()]
