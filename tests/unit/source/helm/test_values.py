"""valuesFiles: Helm/Flux deep merge (maps merge, lists and scalars replace), parsing errors, output form."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from source_controller.helm.errors import ValuesFilesError
from source_controller.helm.values import dump_values, merge_all, merge_values, parse_values


def test_maps_merge_lists_and_scalars_replace() -> None:
    base = {"image": {"repository": "nginx", "tag": "1.0", "pull": {"policy": "Always"}}, "ports": [80, 443], "n": 1}
    override = {"image": {"tag": "2.0", "pull": {"secrets": ["x"]}}, "ports": [8080], "n": None, "extra": True}
    assert merge_values(base, override) == {
        "image": {"repository": "nginx", "tag": "2.0", "pull": {"policy": "Always", "secrets": ["x"]}},
        "ports": [8080],
        "n": None,
        "extra": True,
    }
    assert base["image"] == {"repository": "nginx", "tag": "1.0", "pull": {"policy": "Always"}}


def test_a_scalar_replaces_a_map_and_a_map_replaces_a_scalar() -> None:
    assert merge_values({"a": {"b": 1}}, {"a": "flat"}) == {"a": "flat"}
    assert merge_values({"a": "flat"}, {"a": {"b": 1}}) == {"a": {"b": 1}}


def test_merge_all_in_order_last_wins() -> None:
    docs: list[dict[str, Any]] = [{"a": 1, "m": {"x": 1}}, {"a": 2, "m": {"y": 2}}, {"m": {"x": 3}}]
    assert merge_all(docs) == {"a": 2, "m": {"x": 3, "y": 2}}
    assert merge_all([]) == {}


def test_parse_keeps_types_but_not_timestamps_and_stringifies_keys() -> None:
    values = parse_values(b"replicas: 3\nenabled: true\nwhen: 2024-01-01\n1: one\nnested:\n  true: yes\n", source="v")
    assert values == {"replicas": 3, "enabled": True, "when": "2024-01-01", "1": "one", "nested": {"true": True}}


def test_empty_document_is_an_empty_map() -> None:
    assert parse_values(b"", source="v") == {}
    assert parse_values(b"# only a comment\n", source="v") == {}


def test_not_a_map_is_an_error() -> None:
    with pytest.raises(ValuesFilesError, match="must hold a map, not a list"):
        parse_values(b"- a\n- b\n", source="values-prod.yaml")


def test_malformed_yaml_says_where() -> None:
    with pytest.raises(ValuesFilesError, match=r"unmarshaling values from 'bad.yaml' failed: .* at line 3"):
        parse_values(b"a: 1\nb: [unclosed\n", source="bad.yaml")


def test_aliases_are_shared_not_expanded_and_cycles_are_refused() -> None:
    values = parse_values(b"base: &b {x: 1}\none: *b\ntwo: *b\n", source="v")
    assert values["one"] is values["two"]
    # Helm's decoder (yaml.v2) refuses an anchor that contains itself; no JSON or merge could walk it.
    with pytest.raises(ValuesFilesError, match=r"^unmarshaling values from 'v' failed: a YAML anchor contains itself$"):
        parse_values(b"loop: &l [*l]\n", source="v")


def test_dump_sorts_keys_and_round_trips() -> None:
    values = {"b": {"z": 1, "a": [1, 2]}, "a": "2024-01-01", "c": None}
    text = dump_values(values)
    assert text.index("a:") < text.index("b:")
    assert yaml.safe_load(text) == {"b": {"z": 1, "a": [1, 2]}, "a": "2024-01-01", "c": None}
