"""postRenderers / commonMetadata as kustomizations, Flux's digests, the out-of-sync rule and the plugin's splitting."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from gitops_mesh.errors import InvalidSpec
from helm_controller import post_renderers as pr
from helm_controller.action_requests import action_request
from helm_controller.actions import KubeAccess, install_args
from helm_controller.helmrelease_plan import post_render_changed
from helm_controller.postrender import is_hook, join_documents, split_documents

PATCH = "- op: replace\n  path: /spec/replicas\n  value: 3\n"
SPEC: dict[str, Any] = {
    "postRenderers": [
        {
            "kustomize": {
                "patches": [{"target": {"kind": "Deployment", "name": "web"}, "patch": PATCH}],
                "images": [{"name": "nginx", "newTag": "1.2", "newName": "example.org/nginx"}],
            }
        }
    ],
    "commonMetadata": {"labels": {"team": "blue", "env": "prod"}, "annotations": {"owner": "a<b>&c"}},
}


def test_each_post_renderer_is_one_kustomization_over_the_rendered_manifests() -> None:
    post = pr.post_render_of(SPEC, namespace="apps", name="podinfo")
    assert post is not None
    first, meta = post.kustomizations
    assert first == {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["helm-output.yaml"],
        "images": [{"name": "nginx", "newName": "example.org/nginx", "newTag": "1.2"}],
        "patches": [{"patch": PATCH, "target": {"kind": "Deployment", "name": "web"}}],
    }
    # commonMetadata comes last, as transformers confined to the objects' own metadata
    labels, annotations = (json.loads(t) for t in meta["transformers"])
    assert labels["kind"] == "LabelTransformer"
    assert labels["labels"] == {"team": "blue", "env": "prod"}
    assert labels["fieldSpecs"] == [{"path": "metadata/labels", "create": True}]
    assert annotations["kind"] == "AnnotationsTransformer"
    assert annotations["fieldSpecs"] == [{"path": "metadata/annotations", "create": True}]
    assert post.strategy is pr.Strategy.COMBINED


def test_tenant_strings_stay_data_and_unknown_keys_do_not_reach_kustomize() -> None:
    hostile = "x\nresources:\n- https://evil.example/base\n"
    spec = {
        "postRenderers": [
            {"kustomize": {"images": [{"name": hostile, "newTag": "1"}], "resources": ["https://evil.example"]}}
        ]
    }
    post = pr.post_render_of(spec, namespace="apps", name="podinfo")
    assert post is not None
    (kus,) = post.kustomizations
    assert kus["resources"] == ["helm-output.yaml"]
    assert kus["images"] == [{"name": hostile, "newTag": "1"}]
    assert set(kus) == {"apiVersion", "kind", "resources", "images"}


def test_without_steps_the_plugin_still_sets_fluxs_origin_labels() -> None:
    specs: tuple[dict[str, Any], ...] = ({}, {"postRenderers": [{"kustomize": {}}], "commonMetadata": {}})
    for spec in specs:
        post = pr.post_render_of(spec, namespace="apps", name="podinfo")
        assert post.kustomizations == ()
        assert post.labels == {"helm.toolkit.fluxcd.io/name": "podinfo", "helm.toolkit.fluxcd.io/namespace": "apps"}
        request = pr.request_document(post, kustomize=None, deadline=1.0)
        assert request["labels"] == dict(post.labels)
        assert request["kustomize"] is None


def test_bad_shapes_and_sizes_are_invalid_specs() -> None:
    with pytest.raises(InvalidSpec, match="postRenderers must be a list"):
        pr.post_render_of({"postRenderers": {"kustomize": {}}}, namespace="apps", name="podinfo")
    with pytest.raises(InvalidSpec, match=r"postRenderers\[0\].kustomize.patches\[0\].patch must be a string"):
        pr.post_render_of(
            {"postRenderers": [{"kustomize": {"patches": [{"patch": 3}]}}]}, namespace="apps", name="podinfo"
        )
    with pytest.raises(InvalidSpec, match="more than 32"):
        pr.post_render_of({"postRenderers": [{"kustomize": {}}] * 33}, namespace="apps", name="podinfo")
    with pytest.raises(InvalidSpec, match="larger than"):
        pr.post_render_of(
            {"commonMetadata": {"labels": {"a": "x" * (pr.MAX_SPEC_BYTES + 1)}}}, namespace="apps", name="podinfo"
        )
    with pytest.raises(InvalidSpec, match="postRenderStrategy 'later'"):
        pr.post_render_of({**SPEC, "postRenderStrategy": "later"}, namespace="apps", name="podinfo")


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_digests_are_sha256_of_go_json_encoder_output() -> None:
    # Go's Encoder: struct field order (patch before target; name, newName, newTag, digest), omitempty,
    # HTML escaped, one trailing newline; maps (labels, annotations) sorted.
    patch = json.dumps(PATCH)
    expected = (
        '[{"kustomize":{"patches":[{"patch":' + patch + ',"target":{"kind":"Deployment","name":"web"}}],'
        '"images":[{"name":"nginx","newName":"example.org/nginx","newTag":"1.2"}]}}]\n'
    )
    assert pr.post_renderers_digest(SPEC) == _sha(expected)
    meta = '{"annotations":{"owner":"a\\u003cb\\u003e\\u0026c"},"labels":{"env":"prod","team":"blue"}}\n'
    assert pr.common_metadata_digest(SPEC) == _sha(meta)
    # absent: no digest; present but empty: Go's non-nil empty slice
    assert pr.post_renderers_digest({}) == ""
    assert pr.post_renderers_digest({"postRenderers": []}) == _sha("[]\n")
    assert pr.post_renderers_digest({"postRenderers": [{}]}) == _sha("[{}]\n")
    # a target given empty is a non-nil pointer: kept
    empty_target = {"postRenderers": [{"kustomize": {"patches": [{"patch": "p", "target": {}}]}}]}
    assert pr.post_renderers_digest(empty_target) == _sha('[{"kustomize":{"patches":[{"patch":"p","target":{}}]}}]\n')


def test_observed_digests_follow_the_spec() -> None:
    status: dict[str, Any] = {"observedCommonMetadataDigest": "sha256:old"}
    pr.stamp_observed(status, {"postRenderers": SPEC["postRenderers"]})
    assert status == {"observedPostRenderersDigest": pr.post_renderers_digest(SPEC)}


def _hr(spec: dict[str, Any], status: dict[str, Any], generation: int = 2) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "apps", "generation": generation}, "spec": spec, "status": status}


def test_a_new_generation_with_other_post_renderers_is_out_of_sync() -> None:
    observed = {"observedGeneration": 1}
    pr.stamp_observed(observed, SPEC)
    assert post_render_changed(_hr(SPEC, observed)) is None  # another field changed
    changed = {**SPEC, "postRenderers": [{"kustomize": {"images": [{"name": "nginx", "newTag": "2"}]}}]}
    assert post_render_changed(_hr(changed, observed)) == "postrenderers digest has changed"
    assert post_render_changed(_hr({**SPEC, "commonMetadata": {}}, observed)) == "common metadata digest has changed"
    # the same generation as observed: Flux does not look (a failed upgrade is retried as Failed instead)
    assert post_render_changed(_hr(changed, {**observed, "observedGeneration": 2})) is None
    # a release made before post-renderers were set
    assert post_render_changed(_hr(SPEC, {"observedGeneration": 1})) == "postrenderers digest has changed"


def test_install_and_upgrade_name_our_plugin_and_other_actions_do_not() -> None:
    obj = _hr(SPEC, {})
    access = KubeAccess(kubeconfig=Path("/k"))
    install = action_request(obj, "install", kube=access)
    assert install.post_render == pr.post_render_of(SPEC, namespace="apps", name="web")
    args = install_args(install, Path("/v.yaml"))
    assert args[args.index("--post-renderer") + 1] == pr.PLUGIN_NAME
    assert action_request(obj, "rollback", kube=access).post_render is None
    # Without postRenderers the plugin still runs: Flux's origin labels go on every release.
    bare = install_args(action_request(_hr({}, {}), "install", kube=access), Path("/v.yaml"))
    assert bare[bare.index("--post-renderer") + 1] == pr.PLUGIN_NAME


def test_plugin_manifest_is_helm4_postrenderer_running_our_module() -> None:
    manifest = pr.plugin_manifest("/venv/bin/python")
    assert manifest["type"] == "postrenderer/v1"
    assert manifest["apiVersion"] == "v1"
    assert manifest["runtime"] == "subprocess"
    assert manifest["runtimeConfig"]["platformCommand"] == [
        {"command": "/venv/bin/python", "args": ["-P", "-m", "helm_controller.postrender"]}
    ]


def test_the_plugin_splits_hooks_from_templates() -> None:
    stream = (
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n"
        b"apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: h\n  annotations:\n    helm.sh/hook: pre-install\n"
        b"---\n\n"
    )
    docs = split_documents(stream)
    assert len(docs) == 2
    assert [is_hook(d) for d in docs] == [False, True]
    assert [d.strip() for d in split_documents(join_documents(docs))] == [d.strip() for d in docs]
