"""The informer's relist diff as a pure function: what handlers see after a 410 Gone."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gitops_mesh.kube.informer import diff_relist
from gitops_mesh.kube.objects import KubeObject, ObjectKey, object_key


def cm(name: str, rv: str, uid: str = "", namespace: str = "ns") -> KubeObject:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "resourceVersion": rv}
    if uid:
        meta["uid"] = uid
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


def cache_of(*objs: KubeObject) -> dict[ObjectKey, KubeObject]:
    return {object_key(o): o for o in objs}


def test_first_list_is_all_added() -> None:
    changes = diff_relist({}, [cm("a", "1"), cm("b", "2")])
    assert [(t, object_key(o), old) for t, o, old in changes] == [
        ("ADDED", ("ns", "a"), None),
        ("ADDED", ("ns", "b"), None),
    ]


def test_added_modified_deleted_and_unchanged() -> None:
    a1, b1, c1 = cm("a", "1", "ua"), cm("b", "2", "ub"), cm("c", "3", "uc")
    a2, d1 = cm("a", "10", "ua"), cm("d", "11", "ud")
    changes = diff_relist(cache_of(a1, b1, c1), [a2, b1, d1])
    assert changes == [("MODIFIED", a2, a1), ("ADDED", d1, None), ("DELETED", c1, c1)]


def test_recreated_under_the_same_name_is_delete_then_add() -> None:
    old, new = cm("a", "1", "uid-1"), cm("a", "9", "uid-2")
    assert diff_relist(cache_of(old), [new]) == [("DELETED", old, old), ("ADDED", new, None)]


def test_same_name_other_namespace_is_another_object() -> None:
    a = cm("a", "1", namespace="one")
    b = cm("a", "1", namespace="two")
    assert diff_relist(cache_of(a), [a, b]) == [("ADDED", b, None)]


objects = st.dictionaries(
    st.tuples(st.sampled_from(["n1", "n2"]), st.sampled_from(list("abcdef"))),
    st.tuples(st.integers(1, 5), st.sampled_from(["u1", "u2"])),
    max_size=12,
)


@given(before=objects, after=objects)
def test_applying_the_diff_reaches_the_listed_state(
    before: dict[tuple[str, str], tuple[int, str]], after: dict[tuple[str, str], tuple[int, str]]
) -> None:
    def build(spec: dict[tuple[str, str], tuple[int, str]]) -> dict[ObjectKey, KubeObject]:
        return {k: cm(k[1], str(rv), uid, namespace=k[0]) for k, (rv, uid) in spec.items()}

    cache = build(before)
    listed = build(after)
    for change, obj, old in diff_relist(dict(cache), list(listed.values())):
        key = object_key(obj)
        if change == "DELETED":
            assert cache.pop(key) is old
        else:
            assert cache.get(key) is old
            cache[key] = obj
    assert cache == listed
