"""postBuild substitution on objects: variable precedence, names, the disabled marker, YAML round trip (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kustomize_controller.build import manifests
from kustomize_controller.build.errors import SubstitutionFailed
from kustomize_controller.build.substitute import (
    check_names,
    merge_variables,
    substitute_object,
    substitute_objects,
    substitution_disabled,
)


def cm(name: str = "app", data: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **metadata}, "data": data or {}}


def test_inline_wins_over_sources_and_later_sources_win() -> None:
    merged = merge_variables([{"a": "cm1", "b": "cm1"}, {"b": "secret", "c": "secret"}], {"c": "inline"})
    assert merged == {"a": "cm1", "b": "secret", "c": "inline"}


def test_newlines_are_removed_from_values() -> None:
    assert merge_variables([{"a": "x\ny\n"}], {"b": "line\n"}) == {"a": "xy", "b": "line"}


def test_inline_values_must_be_strings() -> None:
    with pytest.raises(SubstitutionFailed, match=r"substitute\['n'\] must be a string"):
        merge_variables([], {"n": 1})


@pytest.mark.parametrize("name", ["a", "_a", "A_1", "_", "cluster_env"])
def test_valid_names(name: str) -> None:
    check_names([name])


@pytest.mark.parametrize("name", ["1a", "a-b", "a.b", "", "ünï", "a b"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(SubstitutionFailed, match="var name is invalid, must match"):
        check_names([name])


def test_substitutes_values_and_defaults() -> None:
    obj = cm(data={"env": "${env:=dev}", "region": "${region}", "missing": "[${nope}]"}, labels={"v": "${env}"})
    out = substitute_objects([obj], {"region": "eu"})[0]
    assert out["data"] == {"env": "dev", "region": "eu", "missing": "[]"}
    # "v: ${env}" became "v: ", which YAML reads as null - as Flux's YAMLToJSON does.
    assert out["metadata"]["labels"] == {"v": None}
    assert obj["data"]["env"] == "${env:=dev}", "the input object is not modified"


def test_no_variables_means_no_substitution() -> None:
    obj = cm(data={"env": "${env:=dev}"})
    assert substitute_objects([obj], {}) == [obj]


@pytest.mark.parametrize("where", ["labels", "annotations"])
def test_disabled_marker_skips_the_object(where: str) -> None:
    obj = cm(data={"script": "echo ${HOME}"})
    obj["metadata"][where] = {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}
    assert substitution_disabled(obj)
    assert substitute_objects([obj], {"HOME": "/x"}) == [obj]


def test_names_are_checked_only_when_an_object_is_substituted() -> None:
    disabled = cm(annotations={"kustomize.toolkit.fluxcd.io/substitute": "disabled"})
    assert substitute_objects([disabled], {"bad-name": "x"}) == [disabled]
    with pytest.raises(SubstitutionFailed, match="'bad-name' var name is invalid"):
        substitute_objects([disabled, cm()], {"bad-name": "x"})


def test_escape_keeps_the_braces() -> None:
    out = substitute_object(cm(data={"tpl": "$${name} and ${name}"}), {"name": "x"})
    assert out["data"]["tpl"] == "${name} and x"


def test_values_can_change_scalar_types_as_in_flux() -> None:
    obj = cm(data={"n": "${id}", "q": "${quote}${id}${quote}"})
    out = substitute_object(obj, {"id": "123", "quote": '"'})
    assert out["data"] == {"n": 123, "q": "123"}


def test_multiline_scripts_are_substituted_in_literal_blocks() -> None:
    obj = cm(data={"run.sh": '#!/bin/sh\necho ${greeting} "$1"\nexit 0\n'})
    out = substitute_object(obj, {"greeting": 'it\'s "quoted"'})
    assert out["data"]["run.sh"] == '#!/bin/sh\necho it\'s "quoted" "$1"\nexit 0\n'


def test_strict_mode_names_the_object_and_the_variable() -> None:
    obj = cm("web", {"x": "${missing}"}, namespace="apps")
    with pytest.raises(SubstitutionFailed, match=r"'ConfigMap/apps/web': variable not set \(strict mode\): 'missing'"):
        substitute_objects([obj], {"other": "1"}, strict=True)


def test_syntax_error_names_the_object() -> None:
    with pytest.raises(SubstitutionFailed, match="'ConfigMap/web': missing closing brace"):
        substitute_objects([cm("web", {"x": "${oops"})], {"a": "1"})


def test_value_breaking_the_yaml_is_reported() -> None:
    with pytest.raises(SubstitutionFailed, match="does not parse"):
        substitute_objects([cm("web", {"x": "${v}"})], {"v": "a: b: c"})


def test_objects_without_dollar_are_returned_as_is() -> None:
    obj = cm(data={"x": "plain"})
    assert substitute_object(obj, {"x": "1"}) is obj


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_dump_load_round_trip(data: dict[str, Any]) -> None:
    # substitution re-reads what it dumped: that must be lossless for anything an object can hold
    assert manifests.load(manifests.dump(data)) == data
