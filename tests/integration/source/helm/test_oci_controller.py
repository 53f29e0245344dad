"""OCI HelmRepository and HelmChart end to end through the real source-controller process: charts pushed with the
real ``helm push`` to a distribution registry with TLS and basic auth, followed as new tags are pushed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from gitops_mesh import commands
from gitops_mesh.helmcli import helm_env
from gitops_mesh.kube import KubeClient
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.gitserver import TlsFiles, make_tls
from gitops_mesh_dev.ociregistry import OciRegistry
from tests.integration.conftest import eventually
from tests.integration.source.controller.conftest import Controller, controller  # noqa: F401
from tests.integration.source.controller.test_helm import (
    chart_files,
    download,
    get,
    helmchart,
    helmrepo,
    request,
    secret,
    sha256,
    wait_failed,
    wait_ready,
)

pytestmark = [pytest.mark.stack, pytest.mark.timeout(180)]

USER, PASSWORD = "flux", "oci-pw-s3cret"


@pytest.fixture(autouse=True)
def helm_for_controller(stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The controller process repackages charts (valuesFiles) with the stack's helm (it reads $HELM)."""
    monkeypatch.setenv("HELM", stack_env["HELM"])


@pytest.fixture
def registry_tls(tmp_path: Path) -> TlsFiles:
    return make_tls(tmp_path / "pki")


@pytest.fixture
async def registry(tmp_path: Path, registry_tls: TlsFiles) -> AsyncIterator[OciRegistry]:
    async with OciRegistry(tmp_path / "registry", tls=registry_tls, username=USER, password=PASSWORD) as running:
        yield running


async def push(helm_bin: Path, home: Path, registry: OciRegistry, tls: TlsFiles, chart: Path) -> None:
    """``helm push`` after a ``helm registry login`` whose password goes on stdin."""
    env, ca = helm_env(home), ["--ca-file", str(tls.ca_cert)]
    if not (home / "config" / "registry" / "config.json").exists():
        await commands.run(
            [str(helm_bin), "registry", "login", registry.address, "-u", USER, "--password-stdin", *ca],
            env=env,
            timeout=60,
            stdin=PASSWORD.encode(),
        )
    await commands.run(
        [str(helm_bin), "push", str(chart), f"oci://{registry.address}/charts", *ca], env=env, timeout=60
    )


async def test_charts_from_an_oci_repository_follow_pushed_tags(
    kube: KubeClient,
    namespace: str,
    controller: Controller,  # noqa: F811
    registry: OciRegistry,
    registry_tls: TlsFiles,
    helm_bin: Path,
    charts_dir: Path,
    tmp_path: Path,
) -> None:
    home = tmp_path / "helm-home"
    for version in ("0.1.0", "0.2.0"):
        await push(helm_bin, home, registry, registry_tls, charts_dir / f"demo-{version}.tgz")
    url = f"oci://{registry.address}/charts"
    await kube.create(secret("creds", namespace, username=USER, password=PASSWORD))
    await kube.create(secret("ca", namespace, **{"ca.crt": registry_tls.ca_pem.decode()}))
    await kube.create(
        helmrepo("oci", namespace, url, type="oci", secretRef={"name": "creds"}, certSecretRef={"name": "ca"})
    )
    repo = await wait_ready(kube, "HelmRepository", namespace, "oci")
    assert c.get_message(repo, "Ready") == "Helm repository is ready"
    assert "artifact" not in repo["status"]

    # A range resolved from the registry's tags; the pushed archive byte for byte, as the HTTP path stores it.
    await kube.create(helmchart("demo", namespace, "demo", "HelmRepository", "oci", version="<1.0.0"))
    chart = await wait_ready(kube, "HelmChart", namespace, "demo", "0.2.0")
    artifact = chart["status"]["artifact"]
    assert artifact["path"] == f"helmchart/{namespace}/demo/demo-0.2.0.tgz"
    tgz = await download(artifact["url"])
    assert tgz == (charts_dir / "demo-0.2.0.tgz").read_bytes()
    assert artifact["digest"] == sha256(tgz)
    assert c.get_reason(chart, "Ready") == "ChartPullSucceeded"
    assert c.get_message(chart, "Ready") == "pulled 'demo' chart with version '0.2.0'"
    assert chart["status"]["observedChartName"] == "demo"
    assert "observedSourceArtifactRevision" not in chart["status"]

    # A new tag in range: the next reconcile lists the tags and pulls it.
    await push(helm_bin, home, registry, registry_tls, charts_dir / "demo-0.9.0.tgz")
    await request(kube, "HelmChart", namespace, "demo", "after-push")
    chart = await wait_ready(kube, "HelmChart", namespace, "demo", "0.9.0")
    assert await download(chart["status"]["artifact"]["url"]) == (charts_dir / "demo-0.9.0.tgz").read_bytes()

    async def announced() -> bool:
        return len(controller.events_of("artifact-ready", "demo")) == 2

    await eventually(announced)
    assert [e.revision for e in controller.events_of("artifact-ready", "demo")] == ["0.2.0", "0.9.0"]

    # valuesFiles: repackaged with the merged values, version <version>+<generation>.
    await kube.create(
        helmchart("prod", namespace, "demo", "HelmRepository", "oci", version="0.1.0", valuesFiles=["values-prod.yaml"])
    )
    prod = await wait_ready(kube, "HelmChart", namespace, "prod", "0.1.0+1")
    values = yaml.safe_load(chart_files(await download(prod["status"]["artifact"]["url"]))["demo/values.yaml"])
    assert values == {"replicaCount": 5, "image": {"tag": "prod"}}
    assert c.get_reason(prod, "Ready") == "ChartPackageSucceeded"


