"""Reference checks before kustomize runs: remote bases, paths leaving the artifact."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kustomize_controller.build.errors import RemoteBaseRefused, UnsafeReference
from kustomize_controller.build.graph import check_references, looks_remote, walk


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize(
    ("ref", "remote"),
    [
        ("https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v1.0.6", True),
        ("http://example.com/manifest.yaml", True),
        ("ssh://git@github.com/org/repo.git", True),
        ("git@github.com:org/repo.git//base", True),
        ("git::https://example.com/repo", True),
        ("github.com/org/repo//base?ref=main", True),
        ("gitlab.example.org:8443/group/repo", True),
        ("file:///etc/passwd", False),
        ("deploy.yaml", False),
        ("../base", False),
        ("./sub.dir/x", False),
    ],
)
def test_looks_remote(ref: str, remote: bool) -> None:
    assert looks_remote(ref) is remote


def test_remote_base_refused_in_a_nested_base(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "apps/prod/kustomization.yaml": "resources: [../base]\n",
            "apps/base/kustomization.yaml": "resources:\n- deploy.yaml\n- https://example.com/org/repo//x?ref=v1\n",
        },
    )
    with pytest.raises(
        RemoteBaseRefused, match=re.escape("'apps/base/kustomization.yaml' resources 'https://example.com/")
    ):
        check_references(tmp_path, tmp_path / "apps/prod", no_remote_bases=True)
    check_references(tmp_path, tmp_path / "apps/prod", no_remote_bases=False)


def test_components_and_generators_are_checked(tmp_path: Path) -> None:
    write(tmp_path, {"app/kustomization.yaml": "components:\n- github.com/org/repo//comp\n"})
    with pytest.raises(RemoteBaseRefused, match="components"):
        check_references(tmp_path, tmp_path / "app", no_remote_bases=True)


def test_a_local_directory_named_like_a_host_is_local(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app/kustomization.yaml": "resources: [github.com/org/repo]\n",
            "app/github.com/org/repo/kustomization.yaml": "resources: []\n",
        },
    )
    check_references(tmp_path, tmp_path / "app", no_remote_bases=True)
    assert [node.directory for node in walk(tmp_path, tmp_path / "app")] == [
        tmp_path / "app",
        tmp_path / "app/github.com/org/repo",
    ]


@pytest.mark.parametrize("ref", ["../../../outside", "/etc/kubernetes", "file:///etc/kubernetes"])
def test_references_leaving_the_artifact_are_refused(tmp_path: Path, ref: str) -> None:
    root = tmp_path / "root"
    write(root, {"app/kustomization.yaml": f"resources: ['{ref}']\n"})
    with pytest.raises(UnsafeReference, match="points outside the source artifact"):
        check_references(root, root / "app", no_remote_bases=False)


def test_inline_transformer_configs_are_not_references(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app/kustomization.yaml": (
                "transformers:\n- |\n  apiVersion: builtin\n  kind: LabelTransformer\n"
                "  metadata: {name: x}\n  labels: {a: b}\n  fieldSpecs: [{path: metadata/labels, create: true}]\n"
            )
        },
    )
    check_references(tmp_path, tmp_path / "app", no_remote_bases=True)


def test_walk_visits_each_kustomization_once(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a/kustomization.yaml": "resources: [../b, ../c]\n",
            "b/kustomization.yaml": "resources: [../c]\n",
            "c/kustomization.yaml": "resources: [../a]\n",
        },
    )
    assert [n.directory.name for n in walk(tmp_path, tmp_path / "a")] == ["a", "b", "c"]
