"""tenant_yaml: alias bombs, self-containing anchors, depth and size refused before a value is built; anchors kept."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest
import yaml

from gitops_mesh import tenant_yaml
from gitops_mesh.tenant_yaml import DEFAULT_LIMITS, AliasBudget, UnsafeYaml, YamlLimits, load, load_all
from tests.support.yaml_bombs import alias_bomb


class RecordingLoader(yaml.SafeLoader):
    """Our seam (load's ``loader``): notes every document that reached construction."""

    constructed: list[Any] = []

    def construct_document(self, node: Any) -> Any:
        RecordingLoader.constructed.append(node)
        return super().construct_document(node)


@pytest.fixture(autouse=True)
def _fresh_recording() -> None:
    RecordingLoader.constructed = []


@pytest.mark.parametrize("levels", [7, 10])
def test_the_issues_alias_bomb_is_refused_before_anything_is_built(levels: int) -> None:
    bomb = alias_bomb(levels)
    assert len(bomb) < 500  # 338 bytes at seven levels: 47 MB once serialised
    tracemalloc.start()
    try:
        with pytest.raises(UnsafeYaml, match=r"^values\.yaml: YAML aliases expand to more than 1000000 nodes$"):
            load(bomb, what="values.yaml", loader=RecordingLoader)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Refused on the composed graph: nothing constructed, so nothing could be serialised, and no expansion.
    assert RecordingLoader.constructed == []
    assert peak < 4 << 20


def test_a_small_bomb_under_the_node_cap_is_refused_by_the_expansion_ratio() -> None:
    with pytest.raises(UnsafeYaml, match=r"^v: YAML aliases expand 59 nodes to 141170, more than 100 times as many$"):
        load(alias_bomb(5), what="v")


def test_a_bomb_spread_over_many_documents_counts_against_one_budget() -> None:
    # Each document alone is within every cap (81 leaves); together they are over the stream's 5000 nodes.
    stream = "---\n".join([alias_bomb(2)] * 60)
    limits = YamlLimits(max_bytes=1 << 20, max_nodes=5000, max_depth=16)
    load(alias_bomb(2), what="one", limits=limits)
    with pytest.raises(UnsafeYaml, match=r"^stream: YAML aliases expand to more than 5000 nodes$"):
        load_all(stream, what="stream", limits=limits)


def test_a_merge_key_chain_is_refused_before_the_constructor_expands_it() -> None:
    # PyYAML's constructor copies merged pairs itself: nine-fold per level, exponential if it ever ran.
    lines = ["m0: &m0 {k: v}"] + [f"m{i}: &m{i} {{<<: [{','.join([f'*m{i - 1}'] * 9)}]}}" for i in range(1, 30)]
    with pytest.raises(UnsafeYaml, match="YAML aliases expand to more than"):
        load("\n".join(lines), what="merge", loader=RecordingLoader)
    assert RecordingLoader.constructed == []


def test_legitimate_anchors_load_to_their_expanded_value() -> None:
    text = """
defaults: &defaults
  image: {repository: nginx, tag: "1.25"}
  resources: &res {limits: {cpu: 100m}}
web:
  <<: *defaults
  replicas: 2
worker:
  <<: *defaults
  resources: *res
sidecars: [*res, *res]
"""
    got = load(text, what="values.yaml")
    defaults = {"image": {"repository": "nginx", "tag": "1.25"}, "resources": {"limits": {"cpu": "100m"}}}
    expanded = {
        "defaults": defaults,
        "web": {**defaults, "replicas": 2},
        "worker": defaults,
        "sidecars": [{"limits": {"cpu": "100m"}}] * 2,
    }
    assert got == expanded
    assert json.loads(json.dumps(got)) == expanded


@pytest.mark.parametrize("text", ["&a [*a]", "a: &a {b: [1, *a]}"])
def test_an_anchor_that_contains_itself_is_refused(text: str) -> None:
    with pytest.raises(UnsafeYaml, match=r"^x: a YAML anchor contains itself$"):
        load(text, what="x")


@pytest.mark.parametrize("loader", [None, yaml.SafeLoader])
def test_deep_nesting_is_refused(loader: type | None) -> None:
    deep = "[" * 300 + "]" * 300
    with pytest.raises(UnsafeYaml, match=r"^deep: nesting deeper than 256 levels$"):
        load(deep, what="deep", loader=loader)
    load("[" * 256 + "]" * 256, what="deep", loader=loader)


def test_nesting_built_through_aliases_counts_too() -> None:
    limits = YamlLimits(max_bytes=1 << 20, max_nodes=1000, max_depth=8)
    text = "a: &a [[[[1]]]]\nb: [[[[*a]]]]\n"  # 4 levels, and 4 more above the alias, inside the top map
    with pytest.raises(UnsafeYaml, match="nesting deeper than 8 levels"):
        load(text, what="d", limits=limits)


def test_recursion_in_the_pure_python_composer_becomes_unsafe_yaml() -> None:
    limits = YamlLimits(max_bytes=1 << 20, max_nodes=10_000, max_depth=100_000)
    with pytest.raises(UnsafeYaml, match=r"^deep: YAML nests too deeply to parse$"):
        load("[" * 5000 + "]" * 5000, what="deep", limits=limits, loader=yaml.SafeLoader)


def test_size_cap_in_bytes_before_parsing() -> None:
    limits = YamlLimits(max_bytes=16, max_nodes=1000, max_depth=8)
    assert load("k: " + "é" * 6, what="f", limits=limits) == {"k": "é" * 6}  # 15 bytes
    with pytest.raises(UnsafeYaml, match=r"^f: YAML of more than 16 bytes$"):
        load("k: " + "é" * 7, what="f", limits=limits, loader=RecordingLoader)  # 7 characters, 17 bytes
    with pytest.raises(UnsafeYaml, match=r"^f: YAML of more than 16 bytes$"):
        load_all(b"a: 1\n---\nb: 22222\n", what="f", limits=limits)
    assert RecordingLoader.constructed == []


def test_many_plain_nodes_are_named_without_blaming_aliases() -> None:
    limits = YamlLimits(max_bytes=1 << 20, max_nodes=100, max_depth=8)
    with pytest.raises(UnsafeYaml, match=r"^n: more than 100 YAML nodes$"):
        load("[" + ",".join(["1"] * 200) + "]", what="n", limits=limits)


def test_unsafe_yaml_is_a_value_error_and_a_yaml_error_and_parse_errors_stay_yaml_errors() -> None:
    with pytest.raises(UnsafeYaml) as refused:
        load("&a [*a]", what="x")
    assert isinstance(refused.value, ValueError)
    assert isinstance(refused.value, yaml.YAMLError)  # callers that only catch parse errors still catch it
    with pytest.raises(yaml.YAMLError) as bad:
        load("a: [", what="x")
    assert not isinstance(bad.value, UnsafeYaml)


def test_empty_documents_and_custom_loaders() -> None:
    assert load("", what="e") is None
    assert load_all("a: 1\n---\n---\nb: 2\n", what="e") == [{"a": 1}, None, {"b": 2}]
    assert load("v: 1", what="c", loader=yaml.CBaseLoader) == {"v": "1"}
    assert DEFAULT_LIMITS.max_depth == 256


def test_alias_budget_counts_each_target_once_and_refuses_past_the_caps() -> None:
    limits = YamlLimits(max_bytes=1 << 20, max_nodes=10_000, max_depth=16, max_expansion=10)
    budget = AliasBudget(what="index.yaml", limits=limits)
    shared = [{"name": "a", "version": str(i)} for i in range(100)]  # 501 nodes
    budget.alias(shared, written=600)
    assert budget.aliased == 500
    budget.alias(shared, written=601)  # remembered: one lookup
    assert budget.aliased == 1000
    budget.alias([shared] * 5, written=602)  # 2505 more: 602 + 3505 is within 10 x 602
    with pytest.raises(UnsafeYaml, match=r"^index\.yaml: YAML aliases expand 603 nodes to 6112, more than 10 times"):
        budget.alias([shared] * 4, written=603)  # 2004 more


def test_problem_names_the_place_and_never_quotes_the_text() -> None:
    secret = "token-ABC123-secret"
    with pytest.raises(yaml.YAMLError) as caught:
        # The pure-Python loader (custom constructors use it) quotes the offending line in its marks.
        tenant_yaml.load(f"a: b\n  c: {secret}: d\n", what="headers", loader=yaml.SafeLoader)
    described = tenant_yaml.problem(caught.value)
    assert "line 2" in described
    assert secret not in described
    assert secret in str(caught.value), "PyYAML's own message quotes the line: the reason problem() exists"


def test_compose_all_keeps_scalars_as_written_and_applies_the_caps() -> None:
    text = "a: yes\nb: '0777'\nc: 0777\nd: 1:20\n---\n- x\n"
    nodes = tenant_yaml.compose_all(text, what="manifests")
    assert len(nodes) == 2
    out = yaml.serialize_all(nodes, Dumper=yaml.SafeDumper)
    first = out.split("---")[0]
    for written in ("a: yes", "b: '0777'", "c: 0777", "d: 1:20"):
        assert written in first
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(6)
    )
    with pytest.raises(tenant_yaml.UnsafeYaml):
        tenant_yaml.compose_all(bomb, what="manifests")
