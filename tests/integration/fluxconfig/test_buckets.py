"""FluxConfig with a Bucket source (S3, provider generic) and an AzureBlob one (provider azure) against the
stack's real object stores."""

from __future__ import annotations

import base64

import pytest

from tests.integration.fluxconfig.conftest import KS, SRC, FluxMesh, configmap, fluxconfig, protected
from tests.integration.source.bucket.conftest import AZURITE_KEY, S3, Azure, azure, s3  # noqa: F401

pytestmark = pytest.mark.stack


async def test_bucket_generic_with_access_keys(mesh: FluxMesh, s3: S3) -> None:  # noqa: F811
    kube, ns = mesh.kube, mesh.namespace
    await s3.put("deploy/cm.yaml", configmap("from-s3"))
    await protected(kube, ns, "b", {"bucketSecretKey": s3.secret_key})
    spec = {
        "sourceKind": "Bucket",
        "bucket": {"url": f"http://{s3.endpoint}", "bucketName": s3.bucket, "accessKey": s3.access_key},
        "kustomizations": {"deploy": {"path": "./deploy"}},
    }
    await kube.create(fluxconfig(ns, "b", spec))
    bucket = await mesh.until_ready(SRC, "Bucket", "b")
    assert bucket["spec"]["provider"] == "generic"
    assert bucket["spec"]["endpoint"] == s3.endpoint
    assert bucket["spec"]["insecure"] is True
    auth = await kube.get("v1", "Secret", "b-auth", namespace=ns)
    assert base64.b64decode(auth["data"]["secretkey"]).decode() == s3.secret_key
    await mesh.until_ready(KS, "Kustomization", "b-deploy")
    await kube.get("v1", "ConfigMap", "from-s3", namespace=ns)


async def test_azure_blob_with_an_account_key(mesh: FluxMesh, azure: Azure) -> None:  # noqa: F811
    kube, ns = mesh.kube, mesh.namespace
    await azure.put("deploy/cm.yaml", configmap("from-blob"))
    await protected(kube, ns, "z", {"accountKey": AZURITE_KEY})
    spec = {
        "sourceKind": "AzureBlob",
        "azureBlob": {"url": azure.endpoint, "containerName": azure.name},
        "kustomizations": {"deploy": {"path": "./deploy"}},
    }
    await kube.create(fluxconfig(ns, "z", spec))
    bucket = await mesh.until_ready(SRC, "Bucket", "z")
    assert bucket["spec"]["provider"] == "azure"
    await mesh.until_ready(KS, "Kustomization", "z-deploy")
    await kube.get("v1", "ConfigMap", "from-blob", namespace=ns)
