"""A Kustomization whose sourceRef is a Bucket applies what the bucket holds, and follows its changes:
source-controller and kustomize-controller as real processes over Kafka, the objects in the stack's S3."""

from __future__ import annotations

import pytest

from gitops_mesh.errors import NotFound
from gitops_mesh.kube import KubeClient
from tests.integration.conftest import eventually
from tests.integration.kustomize.controller.conftest import Mesh
from tests.integration.source.bucket.conftest import S3, bucket, secret

pytestmark = pytest.mark.stack


def configmap(value: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-bucket\ndata:\n  value: {value}\n"


async def test_kustomization_applies_from_a_bucket(kube: KubeClient, namespace: str, mesh: Mesh, s3: S3) -> None:
    await s3.put("app/cm.yaml", configmap("one"))
    await s3.put("app/kustomization.yaml", "resources: [cm.yaml]\n")
    await kube.create(secret("s3-creds", namespace, {"accesskey": s3.access_key, "secretkey": s3.secret_key}))
    await kube.create(
        bucket(
            "config",
            namespace,
            interval="1m",
            endpoint=s3.endpoint,
            insecure=True,
            bucketName=s3.bucket,
            secretRef={"name": "s3-creds"},
        )
    )
    await kube.create(
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "app", "namespace": namespace},
            "spec": {
                "interval": "10m",
                "path": "./app",
                "prune": True,
                "targetNamespace": namespace,
                "sourceRef": {"kind": "Bucket", "name": "config"},
            },
        }
    )

    async def value_is(expected: str) -> bool:
        try:
            cm = await kube.get("v1", "ConfigMap", "from-bucket", namespace=namespace)
        except NotFound:
            return False
        return bool(cm.get("data", {}).get("value") == expected)

    await eventually(lambda: value_is("one"), timeout=90)
    bucket_obj = await kube.get("source.toolkit.fluxcd.io/v1", "Bucket", "config", namespace=namespace)
    revision = bucket_obj["status"]["artifact"]["revision"]

    async def announced() -> bool:
        return any(e.revision == revision for e in mesh.bus.of("applied", "app"))

    await eventually(announced, timeout=30)

    # A changed object in the bucket reaches the cluster through the Bucket's next artifact.
    await s3.put("app/cm.yaml", configmap("two"))
    await kube.patch(
        "source.toolkit.fluxcd.io/v1",
        "Bucket",
        "config",
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "now"}}},
        namespace=namespace,
    )
    await eventually(lambda: value_is("two"), timeout=90)