async def test_oci_repository_and_chart_errors(
    kube: KubeClient,
    namespace: str,
    controller: Controller,  # noqa: F811
    registry: OciRegistry,
    registry_tls: TlsFiles,
    helm_bin: Path,
    charts_dir: Path,
    tmp_path: Path,
) -> None:
    await push(helm_bin, tmp_path / "helm-home", registry, registry_tls, charts_dir / "demo-0.1.0.tgz")
    url = f"oci://{registry.address}/charts"
    await kube.create(secret("wrong", namespace, username=USER, password="pw-wrong"))
    await kube.create(secret("ca", namespace, **{"ca.crt": registry_tls.ca_pem.decode()}))
    await kube.create(
        helmrepo("refused", namespace, url, type="oci", secretRef={"name": "wrong"}, certSecretRef={"name": "ca"})
    )
    await kube.create(helmrepo("https", namespace, "https://example.com/charts", type="oci"))
    await kube.create(helmrepo("anonymous", namespace, url, type="oci", certSecretRef={"name": "ca"}))
    await kube.create(helmchart("refused", namespace, "demo", "HelmRepository", "refused"))
    await kube.create(helmchart("anonymous", namespace, "demo", "HelmRepository", "anonymous"))

    refused = await wait_failed(kube, "HelmRepository", namespace, "refused", "AuthenticationFailed")
    message = c.get_message(refused, "Ready")
    assert message.startswith(f"failed to login to registry '{url}': ")
    assert "pw-wrong" not in message
    bad_url = await wait_failed(kube, "HelmRepository", namespace, "https", "URLInvalid")
    assert c.get_message(bad_url, "Ready") == "URL scheme 'https' in 'https://example.com/charts' is not supported"
    assert c.is_true(bad_url, "Stalled")
    # Without credentials nothing is contacted (as Flux): Ready; its charts then fail to pull.
    assert c.is_ready(await wait_ready(kube, "HelmRepository", namespace, "anonymous"))

    for name in ("refused", "anonymous"):
        chart = await wait_failed(kube, "HelmChart", namespace, name, "AuthenticationFailed")
        assert c.get_message(chart, "Ready").startswith("failed to authenticate with the Helm repository")
        assert c.is_true(chart, "FetchFailed")
        assert "pw-wrong" not in c.get_message(chart, "Ready")

    async def failed() -> bool:
        return bool(controller.events_of("failed", "refused"))

    await eventually(failed)
    assert all("pw-wrong" not in e.message for e in controller.events)
    assert (await get(kube, "HelmChart", namespace, "refused")).get("status", {}).get("artifact") is None
