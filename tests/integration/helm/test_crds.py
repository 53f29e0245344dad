"""A chart's crds/ as Flux applies them (before helm, by install.crds / upgrade.crds, with origin labels), then a
release whose templates use the new kind at once — on the direct install and on helm's own upgrade."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gitops_mesh import commands
from gitops_mesh.errors import NotFound
from gitops_mesh.helmcli import helm_env
from gitops_mesh.kube import KubeClient
from helm_controller.actions import ActionRequest, CRDsPolicy, HelmActions, KubeAccess
from helm_controller.post_renderers import PostRender

ORIGIN = {"helm.toolkit.fluxcd.io/name": "widgets", "helm.toolkit.fluxcd.io/namespace": "team-a"}


def crd(group: str, column: str) -> str:
    return f"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
    - name: v1
      served: true
      storage: true
      additionalPrinterColumns: [{{name: {column}, type: string, jsonPath: .spec.size}}]
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {{type: object, properties: {{size: {{type: string}}}}}}
"""


async def package(stack_env: dict[str, str], tmp_path: Path, group: str, column: str, version: str) -> Path:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    chart = tmp_path / f"widgets-{version}"
    (chart / "crds").mkdir(parents=True)
    (chart / "templates").mkdir()
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: widgets\nversion: {version}\n")
    (chart / "crds" / "widgets.yaml").write_text(crd(group, column))
    (chart / "templates" / "widget.yaml").write_text(
        f"apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: {{{{ .Release.Name }}}}\nspec:\n  size: large\n"
    )
    argv = [stack_env["HELM"], "package", str(chart), "-d", str(tmp_path)]
    done = await commands.run(argv, env=helm_env(home), timeout=60)
    return Path(done.stdout.decode().strip().rsplit(": ", 1)[1])


async def printer_column(kube: KubeClient, group: str) -> str:
    live = await kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"widgets.{group}")
    return str(live["spec"]["versions"][0]["additionalPrinterColumns"][0]["name"])


@pytest.fixture
async def group(kube: KubeClient, unique: str) -> AsyncIterator[str]:
    """A CRD group of this test's own (CRDs are cluster-wide), its CRD deleted afterwards."""
    name = f"{unique}.example.com"
    yield name
    with contextlib.suppress(NotFound):
        await kube.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"widgets.{name}")


async def test_crds_applied_as_flux_does(
    stack_env: dict[str, str], kube: KubeClient, namespace: str, tmp_path: Path, group: str
) -> None:
    v1 = await package(stack_env, tmp_path, group, "Size", "1.0.0")
    v2 = await package(stack_env, tmp_path, group, "Bigness", "1.0.1")
    run = HelmActions(stack_env["HELM"], tmp_path / "work")
    req = ActionRequest(
        release_name="widgets",
        target_namespace=namespace,
        storage_namespace=namespace,
        chart_path=v1,
        values={},
        timeout=60,
        max_history=5,
        kube=KubeAccess(Path(stack_env["KUBECONFIG"]), client=kube, server_validates_fields=True),
        post_render=PostRender((), labels=ORIGIN),
    )
    # install.crds defaults to Create: the CRD is applied first, with Flux's origin labels, and the release's own
    # Widget (a kind that did not exist a moment before) is applied by the direct install.
    installed = await run.install(req)
    assert (installed.version, installed.status) == (1, "deployed")
    assert run.installs == {"direct": 1}
    live = await kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"widgets.{group}")
    assert {k: live["metadata"]["labels"][k] for k in ORIGIN} == ORIGIN
    widget = await kube.get(f"{group}/v1", "Widget", "widgets", namespace=namespace)
    assert widget["spec"] == {"size": "large"}
    # upgrade.crds defaults to Skip: a changed CRD in the chart is left alone.
    upgraded = await run.upgrade(dataclasses.replace(req, chart_path=v2))
    assert upgraded.version == 2
    assert await printer_column(kube, group) == "Size"
    # CreateReplace: the chart's CRD replaces the cluster's.
    upgraded = await run.upgrade(dataclasses.replace(req, chart_path=v2, crds=CRDsPolicy.CREATE_REPLACE))
    assert upgraded.version == 3
    assert await printer_column(kube, group) == "Bigness"


async def test_skip_leaves_the_crds_to_nobody(
    stack_env: dict[str, str], kube: KubeClient, namespace: str, tmp_path: Path, group: str
) -> None:
    chart = await package(stack_env, tmp_path, group, "Size", "1.0.0")
    run = HelmActions(stack_env["HELM"], tmp_path / "work")
    req = ActionRequest(
        release_name="widgets",
        target_namespace=namespace,
        storage_namespace=namespace,
        chart_path=chart,
        values={},
        timeout=60,
        max_history=5,
        kube=KubeAccess(Path(stack_env["KUBECONFIG"]), client=kube, server_validates_fields=True),
        crds=CRDsPolicy.SKIP,
    )
    # Without the CRD the Widget has no kind: the install fails in helm's words, and no CRD was created.
    with pytest.raises(Exception, match="Widget"):
        await run.install(req)
    with pytest.raises(NotFound):
        await kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"widgets.{group}")
