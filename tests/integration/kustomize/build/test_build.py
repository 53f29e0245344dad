"""The build pipeline with the real kustomize binary: overlays, generation, Flux's spec fields, bad input."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from kustomize_controller.build import (
    InvalidManifest,
    KustomizeFailed,
    PathNotFound,
    RemoteBaseRefused,
    UnsafeReference,
    build,
)
from kustomize_controller.build.errors import BuildFailed
from tests.integration.kustomize.build.conftest import Binaries, snapshot, write_tree

pytestmark = [pytest.mark.timeout(120)]

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        envFrom:
        - configMapRef: {name: web-config}
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80}]
"""


def cm(name: str, **data: str) -> str:
    lines = "".join(f"  {k}: {v!r}\n" for k, v in data.items())
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n{lines}"


async def run(tree: Path, spec: dict[str, Any], binaries: Binaries, **overrides: Any) -> list[dict[str, Any]]:
    kwargs: dict[str, Any] = {
        "kustomize": binaries.kustomize,
        "sops": binaries.sops,
        "kube": None,
        "namespace": "flux-system",
        "no_remote_bases": True,
        "timeout": 60.0,
    }
    kwargs.update(overrides)
    return await build(tree, spec, **kwargs)


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A base with two overlays, as Flux users lay a repository out."""
    return write_tree(
        tmp_path / "repo",
        {
            "apps/base/deployment.yaml": DEPLOYMENT,
            "apps/base/service.yaml": SERVICE,
            "apps/base/kustomization.yaml": (
                "resources: [deployment.yaml, service.yaml]\n"
                "configMapGenerator:\n- name: web-config\n  literals: [MODE=base]\n"
            ),
            "apps/production/kustomization.yaml": (
                "resources: [../base]\n"
                "namePrefix: prod-\n"
                "images:\n- name: nginx\n  newTag: '1.26'\n"
                "patches:\n- path: replicas.yaml\n"
                "configMapGenerator:\n- name: web-config\n  behavior: merge\n  literals: [MODE=production]\n"
            ),
            "apps/production/replicas.yaml": (
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n"
            ),
        },
    )


async def test_base_and_overlay(repo: Path, binaries: Binaries) -> None:
    before = snapshot(repo)
    objects = await run(repo, {"path": "./apps/production"}, binaries)
    kinds = by_kind(objects)
    assert set(kinds) == {"ConfigMap", "Deployment", "Service"}
    deployment = kinds["Deployment"]
    config = kinds["ConfigMap"]
    assert deployment["metadata"]["name"] == "prod-web"
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert config["data"] == {"MODE": "production"}
    assert re.fullmatch(r"prod-web-config-[a-z0-9]{10}", config["metadata"]["name"])
    # the generated name reached the reference: kustomize ran as one build, not per file
    env_from = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]
    assert env_from["configMapRef"]["name"] == config["metadata"]["name"]
    assert snapshot(repo) == before, "the shared tree was not written"


async def test_spec_overlays_as_flux(repo: Path, binaries: Binaries) -> None:
    spec = {
        "path": "apps/production",
        "targetNamespace": "shop",
        "namePrefix": "eu-",
        "nameSuffix": "-v2",
        "images": [{"name": "nginx", "newName": "registry.local/nginx", "digest": "sha256:" + "b" * 64}],
        "patches": [
            {
                "patch": "- op: add\n  path: /metadata/annotations\n  value: {patched: 'yes'}\n",
                "target": {"kind": "Service"},
            },
            {"patch": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 5\n"},
        ],
        "commonMetadata": {"labels": {"team": "shop", "app": "overridden"}, "annotations": {"owner": "ops"}},
    }
    kinds = by_kind(await run(repo, spec, binaries))
    deployment, service = kinds["Deployment"], kinds["Service"]
    # namePrefix replaces the overlay's own prefix rather than stacking on it, as Flux writes it in
    assert deployment["metadata"]["name"] == "eu-web-v2"
    assert {o["metadata"]["namespace"] for o in kinds.values()} == {"shop"}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.local/nginx@sha256:" + "b" * 64
    assert deployment["spec"]["replicas"] == 5
    assert service["metadata"]["annotations"]["patched"] == "yes"
    # commonMetadata: metadata only, keys replaced, selectors and templates untouched
    assert deployment["metadata"]["labels"] == {"app": "overridden", "team": "shop"}
    assert deployment["metadata"]["annotations"] == {"owner": "ops"}
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "web"}


async def test_plain_directory_without_kustomization(tmp_path: Path, binaries: Binaries) -> None:
    tree = write_tree(
        tmp_path / "repo",
        {
            "deploy/b.yaml": cm("b", x="1"),
            "deploy/a.yml": cm("a") + "---\n" + cm("a2"),
            "deploy/nested/deeper/c.yaml": cm("c"),
            "deploy/bundle/kustomization.yaml": "resources: [d.yaml]\nnameSuffix: -bundled\n",
            "deploy/bundle/d.yaml": cm("d"),
            "deploy/README.md": "# not a manifest",
            "deploy/values.json": '{"not": "listed"}',
        },
    )
    before = snapshot(tree)
    objects = await run(tree, {"path": "deploy", "targetNamespace": "plain"}, binaries)
    assert sorted(o["metadata"]["name"] for o in objects) == ["a", "a2", "b", "c", "d-bundled"]
    assert {o["metadata"]["namespace"] for o in objects} == {"plain"}
    assert snapshot(tree) == before


async def test_root_path_and_empty_directory(tmp_path: Path, binaries: Binaries) -> None:
    tree = write_tree(tmp_path / "repo", {"one.yaml": cm("one"), "empty/.keep": ""})
    assert [o["metadata"]["name"] for o in await run(tree, {}, binaries)] == ["one"]
    assert await run(tree, {"path": "empty"}, binaries) == []


async def test_malformed_yaml_in_a_plain_directory_names_the_file(tmp_path: Path, binaries: Binaries) -> None:
    tree = write_tree(
        tmp_path / "repo",
        {"deploy/ok.yaml": cm("ok"), "deploy/team/broken.yaml": "apiVersion: v1\nkind: ConfigMap\n  bad: [\n"},
    )
    with pytest.raises(
        InvalidManifest, match=re.escape("failed to decode Kubernetes YAML from 'deploy/team/broken.yaml'")
    ):
        await run(tree, {"path": "deploy"}, binaries)


async def test_malformed_yaml_behind_a_kustomization_names_the_file(tmp_path: Path, binaries: Binaries) -> None:
    tree = write_tree(
        tmp_path / "repo",
        {
            "app/kustomization.yaml": "resources: [broken.yaml]\n",
            "app/broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n data: [\n",
        },
    )
    with pytest.raises(KustomizeFailed) as info:
        await run(tree, {"path": "app"}, binaries)
    message = str(info.value)
    assert "kustomize build failed for 'app'" in message
    assert "broken.yaml" in message
    assert "MalformedYAMLError" in message
    assert str(tmp_path) not in message


async def test_missing_resource_names_the_file_relative_to_the_artifact(tmp_path: Path, binaries: Binaries) -> None:
    work = tmp_path / "work"
    work.mkdir()
    tree = write_tree(
        tmp_path / "repo",
        {"app/kustomization.yaml": "resources: [present.yaml, missing.yaml]\n", "app/present.yaml": cm("p")},
    )
    with pytest.raises(KustomizeFailed) as info:
        await run(tree, {"path": "app"}, binaries, work_root=work)
    message = str(info.value)
    assert "'app/missing.yaml'" in message
    assert "kustomization-" not in message, "the temporary work tree is not shown"
    assert list(work.iterdir()) == [], "the work tree is removed after a failure"


async def test_file_outside_the_kustomization_root_is_refused_by_kustomize(tmp_path: Path, binaries: Binaries) -> None:
    tree = write_tree(
        tmp_path / "repo",
        {"shared/cm.yaml": cm("shared"), "app/kustomization.yaml": "resources: [../shared/cm.yaml]\n"},
    )
    with pytest.raises(KustomizeFailed, match=re.escape("file 'shared/cm.yaml' is not in or below 'app'")):
        await run(tree, {"path": "app"}, binaries)


async def test_remote_base_refused(tmp_path: Path, binaries: Binaries) -> None:
    tree = write_tree(
        tmp_path / "repo",
        {
            "app/kustomization.yaml": "resources:\n- ../base\n",
            "base/kustomization.yaml": "resources:\n- github.com/stefanprodan/podinfo//kustomize?ref=6.0.0\n",
        },
    )
    with pytest.raises(
        RemoteBaseRefused, match=re.escape("'base/kustomization.yaml' resources 'github.com/stefanprodan")
    ):
        await run(tree, {"path": "app"}, binaries, no_remote_bases=True)


async def test_base_outside_the_artifact_refused(tmp_path: Path, binaries: Binaries) -> None:
    write_tree(tmp_path / "outside", {"kustomization.yaml": "resources: [cm.yaml]\n", "cm.yaml": cm("stolen")})
    tree = write_tree(tmp_path / "repo", {"app/kustomization.yaml": f"resources: ['{tmp_path}/outside']\n"})
    with pytest.raises(UnsafeReference, match="points outside the source artifact"):
        await run(tree, {"path": "app"}, binaries, no_remote_bases=False)


async def test_spec_path_not_found(tmp_path: Path, binaries: Binaries) -> None:
    tree = write_tree(tmp_path / "repo", {"app/kustomization.yaml": "resources: []\n"})
    with pytest.raises(PathNotFound, match="kustomization path not found: 'nope'"):
        await run(tree, {"path": "../nope"}, binaries)


async def test_components(tmp_path: Path, binaries: Binaries) -> None:
    tree = write_tree(
        tmp_path / "repo",
        {
            "app/kustomization.yaml": "resources: [cm.yaml]\n",
            "app/cm.yaml": cm("app", a="1"),
            "components/extra/kustomization.yaml": (
                "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
                "patches:\n- patch: |\n    apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: app}\n"
                "    data: {b: '2'}\n"
            ),
        },
    )
    spec = {"path": "app", "components": ["../components/extra", "../components/gone"], "ignoreMissingComponents": True}
    objects = await run(tree, spec, binaries)
    assert objects[0]["data"] == {"a": "1", "b": "2"}
    spec["ignoreMissingComponents"] = False
    with pytest.raises(KustomizeFailed, match="components/gone"):
        await run(tree, spec, binaries)


@pytest.mark.parametrize("timeout", [0.001, 0.02, 0.05])
async def test_timeout_stops_the_build_and_cleans_up(
    repo: Path, binaries: Binaries, tmp_path: Path, timeout: float
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    # a base the size of a real repository, so the deadline lands in copying, generating or kustomize
    extra = {f"apps/big/cm{i}.yaml": cm(f"extra{i}") for i in range(300)}
    write_tree(repo, extra)
    with pytest.raises(BuildFailed, match=f"timed out after {timeout:g}s") as info:
        await run(repo, {"path": "apps/big"}, binaries, timeout=timeout, work_root=work)
    assert info.value.retry_after is None  # the runner retries it at the Kustomization's retryInterval
    assert info.value.reason == "BuildFailed"
    assert list(work.iterdir()) == [], "the work tree is removed whatever step the deadline hit"


async def test_concurrent_builds_of_one_tree(repo: Path, binaries: Binaries) -> None:
    before = snapshot(repo)
    specs = [{"path": "apps/production", "targetNamespace": f"ns{i}"} for i in range(16)]
    results = await asyncio.gather(*(run(repo, spec, binaries) for spec in specs))
    for i, objects in enumerate(results):
        assert {o["metadata"]["namespace"] for o in objects} == {f"ns{i}"}
    assert snapshot(repo) == before
