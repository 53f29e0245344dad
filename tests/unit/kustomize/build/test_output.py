"""kustomize's output and errors: objects checked, paths made artifact-relative; YAML scalars as Go reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from kustomize_controller.build import manifests
from kustomize_controller.build.errors import KustomizeFailed
from kustomize_controller.build.kustomize import parse_objects, trim_detail


def test_parse_objects_in_order_skipping_empty_documents() -> None:
    out = parse_objects(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: b\n"
    )
    assert [o["metadata"]["name"] for o in out] == ["a", "b"]


@pytest.mark.parametrize(
    "doc", ["kind: ConfigMap\nmetadata: {name: a}\n", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "- 1\n"]
)
def test_objects_must_have_api_version_kind_and_name(doc: str) -> None:
    with pytest.raises(KustomizeFailed, match="failed to decode Kubernetes apiVersion, kind and name from"):
        parse_objects(doc)


def test_trim_detail_makes_paths_relative(tmp_path: Path) -> None:
    stderr = (
        f"Error: accumulating resources: accumulation err='accumulating resources from 'missing.yaml': "
        f"evalsymlink failure on '{tmp_path}/apps/missing.yaml' : lstat {tmp_path}/apps/missing.yaml: "
        "no such file or directory'\n"
    )
    detail = trim_detail(stderr, tmp_path)
    assert str(tmp_path) not in detail
    assert detail.startswith("accumulating resources:")
    assert "'apps/missing.yaml'" in detail


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("a: 2024-01-01", "2024-01-01"),
        ("a: 1:20", "1:20"),
        ("a: 1:20.5", "1:20.5"),
        ("a: '123'", "123"),
        ("a: 123", 123),
        ("a: 1.5", 1.5),
        ("a: true", True),
        ("a: ~", None),
    ],
)
def test_scalars_as_go_reads_them(text: str, value: object) -> None:
    assert manifests.load(text) == {"a": value}


def test_dump_uses_literal_blocks_for_multiline_strings() -> None:
    assert manifests.dump({"s": "a\nb\n", "k": "1:20"}) == "s: |\n  a\n  b\nk: '1:20'\n"


def test_kustomization_files_read_yaml_1_2_booleans() -> None:
    text = "commonLabels: {feature: on, legacy: yes, real: true, quoted: 'off'}\n"
    assert manifests.load_kustomization(text) == {
        "commonLabels": {"feature": "on", "legacy": "yes", "real": True, "quoted": "off"}
    }
    # and written back so kustomize still reads strings
    assert manifests.dump({"a": "on"}) == "a: 'on'\n"
