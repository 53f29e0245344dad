"""Label selectors as Kubernetes evaluates them: matchLabels, matchExpressions, and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_mesh.errors import InvalidSpec
from gitops_mesh.kube.selectors import LabelSelector, Operator, from_match_labels, labels_of, parse_selector

LABELS = {"app": "web", "tier": "frontend", "example.com/team": "a"}


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ({}, True),
        ({"matchLabels": {}}, True),
        ({"matchLabels": {"app": "web"}}, True),
        ({"matchLabels": {"app": "web", "example.com/team": "a"}}, True),
        ({"matchLabels": {"app": "db"}}, False),
        ({"matchLabels": {"missing": ""}}, False),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["db", "web"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "In", "values": ["x"]}]}, False),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, False),
        # NotIn takes an object without the key at all, as Kubernetes does.
        ({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["x"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "missing", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist", "values": []}]}, False),
        # matchLabels and matchExpressions are ANDed.
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend"]}],
            },
            True,
        ),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["frontend"]}],
            },
            False,
        ),
    ],
)
def test_selector_matches_as_kubernetes(selector: dict[str, Any], selected: bool) -> None:
    assert parse_selector(selector).matches(LABELS) is selected


@pytest.mark.parametrize(
    ("selector", "problem"),
    [
        ({"matchExpressions": [{"key": "app", "operator": "Equals", "values": ["web"]}]}, "not a valid label"),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": []}]}, "can't be empty"),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn"}]}, "can't be empty"),
        ({"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["web"]}]}, "must be empty"),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist", "values": ["x"]}]}, "must be empty"),
        ({"matchLabels": {"-app": "web"}}, "name part must consist"),
        ({"matchLabels": {"": "web"}}, "non-empty"),
        ({"matchLabels": {"x" * 64: "web"}}, "no more than 63"),
        ({"matchLabels": {"Example.com/app": "web"}}, "prefix part"),
        ({"matchLabels": {"/app": "web"}}, "prefix part must be non-empty"),
        ({"matchLabels": {"a/b/c": "web"}}, "optional prefix"),
        ({"matchLabels": {"app": "web site"}}, "a valid label"),
        ({"matchLabels": {"app": "v" * 64}}, "no more than 63"),
        ({"matchLabels": {"app": 3}}, "string values"),
        ({"matchExpressions": {"key": "app"}}, "must be a list"),
        ({"matchExpressions": ["app"]}, "must be an object"),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": "web"}]}, "list of strings"),
    ],
)
def test_selector_kubernetes_refuses_is_invalid(selector: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidSpec, match=problem):
        parse_selector(selector)


def test_valid_keys_and_values_are_taken() -> None:
    selector = parse_selector(
        {
            "matchLabels": {"app.kubernetes.io/name": "web", "empty": ""},
            "matchExpressions": [{"key": "k8s.io/x_y.z", "operator": "NotIn", "values": ["A-1", "b_2.c"]}],
        }
    )
    assert [(r.key, r.operator) for r in selector.requirements] == [
        ("app.kubernetes.io/name", Operator.IN),
        ("empty", Operator.IN),
        ("k8s.io/x_y.z", Operator.NOT_IN),
    ]
    assert selector.matches({"app.kubernetes.io/name": "web", "empty": ""})
    assert not selector.matches({"app.kubernetes.io/name": "web"})


def test_selects_reads_the_objects_labels() -> None:
    selector = from_match_labels({"team": "a"})
    assert selector.selects({"metadata": {"name": "x", "labels": {"team": "a", "other": "b"}}})
    assert not selector.selects({"metadata": {"name": "x"}})
    assert not selector.selects({})
    assert LabelSelector().selects({})
    assert labels_of({"metadata": {"labels": None}}) == {}


_label_keys = st.sampled_from(["app", "tier", "team", "example.com/owner"])
_label_values = st.sampled_from(["", "a", "b", "web"])
_label_sets = st.dictionaries(_label_keys, _label_values)


@given(selector=_label_sets, labels=_label_sets)
def test_match_labels_is_a_subset_check(selector: dict[str, str], labels: dict[str, str]) -> None:
    assert from_match_labels(selector).matches(labels) is (selector.items() <= labels.items())


@given(key=_label_keys, values=st.frozensets(_label_values, min_size=1), labels=_label_sets)
def test_not_in_is_the_complement_of_in(key: str, values: frozenset[str], labels: dict[str, str]) -> None:
    def one(operator: str) -> bool:
        return parse_selector(
            {"matchExpressions": [{"key": key, "operator": operator, "values": sorted(values)}]}
        ).matches(labels)

    assert one("NotIn") is not one("In")
    exists = parse_selector({"matchExpressions": [{"key": key, "operator": "Exists"}]}).matches(labels)
    absent = parse_selector({"matchExpressions": [{"key": key, "operator": "DoesNotExist"}]}).matches(labels)
    assert exists is (key in labels)
    assert absent is (key not in labels)
