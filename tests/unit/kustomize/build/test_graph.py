"""Reference checks before kustomize runs: remote bases, paths leaving the artifact."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kustomize_controller.build.errors import BuildFailed, RemoteBaseRefused, UnsafeReference
from kustomize_controller.build.graph import KUSTOMIZATION_FIELDS, Load, check_references, looks_remote, walk


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
    # kustomize v5 reads host.tld/owner/repo from disk: without a scheme or user it is no git URL
    write(
        tmp_path,
        {
            "app/kustomization.yaml": "resources: [gitlab.example.org/org/repo]\n",
            "app/gitlab.example.org/org/repo/kustomization.yaml": "resources: []\n",
        },
    )
    check_references(tmp_path, tmp_path / "app", no_remote_bases=True)
    assert [node.directory for node in walk(tmp_path, tmp_path / "app")] == [
        tmp_path / "app",
        tmp_path / "app/gitlab.example.org/org/repo",
    ]


@pytest.mark.parametrize("field", ["resources", "components"])
def test_a_local_directory_named_github_com_is_still_cloned(tmp_path: Path, field: str) -> None:
    # kustomize v5 clones github.com/owner/repo even when a directory of that name exists
    write(
        tmp_path,
        {
            "app/kustomization.yaml": f"{field}: [github.com/org/repo]\n",
            "app/github.com/org/repo/kustomization.yaml": "resources: []\n",
        },
    )
    with pytest.raises(RemoteBaseRefused, match=f"{field} 'github.com/org/repo' is a remote base"):
        check_references(tmp_path, tmp_path / "app", no_remote_bases=True)


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


# --- every field kustomize loads from, every spelling of remote (issue #11 item 3) ---

#: A kustomization holding ``value`` at each field kustomize v5 loads a file, directory or URL from.
FIELD_CASES = [
    (spec, load) for spec, load in KUSTOMIZATION_FIELDS if not spec.startswith(("transformers", "generators"))
]


def kustomization_with(spec: str, value: str) -> dict[str, Any]:
    """The smallest kustomization whose field ``spec`` (``a[].b``, as in KUSTOMIZATION_FIELDS) holds ``value``."""
    head, _, rest = spec.partition(".")
    field = head.removesuffix("[]")
    inner: Any = kustomization_with(rest, value) if rest else value
    return {field: [inner] if head.endswith("[]") else inner}


def write_kustomization(root: Path, content: dict[str, Any], where: str = "app") -> Path:
    directory = root / where
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(content))
    return directory


REMOTE_SPELLINGS = [
    "https://127.0.0.1:9/probe",
    "HTTP://127.0.0.1:9/probe",
    "hTtPs://internal.example/secret",
    "  https://127.0.0.1:9/leading-space",
]


@pytest.mark.parametrize(("spec", "load"), FIELD_CASES, ids=[spec for spec, _ in FIELD_CASES])
@pytest.mark.parametrize("url", REMOTE_SPELLINGS)
def test_every_field_refuses_urls_without_remote_bases(tmp_path: Path, spec: str, load: Load, url: str) -> None:
    app = write_kustomization(tmp_path, kustomization_with(spec, url))
    with pytest.raises(RemoteBaseRefused, match=r"is a remote (base|file), and remote bases are disabled"):
        check_references(tmp_path, app, no_remote_bases=True)
    check_references(tmp_path, app, no_remote_bases=False)  # Flux's default: remote bases allowed


@pytest.mark.parametrize(("spec", "load"), FIELD_CASES, ids=[spec for spec, _ in FIELD_CASES])
@pytest.mark.parametrize("escape", ["../../outside/x.yaml", "/etc/hostname", "sub/../../../outside/x.yaml"])
@pytest.mark.parametrize("no_remote_bases", [True, False])
def test_every_field_refuses_paths_leaving_the_artifact_whether_they_exist_or_not(
    tmp_path: Path, spec: str, load: Load, escape: str, no_remote_bases: bool
) -> None:
    root = tmp_path / "root"
    messages = []
    for exists in (False, True):
        outside = tmp_path / "outside"
        if exists:
            write(tmp_path, {"outside/x.yaml": "a: b\n", "outside/kustomization.yaml": "resources: []\n"})
        app = write_kustomization(root, kustomization_with(spec, escape))
        with pytest.raises(UnsafeReference, match="points outside the source artifact") as info:
            check_references(root, app, no_remote_bases=no_remote_bases)
        messages.append(str(info.value))
        assert outside.exists() is exists
    assert messages[0] == messages[1], "a refusal must not tell whether the path exists"


@pytest.mark.parametrize(
    "ref",
    [
        "GIT::https://example.com/org/repo",
        "git::https://example.com/org/repo//base?ref=v1",
        "ssh://git@example.com/org/repo.git",
        "SSH://git@example.com/org/repo.git",
        "git@example.com:org/repo.git",
        "deploy@example.com/org/repo",
        "github.com/org/repo//base",
        "GitHub.com/org/repo",
        "github.com:org/repo",
        "https://github.com/org/repo//base?ref=main",
        "gitlab.example.org/group/repo",
    ],
)
def test_every_spelling_of_a_remote_base_is_refused(tmp_path: Path, ref: str) -> None:
    for field in ("resources", "components", "bases"):
        app = write_kustomization(tmp_path, {field: [ref]})
        with pytest.raises(RemoteBaseRefused, match=f"{field} '"):
            check_references(tmp_path, app, no_remote_bases=True)


@pytest.mark.parametrize("ref", ["git::file:///work/main//deploy", "file:///etc", "FILE:///etc", "file://relative"])
@pytest.mark.parametrize("no_remote_bases", [True, False])
def test_file_urls_are_refused_in_every_mode(tmp_path: Path, ref: str, no_remote_bases: bool) -> None:
    app = write_kustomization(tmp_path, {"resources": [ref]})
    # a clone of a repository on the controller's host; git's protocol allow-list refuses it too
    with pytest.raises(UnsafeReference, match="a file: URL names the controller's files"):
        check_references(tmp_path, app, no_remote_bases=no_remote_bases)


@pytest.mark.parametrize(
    "key", ["RESOURCES", "Resources", "re\u017fources", "configMapGenerator[].FILES[]", "PATCHES[].Path"]
)
def test_field_names_are_matched_as_go_json_matches_them(tmp_path: Path, key: str) -> None:
    # kustomize decodes kustomization files with encoding/json: keys match case-insensitively, with folding
    app = write_kustomization(tmp_path, kustomization_with(key, "https://127.0.0.1:9/x"))
    with pytest.raises(RemoteBaseRefused):
        check_references(tmp_path, app, no_remote_bases=True)


@pytest.mark.parametrize("generator", ["configMapGenerator", "secretGenerator"])
def test_generator_files_with_a_key_are_checked_after_the_key(tmp_path: Path, generator: str) -> None:
    app = write_kustomization(tmp_path, {generator: [{"name": "x", "files": ["key=HTTPS://127.0.0.1:9/x"]}]})
    with pytest.raises(RemoteBaseRefused, match=f"{generator}\\[0\\].files 'HTTPS://"):
        check_references(tmp_path, app, no_remote_bases=True)
    app = write_kustomization(tmp_path, {generator: [{"name": "x", "files": ["key=../../../etc/hostname"]}]})
    with pytest.raises(UnsafeReference, match="points outside"):
        check_references(tmp_path, app, no_remote_bases=False)


def test_a_symlink_out_of_the_artifact_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(tmp_path, {"outside/secret.env": "A=1\n"})
    app = write_kustomization(root, {"configMapGenerator": [{"name": "x", "envs": ["link/secret.env"]}]})
    (app / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(UnsafeReference, match="points outside"):
        check_references(root, app, no_remote_bases=False)


def test_inline_patches_and_long_strings_are_not_paths(tmp_path: Path) -> None:
    patch = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {url: 'https://example.com/a/b'}\n"
    app = write_kustomization(
        tmp_path,
        {
            "patchesStrategicMerge": [patch, "x" * 5000, "nul\0byte"],
            "patches": [{"patch": patch, "target": {"kind": "ConfigMap"}}],
            "configMapGenerator": [{"name": "c", "literals": ["url=https://example.com/x"]}],
        },
    )
    check_references(tmp_path, app, no_remote_bases=True)


# --- plugin configurations: inline, in files, in Lists, in directories ---

PATCH_TRANSFORMER = "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: PATH\ntarget: {kind: X}\n"


@pytest.mark.parametrize("field", ["transformers", "generators", "validators"])
def test_inline_plugin_configurations_are_checked(tmp_path: Path, field: str) -> None:
    app = write_kustomization(tmp_path, {field: [PATCH_TRANSFORMER.replace("PATH", "HTTP://127.0.0.1:9/x")]})
    with pytest.raises(RemoteBaseRefused, match=re.escape("'app/kustomization.yaml' PatchTransformer path 'HTTP://")):
        check_references(tmp_path, app, no_remote_bases=True)
    app = write_kustomization(tmp_path, {field: [PATCH_TRANSFORMER.replace("PATH", "../../x.yaml")]})
    with pytest.raises(UnsafeReference, match=re.escape("PatchTransformer path '../../x.yaml' points outside")):
        check_references(tmp_path, app, no_remote_bases=False)


@pytest.mark.parametrize(
    "config",
    [
        PATCH_TRANSFORMER.replace("PATH", "https://127.0.0.1:9/x"),
        "kind: ConfigMapGenerator\nmetadata: {name: c}\nfiles: [k=https://127.0.0.1:9/x]\n",
        "kind: SecretGenerator\nmetadata: {name: c}\nenvs: [https://127.0.0.1:9/x]\n",
        "kind: PatchStrategicMergeTransformer\nmetadata: {name: c}\npaths: [https://127.0.0.1:9/x]\n",
        "kind: ReplacementTransformer\nmetadata: {name: c}\nreplacements: [{path: https://127.0.0.1:9/x}]\n",
        "kind: HelmChartInflationGenerator\nmetadata: {name: c}\nrepo: https://127.0.0.1:9/charts\n",
        "apiVersion: v1\nkind: List\nitems:\n- "
        + PATCH_TRANSFORMER.replace("PATH", "https://127.0.0.1:9/x").replace("\n", "\n  "),
    ],
)
def test_plugin_configuration_files_are_checked(tmp_path: Path, config: str) -> None:
    write(tmp_path, {"app/cfg.yaml": config})
    app = write_kustomization(tmp_path, {"transformers": ["cfg.yaml"]})
    with pytest.raises(RemoteBaseRefused, match=re.escape("'app/cfg.yaml' ")):
        check_references(tmp_path, app, no_remote_bases=True)


def test_a_directory_of_configurations_may_only_list_resources(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app/cfg/kustomization.yaml": "resources: [t.yaml]\n",
            "app/cfg/t.yaml": PATCH_TRANSFORMER.replace("PATH", "patch.yaml"),
            "app/patch.yaml": "a: b\n",
        },
    )
    app = write_kustomization(tmp_path, {"transformers": ["cfg"]})
    check_references(tmp_path, app, no_remote_bases=True)
    # a patch would turn the checked path into any URL after the check: refused in every mode
    (app / "cfg/kustomization.yaml").write_text(
        "resources: [t.yaml]\npatches:\n- target: {kind: PatchTransformer}\n"
        '  patch: \'[{"op": "replace", "path": "/path", "value": "http://127.0.0.1:9/x"}]\'\n'
    )
    for no_remote_bases in (True, False):
        with pytest.raises(
            UnsafeReference, match=re.escape("'app/cfg/kustomization.yaml' is listed as plugin configurations")
        ):
            check_references(tmp_path, app, no_remote_bases=no_remote_bases)


def test_configurations_in_a_directory_are_checked_against_the_listing_kustomization(tmp_path: Path) -> None:
    # kustomize resolves a configuration's path against the kustomization that lists the directory
    write(
        tmp_path,
        {
            "a/app/cfg/kustomization.yaml": "resources: [t.yaml]\n",
            "a/app/cfg/t.yaml": PATCH_TRANSFORMER.replace("PATH", "../../../x.yaml"),
        },
    )
    app = write_kustomization(tmp_path, {"transformers": ["cfg"]}, where="a/app")
    with pytest.raises(
        UnsafeReference, match=re.escape("'a/app/cfg/t.yaml' PatchTransformer path '../../../x.yaml' points out")
    ):
        check_references(tmp_path, app, no_remote_bases=False)
    # the same path read against the directory of the configuration would have stayed inside
    write(tmp_path, {"a/app/cfg/t.yaml": PATCH_TRANSFORMER.replace("PATH", "../../x.yaml")})
    check_references(tmp_path, app, no_remote_bases=False)


def test_a_transformer_config_file_that_is_not_yaml_fails_the_build(tmp_path: Path) -> None:
    write(tmp_path, {"app/cfg.yaml": "a: [unclosed\n"})
    app = write_kustomization(tmp_path, {"transformers": ["cfg.yaml"]})
    with pytest.raises(BuildFailed, match=re.escape("failed to read plugin configuration 'app/cfg.yaml'")):
        check_references(tmp_path, app, no_remote_bases=False)
