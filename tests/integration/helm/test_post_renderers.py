"""Post-renderers with the real helm 4 and kustomize on the stack: our plugin through HelmActions, then the controller.

The first test runs ``helm install``/``upgrade --post-renderer`` as the controller does (HelmActions); the second
runs source- and helm-controller as processes (the fixtures of test_helmrelease.py) and edits a HelmRelease's
postRenderers: the live Deployment follows, through an upgrade.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh_dev.chartrepo import PODINFO_CHART, ChartRepo
from helm_controller import post_renderers
from helm_controller.actions import ActionRequest, HelmActionFailed, HelmActions, KubeAccess
from helm_controller.post_renderers import PostRender, post_render_of
from tests.integration.helm.test_helmrelease import HR, SRC, Running, condition, until
from tests.integration.helm.test_helmrelease import repo as repo
from tests.integration.helm.test_helmrelease import running as running

REPLICAS_PATCH = "- op: replace\n  path: /spec/replicas\n  value: 3\n"
SPEC: dict[str, Any] = {
    "postRenderers": [
        {
            "kustomize": {
                "patches": [{"target": {"kind": "Deployment"}, "patch": REPLICAS_PATCH}],
                "images": [
                    {"name": "ghcr.io/stefanprodan/podinfo", "newName": "registry.example/podinfo", "newTag": "9.9.9"}
                ],
            }
        }
    ],
    "commonMetadata": {"labels": {"team": "blue"}, "annotations": {"gitops-mesh.test/owner": "helmpost"}},
}


@pytest.fixture(autouse=True)
def kustomize_for_the_controller(stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """helm-controller finds kustomize as $KUSTOMIZE (gitops_mesh_dev.mesh passes it no --kustomize-path);
    autouse, so it is in the environment before the controller processes start."""
    monkeypatch.setenv("KUSTOMIZE", stack_env["KUSTOMIZE"])


def _request(namespace: str, kube: KubeClient, kubeconfig: str, post: PostRender | None) -> ActionRequest:
    return ActionRequest(
        release_name="web",
        target_namespace=namespace,
        storage_namespace=namespace,
        chart_path=PODINFO_CHART,
        values={},
        timeout=60,
        max_history=5,
        kube=KubeAccess(Path(kubeconfig), client=kube),
        post_render=post,
    )


async def test_helm_runs_our_post_renderer_with_the_real_kustomize(
    stack_env: dict[str, str], kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    actions = HelmActions(stack_env["HELM"], tmp_path / "work", kustomize=stack_env["KUSTOMIZE"])
    installed = await actions.install(
        _request(namespace, kube, stack_env["KUBECONFIG"], post_render_of(SPEC, namespace=namespace, name="web"))
    )
    assert (installed.version, installed.status) == (1, "deployed")

    deployment = await kube.get("apps/v1", "Deployment", "web-podinfo", namespace=namespace)
    assert deployment["spec"]["replicas"] == 3  # the JSON6902 patch
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example/podinfo:9.9.9"  # images
    service = await kube.get("v1", "Service", "web-podinfo", namespace=namespace)
    for obj in (deployment, service):  # commonMetadata on every object's own metadata, nothing else
        assert obj["metadata"]["labels"]["team"] == "blue"
        assert obj["metadata"]["annotations"]["gitops-mesh.test/owner"] == "helmpost"
        assert "postrenderer.helm.sh/postrender-filename" not in obj["metadata"]["annotations"]
        # Flux's origin labels, after commonMetadata
        assert obj["metadata"]["labels"]["helm.toolkit.fluxcd.io/name"] == "web"
        assert obj["metadata"]["labels"]["helm.toolkit.fluxcd.io/namespace"] == namespace
    assert "team" not in deployment["spec"]["selector"]["matchLabels"]
    assert "team" not in deployment["spec"]["template"]["metadata"]["labels"]

    # A strategic-merge patch replaces the JSON6902 one on upgrade; the release's stored manifest agrees.
    smp = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-podinfo\nspec:\n  replicas: 5\n"
    upgraded = await actions.upgrade(
        _request(
            namespace,
            kube,
            stack_env["KUBECONFIG"],
            post_render_of(
                {"postRenderers": [{"kustomize": {"patches": [{"patch": smp}]}}]}, namespace=namespace, name="web"
            ),
        )
    )
    assert upgraded.version == 2
    deployment = await kube.get("apps/v1", "Deployment", "web-podinfo", namespace=namespace)
    assert deployment["spec"]["replicas"] == 5
    assert "team" not in (deployment["metadata"].get("labels") or {})

    # A patch kustomize refuses: the action fails with kustomize's own words, nothing new deployed.
    bad = {
        "postRenderers": [
            {"kustomize": {"patches": [{"target": {"kind": "Deployment"}, "patch": "- op: jump\n  path: /x\n"}]}}
        ]
    }
    with pytest.raises(HelmActionFailed) as failed:
        await actions.upgrade(
            _request(namespace, kube, stack_env["KUBECONFIG"], post_render_of(bad, namespace=namespace, name="web"))
        )
    assert failed.value.reason == "UpgradeFailed"
    assert post_renderers.PLUGIN_NAME in failed.value.message
    assert "kustomize:" in failed.value.message
    assert "jump" in failed.value.message

    # Without kustomize configured, a release asking for post-rendering fails and says why.
    bare = HelmActions(stack_env["HELM"], tmp_path / "bare")
    with pytest.raises(HelmActionFailed, match="post-renderers need kustomize"):
        await bare.upgrade(
            _request(namespace, kube, stack_env["KUBECONFIG"], post_render_of(SPEC, namespace=namespace, name="web"))
        )


async def test_a_helmrelease_with_post_renderers_and_a_changed_patch(
    kube: KubeClient, namespace: str, repo: ChartRepo, running: Running
) -> None:
    run = running
    await kube.create(
        {
            "apiVersion": SRC,
            "kind": "HelmRepository",
            "metadata": {"name": "charts", "namespace": namespace},
            "spec": {"url": repo.url, "interval": "10m"},
        }
    )
    await kube.create(
        {
            "apiVersion": HR,
            "kind": "HelmRelease",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "interval": "10m",
                "timeout": "1m",
                "chart": {
                    "spec": {
                        "chart": "podinfo",
                        "version": "1.0.0",
                        "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                        "interval": "10m",
                    }
                },
                **SPEC,
            },
        }
    )

    async def hr_when(check: Callable[[KubeObject], bool]) -> KubeObject | None:
        obj = await kube.get(HR, "HelmRelease", "web", namespace=namespace)
        return obj if check(obj) else None

    def ready_at_generation(o: KubeObject) -> bool:
        return (
            condition(o, "Ready").get("status") == "True"
            and o["status"].get("observedGeneration") == o["metadata"]["generation"]
        )

    obj = await until(run, "installed and Ready", lambda: hr_when(ready_at_generation))
    status = obj["status"]
    assert status["observedPostRenderersDigest"] == post_renderers.post_renderers_digest(obj["spec"])
    assert status["observedCommonMetadataDigest"] == post_renderers.common_metadata_digest(obj["spec"])
    deployment = await kube.get("apps/v1", "Deployment", "web-podinfo", namespace=namespace)
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/podinfo:9.9.9"
    assert deployment["metadata"]["labels"]["team"] == "blue"
    service = await kube.get("v1", "Service", "web-podinfo", namespace=namespace)
    assert service["metadata"]["labels"]["team"] == "blue"

    # Only the patch changes (same chart, same values): the new post-renderers digest makes it an upgrade.
    changed = [
        {
            "kustomize": {
                **SPEC["postRenderers"][0]["kustomize"],
                "patches": [{"target": {"kind": "Deployment"}, "patch": REPLICAS_PATCH.replace("3", "4")}],
            }
        }
    ]
    await kube.patch(HR, "HelmRelease", "web", {"spec": {"postRenderers": changed}}, namespace=namespace)

    def upgraded(o: KubeObject) -> bool:
        return condition(o, "Released").get("reason") == "UpgradeSucceeded" and ready_at_generation(o)

    obj = await until(run, "upgraded for the new patch", lambda: hr_when(upgraded))
    assert [h["version"] for h in obj["status"]["history"]] == [2, 1]
    assert obj["status"]["history"][0]["configDigest"] == obj["status"]["history"][1]["configDigest"]
    assert obj["status"]["observedPostRenderersDigest"] == post_renderers.post_renderers_digest(obj["spec"])
    assert obj["status"]["observedPostRenderersDigest"] != status["observedPostRenderersDigest"]
    deployment = await kube.get("apps/v1", "Deployment", "web-podinfo", namespace=namespace)
    assert deployment["spec"]["replicas"] == 4


async def test_origin_labels_alone_need_no_kustomize(
    stack_env: dict[str, str], kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    actions = HelmActions(stack_env["HELM"], tmp_path / "work")  # no kustomize binary at all
    installed = await actions.install(
        _request(namespace, kube, stack_env["KUBECONFIG"], post_render_of({}, namespace=namespace, name="web"))
    )
    assert (installed.version, installed.status) == (1, "deployed")
    for kind, api in (("Deployment", "apps/v1"), ("Service", "v1")):
        obj = await kube.get(api, kind, "web-podinfo", namespace=namespace)
        labels = obj["metadata"]["labels"]
        assert labels["helm.toolkit.fluxcd.io/name"] == "web"
        assert labels["helm.toolkit.fluxcd.io/namespace"] == namespace
        assert labels["app.kubernetes.io/managed-by"] == "Helm"  # the chart's own labels kept
        assert "postrenderer.helm.sh/postrender-filename" not in (obj["metadata"].get("annotations") or {})
    # helm's stored manifest is the labelled one, as `helm get manifest` shows it
    for doc in installed.manifest_documents():
        assert doc["metadata"]["labels"]["helm.toolkit.fluxcd.io/name"] == "web"
