"""HelmRelease values: Flux's composition order, Helm's --set paths and merge, go-yaml v2 typing, Flux's config digest.

Expected digests come from Go: the first ones are fluxcd/pkg chartutil's own test table (digest_test.go);
the others were computed with chartutil's Encode/SortMapSlice/DigestValues over helm v4.3.2's strvals and
ReadValues, go.yaml.in/yaml/v2 v2.4.3 and sigs.k8s.io/yaml v1.6.0 (Flux's ChartValuesFromReferences
steps, run as a Go program on the same inputs).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from gitops_mesh.errors import TransientError
from helm_controller import strvals
from helm_controller.values import (
    MAX_REFERENCES,
    ValuesReferenceError,
    compose,
    config_digest,
    merge_maps,
    set_path,
    values_references,
)
from helm_controller.values_yaml import encode, read_values, resolve_plain

EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# --- the digest -------------------------------------------------------------------------------------------


def test_digest_of_empty_values_is_the_empty_string_s() -> None:
    assert config_digest({}) == EMPTY


def test_digest_matches_fluxcd_pkg_chartutil_test_table() -> None:
    values: dict[str, Any] = {
        "replicas": 3,
        "image": {"tag": "latest", "repository": "nginx"},
        "ports": [{"protocol": "TCP", "port": 8080}, {"port": 9090, "protocol": "UDP"}],
    }
    assert config_digest(values) == "sha256:fcdc2b0de1581a3633ada4afee3f918f6eaa5b5ab38c3fef03d5b48d3f85d9f6"
    numeric_keys = {
        "replicas": 3,
        "test": {
            "632bd82398e71231a98004b6": "value4",
            "632bd817c559818a52307da2": "value3",
            "632bd80ddf416cf32fd50679": "value2",
            "632bd80235a05f4192aefade": "value1",
        },
    }
    assert config_digest(numeric_keys) == "sha256:8a980fcbeadd6f05818f07e8aec14070c22250ca3d96af1fcd5f93b3e85b4d70"


def test_digest_quotes_folds_and_formats_as_go_yaml_v2() -> None:
    values = {
        "image": {"tag": "1.0", "repository": "ghcr.io/x"},
        "replicas": 2,
        "enabled": "yes",
        "ratio": 0.25,
        "big": 1234567.5,
        "empty": "",
        "list": [{"b": 1, "a": "on"}, []],
        "m": {},
        "n": None,
        "text": "line1\nline2\n",
        "date": "2020-01-01",
        "octal": "017",
        "long": " ".join(["word"] * 21),
    }
    assert encode(values).decode() == (
        'big: 1.2345675e+06\ndate: "2020-01-01"\nempty: ""\nenabled: "yes"\nimage:\n  repository: ghcr.io/x\n'
        '  tag: "1.0"\nlist:\n- a: "on"\n  b: 1\n- []\nlong: word word word word word word word word word word'
        ' word word word word word word\n  word word word word word\nm: {}\n"n": null\noctal: "017"\n'
        "ratio: 0.25\nreplicas: 2\ntext: |\n  line1\n  line2\n"
    )
    assert config_digest(values) == "sha256:9ae4b7ffd07b30cb1f08a7438d4b765cfbba40941c442be08412e47205382424"


def test_digest_takes_integral_floats_as_integers() -> None:
    assert config_digest({"a": 3.0}) == config_digest({"a": 3})
    assert config_digest({"a": 3.5}) != config_digest({"a": 3})


# --- composition ------------------------------------------------------------------------------------------


def cm(**data: str) -> dict[str, str | bytes]:
    return dict(data)


def secret(**data: str) -> dict[str, str | bytes]:
    return {k: v.encode() for k, v in data.items()}


def test_values_from_in_order_then_inline_values_on_top() -> None:
    spec = {
        "values": {"a": {"inline": 1}, "top": "inline"},
        "valuesFrom": [
            {"kind": "ConfigMap", "name": "one"},
            {"kind": "Secret", "name": "two", "valuesKey": "extra.yaml"},
        ],
    }
    objects = {
        ("ConfigMap", "one"): cm(**{"values.yaml": "a: {p: 1, q: 1}\ntop: one\nlist: [1, 2]\n"}),
        ("Secret", "two"): secret(**{"extra.yaml": "a: {q: 2}\nlist: [3]\n"}),
    }
    assert compose("ns", spec, objects) == {"a": {"p": 1, "q": 2, "inline": 1}, "top": "inline", "list": [3]}


def test_target_path_and_flux_s_aliasing_rule() -> None:
    """Flux merges the inline values in before setting a path, in place: nested wins, top level loses."""
    spec = {
        "values": {"a": {"b": 1}, "top": 1},
        "valuesFrom": [
            {"kind": "ConfigMap", "name": "c", "valuesKey": "v", "targetPath": "a.b"},
            {"kind": "ConfigMap", "name": "c", "valuesKey": "v", "targetPath": "top"},
        ],
    }
    assert compose("ns", spec, {("ConfigMap", "c"): cm(v="2")}) == {"a": {"b": 2}, "top": 1}
    # the spec's own values are never written into
    assert spec["values"] == {"a": {"b": 1}, "top": 1}


def test_target_path_into_a_list_from_go() -> None:
    spec = {
        "values": {"a": {"b": [{"k": 1}]}},
        "valuesFrom": [
            {"kind": "ConfigMap", "name": "c", "valuesKey": "x", "targetPath": "a.b[1].c"},
            {"kind": "ConfigMap", "name": "c", "valuesKey": "y"},
        ],
    }
    out = compose("ns", spec, {("ConfigMap", "c"): cm(x="x", y="a:\n  z: yes\n")})
    assert out == {"a": {"b": [{"k": 1}, {"c": "x"}], "z": True}}
    assert config_digest(out) == "sha256:1501e0952f446dbcac1d10c63a329bd32976042e7cbfd6ac6f668908c8f9fddc"


@pytest.mark.parametrize(
    ("raw", "literal", "expected"),
    [
        ("1", False, 1),
        ("true", False, True),
        ("'1'", False, "1"),
        ('"true"', False, "true"),
        ("{a,1}", False, ["a", 1]),
        ("a\\,b", False, "a,b"),
        ("{a,1}", True, "{a,1}"),
        ("x,y=2\n", True, "x,y=2\n"),
    ],
)
def test_target_path_value_typing(raw: str, literal: bool, expected: Any) -> None:
    spec = {"valuesFrom": [{"kind": "Secret", "name": "s", "targetPath": "a.b", "literal": literal}]}
    assert compose("ns", spec, {("Secret", "s"): secret(**{"values.yaml": raw})}) == {"a": {"b": expected}}


def test_missing_reference_gives_flux_s_message_and_reason() -> None:
    spec = {"valuesFrom": [{"kind": "Secret", "name": "gone"}]}
    with pytest.raises(ValuesReferenceError) as e:
        compose("team", spec, {("Secret", "gone"): None})
    assert isinstance(e.value, TransientError)
    assert e.value.reason == "ValuesError"
    assert str(e.value) == (
        "could not resolve Secret chart values reference 'team/gone' with key 'values.yaml': secrets \"gone\" not found"
    )


def test_missing_key_gives_flux_s_message() -> None:
    spec = {"valuesFrom": [{"kind": "ConfigMap", "name": "c", "valuesKey": "nope.yaml"}]}
    with pytest.raises(ValuesReferenceError) as e:
        compose("team", spec, {("ConfigMap", "c"): cm(other="a: 1")})
    assert (
        str(e.value)
        == "could not resolve ConfigMap chart values reference 'team/c' with key 'nope.yaml': key not found"
    )


def test_optional_missing_reference_or_key_is_skipped() -> None:
    spec = {
        "values": {"v": 1},
        "valuesFrom": [
            {"kind": "Secret", "name": "gone", "optional": True},
            {"kind": "ConfigMap", "name": "c", "valuesKey": "nope", "optional": True},
            {"kind": "ConfigMap", "name": "c"},
        ],
    }
    assert compose("ns", spec, {("Secret", "gone"): None, ("ConfigMap", "c"): cm(**{"values.yaml": "w: 2"})}) == {
        "v": 1,
        "w": 2,
    }


def test_errors_never_quote_a_secret_s_data() -> None:
    token = "hunter2-very-secret"
    bad_yaml = {"kind": "Secret", "name": "s", "valuesKey": "y"}
    bad_set = {"kind": "Secret", "name": "s", "valuesKey": "v", "targetPath": "a"}
    objects = {("Secret", "s"): secret(y=f"a: [{token}\nb: :{token}", v=f"x,{token}")}
    for ref in (bad_yaml, bad_set):
        with pytest.raises(ValuesReferenceError) as e:
            compose("ns", {"valuesFrom": [ref]}, objects)
        assert token not in str(e.value)
        assert str(e.value).startswith("could not resolve Secret chart values reference 'ns/s'")


def test_values_document_that_is_not_a_map_is_refused() -> None:
    with pytest.raises(ValuesReferenceError, match="cannot unmarshal array"):
        compose(
            "ns",
            {"valuesFrom": [{"kind": "ConfigMap", "name": "c"}]},
            {("ConfigMap", "c"): cm(**{"values.yaml": "- a"})},
        )


def test_too_many_references_are_refused() -> None:
    spec = {"valuesFrom": [{"kind": "ConfigMap", "name": "c"}] * (MAX_REFERENCES + 1)}
    with pytest.raises(ValuesReferenceError, match="too many"):
        compose("ns", spec, {("ConfigMap", "c"): cm(**{"values.yaml": "a: 1"})})


def test_values_references_are_each_object_once_in_order() -> None:
    spec = {
        "valuesFrom": [
            {"kind": "Secret", "name": "a"},
            {"kind": "ConfigMap", "name": "b", "valuesKey": "x"},
            {"kind": "Secret", "name": "a", "valuesKey": "other"},
        ]
    }
    assert values_references(spec) == [("Secret", "a"), ("ConfigMap", "b")]
    assert values_references({}) == []


# --- go-yaml v2 typing, Helm's merge and --set ------------------------------------------------------------


def test_values_documents_are_typed_as_go_yaml_v2_reads_them() -> None:
    doc = "a: yes\nb: y\nc: on\nd: 0x1F\ne: 017\nf: 1e3\ng: 2020-01-01\nh: 1:30\ni: ~\nk: 1_000\n1: int key\ntrue: bool key\n"
    assert read_values(doc, what="t") == {
        "a": True,
        "b": True,
        "c": True,
        "d": 31,
        "e": 15,
        "f": 1000,
        "g": "2020-01-01",
        "h": "1:30",
        "i": None,
        "k": 1000,
        "1": "int key",
        "true": "bool key",
    }
    # the first document only, merge keys followed
    assert read_values("a: 1\n---\nb: 2\n", what="t") == {"a": 1}
    assert read_values("b: &b {p: 1, q: 2}\nu:\n  <<: *b\n  q: 3\n", what="t")["u"] == {"p": 1, "q": 3}
    # go-yaml v2's YAML 1.1: a key ``y`` is the boolean true, so Helm and Flux see "true"
    assert read_values("y: 1\n", what="t") == {"true": 1}
    assert read_values("", what="t") == {}


def test_resolve_plain_edges() -> None:
    assert resolve_plain("08") == 8.0  # not octal, so a float, as strconv gives it
    assert resolve_plain("1e400") == "1e400"
    assert resolve_plain("-0b11") == -3
    assert resolve_plain(".5") == 0.5


def test_merge_maps_is_helm_s() -> None:
    a = {"m": {"x": 1, "l": [1, 2]}, "s": "a", "replace": {"k": 1}}
    b = {"m": {"y": 2, "l": [3]}, "replace": "now a string", "new": {"z": 1}}
    assert merge_maps(a, b) == {"m": {"x": 1, "y": 2, "l": [3]}, "s": "a", "replace": "now a string", "new": {"z": 1}}
    assert a["m"] == {"x": 1, "l": [1, 2]}  # a new map where both had one


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("a.b.c=v", {"a": {"b": {"c": "v"}}}),
        ("a\\.b=v", {"a.b": "v"}),
        ("a[1]=v", {"a": [None, "v"]}),
        ("a[0].b=1,a[0].c=x", {"a": [{"b": 1, "c": "x"}]}),
        ("a[0][1]=v", {"a": [[None, "v"]]}),
        ("a=", {"a": ""}),
        ("a=null", {"a": None}),
        ("a=007", {"a": "007"}),
        ("a[1", {}),
    ],
)
def test_strvals_paths(assignment: str, expected: dict[str, Any]) -> None:
    out: dict[str, Any] = {}
    strvals.parse_into(assignment, out)
    assert out == expected


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("a[-1]=v", "negative -1 index not allowed"),
        ("a[70000]=v", "greater than maximum supported index of 65536"),
        ("a[x]=v", 'parsing "x": invalid syntax'),
        ("a=x,y", 'key "y" has no value'),
        ("a={x,y", "list must terminate with '}'"),
        (".".join(["k"] * 32) + "=v", "maximum supported nested level of 30"),
    ],
)
def test_strvals_refusals(assignment: str, message: str) -> None:
    with pytest.raises(strvals.StrvalsError, match=message.replace("[", "\\[")):
        strvals.parse_into(assignment, {})


def test_set_path_on_a_non_map_fails_as_helm_does() -> None:
    values: dict[str, Any] = {"a": "scalar"}
    with pytest.raises(strvals.StrvalsError, match="interface conversion"):
        set_path(values, "a.b", "x")


def test_secret_data_arrives_as_bytes_and_is_read_as_text() -> None:
    raw = base64.b64decode(base64.b64encode(b"key: value\n"))
    out = compose("ns", {"valuesFrom": [{"kind": "Secret", "name": "s"}]}, {("Secret", "s"): {"values.yaml": raw}})
    assert out == {"key": "value"}
