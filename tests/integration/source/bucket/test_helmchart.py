"""A HelmChart whose sourceRef is a Bucket: the chart packaged from a path in the Bucket's artifact with the real
helm, as from a GitRepository; a Revision chart follows the Bucket's revision, a ChartVersion one keeps its build."""

from __future__ import annotations

import pytest
import yaml

from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from tests.integration.conftest import eventually
from tests.integration.source.bucket.conftest import (
    API,
    S3,
    Controller,
    bucket,
    request_reconcile,
    secret,
    wait_ready,
)
from tests.integration.source.bucket.test_s3 import download, members

pytestmark = pytest.mark.stack

CHART_YAML = "apiVersion: v2\nname: app\nversion: 0.1.0\n"
TEMPLATE = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  color: {{ .Values.color }}\n"
)


def helmchart(name: str, namespace: str, **spec: object) -> KubeObject:
    return {
        "apiVersion": API,
        "kind": "HelmChart",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"chart": "charts/app", "sourceRef": {"kind": "Bucket", "name": "charts"}, "interval": "10m", **spec},
    }


async def chart_ready(kube: KubeClient, namespace: str, name: str, version: str) -> KubeObject:
    async def done() -> bool:
        obj = await kube.get(API, "HelmChart", name, namespace=namespace)
        return c.is_ready(obj) and (obj.get("status", {}).get("artifact") or {}).get("revision") == version

    await eventually(done, timeout=60)
    return await kube.get(API, "HelmChart", name, namespace=namespace)


async def test_chart_from_a_bucket(kube: KubeClient, namespace: str, controller: Controller, s3: S3) -> None:
    await s3.put("charts/app/Chart.yaml", CHART_YAML)
    await s3.put("charts/app/values.yaml", "color: red\n")
    await s3.put("charts/app/templates/cm.yaml", TEMPLATE)
    await kube.create(secret("s3-creds", namespace, {"accesskey": s3.access_key, "secretkey": s3.secret_key}))
    await kube.create(
        bucket(
            "charts",
            namespace,
            interval="10m",
            endpoint=s3.endpoint,
            insecure=True,
            bucketName=s3.bucket,
            secretRef={"name": "s3-creds"},
        )
    )
    await kube.create(helmchart("app", namespace))
    await kube.create(helmchart("app-rev", namespace, reconcileStrategy="Revision"))

    source = await wait_ready(kube, namespace, "charts")
    first = source["status"]["artifact"]["revision"]
    app = await chart_ready(kube, namespace, "app", "0.1.0")
    files = members(await download(app["status"]["artifact"]["url"]))
    assert yaml.safe_load(files["app/Chart.yaml"])["version"] == "0.1.0"
    assert files["app/templates/cm.yaml"].decode() == TEMPLATE
    assert app["status"]["observedSourceArtifactRevision"] == first
    assert c.get_message(app, "Ready") == "packaged 'app' chart with version '0.1.0'"
    # Flux's Revision strategy for a Bucket: the first 12 hex of its revision's digest as build metadata.
    rev = await chart_ready(kube, namespace, "app-rev", f"0.1.0+{first.removeprefix('sha256:')[:12]}")
    assert yaml.safe_load(members(await download(rev["status"]["artifact"]["url"]))["app/values.yaml"]) == {
        "color": "red"
    }

    # A changed object: the Bucket's new artifact wakes its charts at once (no chart reconcile asked for).
    await s3.put("charts/app/values.yaml", "color: green\n")
    await request_reconcile(kube, namespace, "charts", "changed")
    second = (await wait_ready(kube, namespace, "charts"))["status"]["artifact"]["revision"]
    assert second != first
    rev = await chart_ready(kube, namespace, "app-rev", f"0.1.0+{second.removeprefix('sha256:')[:12]}")
    assert yaml.safe_load(members(await download(rev["status"]["artifact"]["url"]))["app/values.yaml"]) == {
        "color": "green"
    }

    async def observed() -> bool:
        obj = await kube.get(API, "HelmChart", "app", namespace=namespace)
        return bool(obj["status"].get("observedSourceArtifactRevision") == second)

    await eventually(observed)
    kept = await kube.get(API, "HelmChart", "app", namespace=namespace)
    assert kept["status"]["artifact"] == app["status"]["artifact"]  # ChartVersion: same version, same artifact
