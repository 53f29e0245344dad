"""Alias bombs wherever the build parses tenant YAML: each refused as that step's own build error, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kustomize_controller.build import manifests
from kustomize_controller.build.errors import BuildFailed, InvalidManifest, KustomizeFailed, SubstitutionFailed
from kustomize_controller.build.generator import check_manifest
from kustomize_controller.build.graph import load_kustomization
from kustomize_controller.build.kustomize import parse_objects
from kustomize_controller.build.substitute import substitute_objects
from tests.support.yaml_bombs import alias_bomb

REFUSED = "YAML aliases expand to more than"


def config_map(name: str, **fields: object) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "apps"}, **fields}


def test_a_postbuild_variable_holding_an_alias_bomb_is_refused_as_a_substitution_failure() -> None:
    bomb = alias_bomb(flow=True)
    assert len(bomb) < 400
    assert "\n" not in bomb  # a variable's value survives newline removal whole
    objects = [config_map("ok", data={"k": "v"}), config_map("bombed", spec="${BOMB}")]
    with pytest.raises(SubstitutionFailed) as refused:
        substitute_objects(objects, {"BOMB": bomb})
    assert str(refused.value) == (
        "post build substitution failed for 'ConfigMap/apps/bombed': "
        "the substituted YAML: YAML aliases expand to more than 1000000 nodes"
    )
    assert refused.value.reason == "BuildFailed"


def test_a_variable_with_a_few_legitimate_aliases_is_substituted_and_serialises_expanded() -> None:
    objects = [config_map("anchors", spec="${V}")]
    [got] = substitute_objects(objects, {"V": "{a: &x {k: v}, b: *x}"})
    assert json.loads(json.dumps(got))["spec"] == {"a": {"k": "v"}, "b": {"k": "v"}}


def test_kustomize_output_with_an_alias_bomb_is_a_kustomize_failure() -> None:
    output = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n" + "".join(
        f"  {line}\n" for line in alias_bomb(10).splitlines()
    )
    with pytest.raises(KustomizeFailed, match=f"^kustomize output is not YAML: {REFUSED} 16000000 nodes$"):
        parse_objects(output)


def test_a_manifest_file_with_an_alias_bomb_is_an_invalid_manifest() -> None:
    with pytest.raises(InvalidManifest, match=f"^failed to decode Kubernetes YAML from 'apps/bomb.yaml': {REFUSED}"):
        check_manifest(alias_bomb(10).encode(), "apps/bomb.yaml")


def test_a_kustomization_with_an_alias_bomb_fails_the_build(tmp_path: Path) -> None:
    file = tmp_path / "kustomization.yaml"
    file.write_text("resources: []\n" + alias_bomb())
    with pytest.raises(BuildFailed, match=f"^failed to read kustomization 'kustomization.yaml': {REFUSED} 1000000"):
        load_kustomization(file, "kustomization.yaml")


def test_a_self_containing_anchor_is_refused_before_json_could_meet_it() -> None:
    with pytest.raises(KustomizeFailed, match="a YAML anchor contains itself"):
        parse_objects("apiVersion: v1\nkind: ConfigMap\nmetadata: &m {name: x, self: *m}\n")


def test_manifests_keep_anchors_that_expand_modestly() -> None:
    docs = list(manifests.load_all("a: &x [1, 2]\nb: *x\n---\nc: 1\n"))
    assert docs == [{"a": [1, 2], "b": [1, 2]}, {"c": 1}]
