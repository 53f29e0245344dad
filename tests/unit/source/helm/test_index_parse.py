"""Index parsing: Helm's validation and order, errors that say where, the digest of the bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from source_controller.helm.errors import InvalidIndex
from source_controller.helm.index import parse_index_bytes, parse_index_file, sort_key

GOOD = b"""\
apiVersion: v1
entries:
  demo:
  - apiVersion: v2
    appVersion: 1.16.0
    created: "2024-01-01T00:00:00.123456789Z"
    description: A Helm chart
    digest: 190795e8ce19cc5c4f9d0d5989f6cea44f8aeb7d07315f538bfdefa4bd20fac5
    name: demo
    type: application
    urls:
    - demo-0.1.0.tgz
    version: 0.1.0
  - name: demo
    version: 0.10.0
    urls: [https://example.com/demo-0.10.0.tgz]
    deprecated: true
    annotations: {category: web}
    maintainers: [{name: a}]
  - name: demo
    version: "1.10"
    urls: [demo-1.10.tgz]
  other: []
  empty:
generated: "2024-01-01T00:00:00Z"
serverInfo: {contextPath: /x}
"""


def test_parses_entries_sorted_newest_first() -> None:
    index = parse_index_bytes(GOOD)
    assert index.api_version == "v1"
    assert index.generated == "2024-01-01T00:00:00Z"
    assert [cv.version for cv in index.entries["demo"]] == ["1.10", "0.10.0", "0.1.0"]
    first = index.entries["demo"][2]
    assert first.urls == ("demo-0.1.0.tgz",)
    assert first.digest.startswith("190795e8")
    assert first.created == "2024-01-01T00:00:00.123456789Z"
    assert first.app_version == "1.16.0"
    assert first.api_version == "v2"
    assert index.entries["demo"][1].deprecated is True
    assert index.entries["demo"][1].api_version == "v1"  # missing apiVersion defaults to v1, as Flux sets it
    assert index.entries["other"] == ()
    assert index.entries["empty"] == ()
    assert len(index) == 3


def test_version_scalars_stay_as_written() -> None:
    index = parse_index_bytes(b"apiVersion: v1\nentries:\n  a:\n  - {name: a, version: 1.10, urls: [x]}\n")
    assert index.entries["a"][0].version == "1.10"


def test_digest_is_sha256_of_the_bytes_and_names_the_artifact() -> None:
    index = parse_index_bytes(GOOD)
    hexdigest = hashlib.sha256(GOOD).hexdigest()
    assert index.digest == index.revision == f"sha256:{hexdigest}"
    assert index.artifact_filename == f"index-{hexdigest}.yaml"
    assert index.size == len(GOOD)


def test_digest_of_a_file(tmp_path: Path) -> None:
    path = tmp_path / "index.yaml"
    path.write_bytes(GOOD)
    index = parse_index_file(path)
    assert index.digest == f"sha256:{hashlib.sha256(GOOD).hexdigest()}"
    assert index.entries == parse_index_bytes(GOOD).entries


def test_invalid_entries_are_dropped_and_reported() -> None:
    data = b"""apiVersion: v1
entries:
  demo:
  - {name: demo, version: 1.0.0, urls: [a]}
  - {name: demo, urls: [a]}
  - {name: demo, version: not-semver, urls: [a]}
  - {version: 2.0.0, urls: [a]}
  - {name: ../evil, version: 2.0.0, urls: [a]}
  - {name: demo, version: 3.0.0, type: plugin, urls: [a]}
  -
"""
    index = parse_index_bytes(data)
    assert [cv.version for cv in index.entries["demo"]] == ["1.0.0"]
    assert index.skipped_count == 5
    assert "demo not-semver: version 'not-semver' is not a semantic version" in index.skipped
    assert any("name '../evil' is invalid" in s for s in index.skipped)


def test_json_index_is_read_too() -> None:
    data = b'{"apiVersion": "v1", "entries": {"demo": [{"name": "demo", "version": "1.0.0", "urls": ["d.tgz"]}]}}'
    assert parse_index_bytes(data).entries["demo"][0].urls == ("d.tgz",)


def test_anchors_and_aliases() -> None:
    data = b"""apiVersion: v1
entries:
  demo:
  - &one {name: demo, version: 1.0.0, urls: &u [demo-1.0.0.tgz]}
  - {name: demo, version: 1.1.0, urls: *u}
  copy: [*one]
"""
    index = parse_index_bytes(data)
    assert index.entries["demo"][1].urls == ("demo-1.0.0.tgz",)
    assert index.entries["copy"][0].version == "1.0.0"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty index.yaml file"),
        (b"# nothing\n", "empty index.yaml file"),
        (b"~\n", "empty index.yaml file"),
        (b"entries: {}\n", "no API version specified"),
        (b"- a\n- b\n", "line 1: an index must be a map"),
        (b"apiVersion: v1\nentries: [a]\n", "line 2: entries must be a map"),
        (b"apiVersion: v1\nentries:\n  demo: {a: 1}\n", "line 3: entries.demo must be a list"),
        (b"apiVersion: v1\nentries:\n  demo:\n  - just a string\n", "line 4: entries.demo[0] must be a map"),
        (
            b"apiVersion: v1\nentries:\n  demo:\n  - name: demo\n    version: 1.0.0\n    urls: demo.tgz\n",
            "line 4: entries.demo[0].urls must be a list of strings, found a string",
        ),
        (
            b"apiVersion: v1\nentries:\n  demo:\n  - {name: [x], version: 1.0.0}\n",
            "entries.demo[0].name must be a string",
        ),
        (b"apiVersion: v1\nentries:\n  demo:\n  - {name: d, version: 1.0.0, deprecated: maybe}\n", "must be a boolean"),
        (b"apiVersion: [v1]\n", "apiVersion must be a string"),
        (b"apiVersion: v1\nentries:\n  ? [complex]\n  : []\n", "line 3: a chart name must be a string"),
        (b"apiVersion: v1\nentries:\n  d:\n  - {? [a] : b}\n", "line 4: map keys must be strings"),
        (b"apiVersion: v1\nentries:\n  demo: *nowhere\n", "undefined alias 'nowhere'"),
        (b"apiVersion: v1\n---\napiVersion: v1\n", "single YAML document"),
    ],
)
def test_structural_errors(data: bytes, message: str) -> None:
    with pytest.raises(InvalidIndex, match=message.replace("[", r"\[").replace("]", r"\]")) as caught:
        parse_index_bytes(data)
    assert caught.value.reason == "IndexationFailed"


def test_malformed_yaml_says_line_and_column() -> None:
    data = b"apiVersion: v1\nentries:\n  demo:\n  - name: demo\n    version: [1.0.0\n  other: x\n"
    with pytest.raises(InvalidIndex, match=r"index.yaml is not valid YAML: line 6, column 8: .*") as caught:
        parse_index_bytes(data)
    assert "while parsing a flow sequence" in str(caught.value)


def test_tab_indentation_error_is_located() -> None:
    with pytest.raises(InvalidIndex, match=r"line 3, column 1"):
        parse_index_bytes(b"apiVersion: v1\nentries:\n\tdemo: []\n")


def test_hostile_nesting_is_refused() -> None:
    data = b"apiVersion: v1\nx: " + b"[" * 200 + b"]" * 200 + b"\n"
    with pytest.raises(InvalidIndex, match="nesting deeper than 64"):
        parse_index_bytes(data)


def test_invalid_utf8_is_an_index_error() -> None:
    with pytest.raises(InvalidIndex, match="not valid YAML"):
        parse_index_bytes(b"apiVersion: v1\nentries: {\xff\xfe: []}\n")


def test_sort_key_is_loose_like_masterminds() -> None:
    assert sort_key("1.2") == sort_key("1.2.0")
    assert sort_key("v2") > sort_key("1.9.9")
    assert sort_key("1.0.0-rc.1") < sort_key("1.0.0")
    with pytest.raises(ValueError, match="not a semantic version"):
        sort_key("latest")
