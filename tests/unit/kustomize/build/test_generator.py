"""kustomization.yaml generation and the spec overlays written into it, as Flux's generator does."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kustomize_controller.build import manifests
from kustomize_controller.build.errors import BuildFailed, InvalidManifest, UnsafeReference
from kustomize_controller.build.generator import (
    apply_overlays,
    check_manifest,
    is_local_relative,
    scan_manifests,
    set_common_metadata,
    write_kustomization,
)

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n"


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def read(path: Path) -> Any:
    return manifests.load(path.read_text())


def test_scan_lists_yaml_files_in_walk_order_and_stops_at_kustomizations(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "apps/b.yaml": CM.format("b"),
            "apps/a.yml": CM.format("a"),
            "apps/z/c.yaml": CM.format("c"),
            "apps/base/kustomization.yaml": "resources: [x.yaml]\n",
            "apps/base/x.yaml": "not: [valid",
            "apps/notes.txt": "ignored",
            "apps/data.json": '{"ignored": true}',
            "apps/empty.yaml": "# only a comment\n",
        },
    )
    found = scan_manifests(tmp_path, tmp_path / "apps")
    assert found == ["./a.yml", "./b.yaml", "./base", "./empty.yaml", "./z/c.yaml"]


def test_scan_names_the_file_that_is_not_kubernetes_yaml(tmp_path: Path) -> None:
    write(tmp_path, {"apps/ok.yaml": CM.format("ok"), "apps/ci/.gitlab-ci.yml": "stages: [build]\n"})
    with pytest.raises(
        InvalidManifest, match=re.escape("'apps/ci/.gitlab-ci.yml': missing apiVersion and kind")
    ) as info:
        scan_manifests(tmp_path, tmp_path / "apps")
    assert info.value.path == "apps/ci/.gitlab-ci.yml"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n data: [\n", "at line 5"),
        ("- a\n- b\n", "a list, not an object"),
        ("kind: ConfigMap\n", "missing apiVersion"),
        (CM.format("a") + "---\n" + "foo: bar\n", r"\(document 2\): missing apiVersion and kind"),
    ],
)
def test_check_manifest(text: str, problem: str) -> None:
    with pytest.raises(InvalidManifest, match=problem):
        check_manifest(text.encode(), "f.yaml")


def test_check_manifest_accepts_multi_documents_and_lists() -> None:
    check_manifest((CM.format("a") + "---\n---\n" + "apiVersion: v1\nkind: List\nitems: []\n").encode(), "f.yaml")


def test_generated_kustomization_is_written_in_the_directory(tmp_path: Path) -> None:
    write(tmp_path, {"plain/a.yaml": CM.format("a")})
    written = write_kustomization(tmp_path, tmp_path / "plain", {"targetNamespace": "apps"})
    assert written == tmp_path / "plain" / "kustomization.yaml"
    assert read(written) == {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["./a.yaml"],
        "namespace": "apps",
    }


def test_empty_directory_gets_an_empty_resource_list(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    written = write_kustomization(tmp_path, tmp_path / "empty", {})
    assert read(written)["resources"] == []


def test_existing_kustomization_keeps_its_name_and_fields(tmp_path: Path) -> None:
    write(tmp_path, {"app/Kustomization": "resources: [a.yaml]\nnamePrefix: old-\ncommonLabels: {x: y}\n"})
    written = write_kustomization(tmp_path, tmp_path / "app", {"namePrefix": "new-", "nameSuffix": "-v2"})
    assert written == tmp_path / "app" / "Kustomization"
    assert not (tmp_path / "app" / "kustomization.yaml").exists()
    assert read(written) == {
        "resources": ["a.yaml"],
        "namePrefix": "new-",
        "commonLabels": {"x": "y"},
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "nameSuffix": "-v2",
    }


def test_malformed_existing_kustomization_is_named(tmp_path: Path) -> None:
    write(tmp_path, {"app/kustomization.yaml": "resources: [a.yaml\n"})
    with pytest.raises(BuildFailed, match=re.escape("failed to read kustomization 'app/kustomization.yaml'")):
        write_kustomization(tmp_path, tmp_path / "app", {})


def test_patches_are_appended_with_flux_selector_fields() -> None:
    kus = {"patches": [{"path": "p.yaml"}]}
    spec: dict[str, Any] = {
        "patches": [
            {"patch": "- op: add\n  path: /x\n  value: 1\n", "target": {"kind": "Deployment", "labelSelector": "a=b"}},
            {"patch": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"},
        ]
    }
    out = apply_overlays(kus, spec)
    assert out["patches"] == [
        {"path": "p.yaml"},
        {"patch": spec["patches"][0]["patch"], "target": {"kind": "Deployment", "labelSelector": "a=b"}},
        {"patch": spec["patches"][1]["patch"]},
    ]
    assert kus == {"patches": [{"path": "p.yaml"}]}, "the input is not modified"


def test_images_replace_by_name_or_append() -> None:
    kus = {"images": [{"name": "nginx", "newTag": "1.0"}, {"name": "redis", "newTag": "6"}]}
    out = apply_overlays(
        kus, {"images": [{"name": "nginx", "newName": "my/nginx"}, {"name": "app", "digest": "sha256:" + "a" * 64}]}
    )
    assert out["images"] == [
        {"name": "nginx", "newName": "my/nginx"},
        {"name": "redis", "newTag": "6"},
        {"name": "app", "digest": "sha256:" + "a" * 64},
    ]


def test_components_are_appended_and_must_be_local() -> None:
    out = apply_overlays({"components": ["../a"]}, {"components": ["../b", "file://c"]})
    assert out["components"] == ["../a", "../b", "file://c"]
    with pytest.raises(BuildFailed, match="must be a local path"):
        apply_overlays({}, {"components": ["https://github.com/org/repo//comp"]})


def test_missing_components_are_dropped_only_when_asked() -> None:
    spec: dict[str, Any] = {"components": ["../here", "../gone"], "ignoreMissingComponents": True}
    out = apply_overlays({}, spec, component_exists=lambda path: path == "../here")
    assert out["components"] == ["../here"]
    spec["ignoreMissingComponents"] = False
    assert apply_overlays({}, spec, component_exists=lambda path: False)["components"] == ["../here", "../gone"]


def test_target_namespace_overrides_the_kustomization_namespace() -> None:
    assert apply_overlays({"namespace": "old"}, {"targetNamespace": "new"})["namespace"] == "new"
    assert apply_overlays({"namespace": "old"}, {"targetNamespace": ""})["namespace"] == "old"


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"patches": {"patch": "x"}}, "spec.patches must be a list"),
        ({"patches": [{"target": {}}]}, r"spec.patches\[0\] must have a 'patch'"),
        ({"images": [{"newTag": "1"}]}, r"spec.images\[0\] must have a 'name'"),
        ({"namePrefix": 3}, "spec.namePrefix must be a string"),
    ],
)
def test_bad_spec_shapes(spec: dict[str, Any], problem: str) -> None:
    with pytest.raises(BuildFailed, match=problem):
        apply_overlays({}, spec)


@pytest.mark.parametrize(
    ("path", "local"),
    [
        ("foobar.yaml", True),
        ("./foobar.yaml", True),
        ("../ingress", True),
        ("file://foobar.yaml", True),
        ("file:///foobar.yaml", False),
        ("/foobar.yaml", False),
        ("https://github.com/owner/repo", False),
        ("git@github.com:owner/repo", False),
        ("ssh://git@github.com/owner/repo", False),
        ("github.com/owner/repo", False),
    ],
)
def test_is_local_relative_as_flux(path: str, local: bool) -> None:
    assert is_local_relative(path) is local


def test_common_metadata_sets_metadata_only_and_overrides() -> None:
    objs: list[dict[str, Any]] = [
        {"kind": "Deployment", "metadata": {"name": "a", "labels": {"team": "old", "app": "a"}}, "spec": {}},
        {"kind": "ConfigMap", "metadata": {"name": "b"}},
    ]
    set_common_metadata(objs, {"team": "new"}, {"note": "x"})
    assert objs[0]["metadata"] == {"name": "a", "labels": {"team": "new", "app": "a"}, "annotations": {"note": "x"}}
    assert objs[0]["spec"] == {}
    assert objs[1]["metadata"] == {"name": "b", "labels": {"team": "new"}, "annotations": {"note": "x"}}


@pytest.mark.parametrize("outside", ["../../outside", "../../absent", "file://../../outside", "../../outside/../.."])
def test_ignore_missing_components_tells_nothing_about_paths_outside_the_artifact(tmp_path: Path, outside: str) -> None:
    # issue #11: dropping only the missing ones made the option an existence oracle on the controller's host
    (tmp_path / "outside").mkdir()
    root = tmp_path / "root"
    (root / "app").mkdir(parents=True)
    (root / "app/kustomization.yaml").write_text("resources: []\n")
    spec = {"components": [outside], "ignoreMissingComponents": True}
    with pytest.raises(UnsafeReference, match=re.escape(f"spec.components '{outside}' points outside the source")):
        write_kustomization(root, root / "app", spec)


def test_missing_components_inside_the_artifact_are_dropped(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "comp").mkdir()
    spec = {"components": ["../comp", "../gone"], "ignoreMissingComponents": True}
    written = write_kustomization(tmp_path, tmp_path / "app", spec)
    assert yaml.safe_load(written.read_text())["components"] == ["../comp"]


@pytest.mark.parametrize("spelling", ["NAMESPACE", "Namespace", "name\u017fpace"])
def test_no_spelling_of_a_field_overrides_the_spec(spelling: str) -> None:
    # kustomize reads keys as Go's JSON decoder does: case-folded, the last in byte order winning
    out = apply_overlays({spelling: "evil", "namespace": "old"}, {"targetNamespace": "safe"})
    assert {k: v for k, v in out.items() if k.casefold() == "namespace"} == {"namespace": "safe"}


def test_merged_fields_start_from_the_value_kustomize_reads() -> None:
    kus = {"PATCHES": [{"patch": "a"}], "patches": [{"patch": "b"}], "Images": [{"name": "x", "newTag": "1"}]}
    out = apply_overlays(kus, {"patches": [{"patch": "c"}], "images": [{"name": "y", "newTag": "2"}]})
    # "patches" sorts after "PATCHES", so kustomize would have read b
    assert out["patches"] == [{"patch": "b"}, {"patch": "c"}]
    assert out["images"] == [{"name": "x", "newTag": "1"}, {"name": "y", "newTag": "2"}]
    assert "PATCHES" not in out
    assert "Images" not in out
