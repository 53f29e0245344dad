"""Bucket with provider azure against Azurite: shared key and SAS token, Flux's hex etag index, a wrong key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from gitops_mesh.kube import KubeClient
from gitops_mesh.reconcile import conditions as c
from source_controller.bucket import cache_dir
from source_controller.objectstore.index import digest
from tests.integration.conftest import eventually
from tests.integration.source.bucket.conftest import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    Azure,
    Controller,
    bucket,
    dumped,
    request_reconcile,
    secret,
    wait_failed,
    wait_ready,
)
from tests.integration.source.bucket.test_s3 import download, members

pytestmark = pytest.mark.stack


async def listed_revision(azure: Azure) -> str:
    """Flux's revision for an Azure Bucket: over the etags its downloads return (the ETag header, quoted)."""
    etags = {}
    async for b in azure.container.list_blobs():
        downloaded = (await azure.container.download_blob(b.name)).properties.etag
        # Azurite lists an etag bare and sends it quoted, as Azure does: Flux's listing (hex of the bare
        # string) is replaced by the quoted one when it downloads, and that index is its revision.
        assert not b.etag.startswith('"')
        assert downloaded == f'"{b.etag}"'
        etags[b.name] = downloaded
    return digest(etags)


async def test_shared_key_sas_and_a_wrong_key(
    kube: KubeClient, namespace: str, controller: Controller, azure: Azure
) -> None:
    await azure.put("deploy/app.yaml", "kind: ConfigMap\n")
    await azure.put("deploy/other.yaml", "kind: Secret\n")
    await kube.create(secret("key", namespace, {"accountKey": AZURITE_KEY}))
    spec = {"interval": "10m", "provider": "azure", "endpoint": azure.endpoint, "bucketName": azure.name}
    await kube.create(bucket("shared-key", namespace, secretRef={"name": "key"}, **spec))
    revision = await listed_revision(azure)
    obj = await wait_ready(kube, namespace, "shared-key", revision)
    files = members(await download(obj["status"]["artifact"]["url"]))
    assert files == {"deploy/app.yaml": b"kind: ConfigMap\n", "deploy/other.yaml": b"kind: Secret\n"}

    # The listing (bare etags) gives that same revision: an unchanged container is a no-op, nothing fetched.
    async def announced() -> bool:
        return len(controller.events_of("artifact-ready", "shared-key")) == 1

    await eventually(announced)
    cache = cache_dir(controller.storage, namespace, "shared-key")
    inodes = {p.name: p.stat().st_ino for p in cache.iterdir()}
    again = await request_reconcile(kube, namespace, "shared-key", "noop")
    assert again["status"]["artifact"] == obj["status"]["artifact"]
    assert {p.name: p.stat().st_ino for p in cache.iterdir()} == inodes
    assert len(controller.events_of("artifact-ready", "shared-key")) == 1

    # A changed blob is a new revision.
    await azure.put("deploy/app.yaml", "kind: ConfigMap\ndata: {a: b}\n")
    await request_reconcile(kube, namespace, "shared-key", "changed")
    obj = await wait_ready(kube, namespace, "shared-key", await listed_revision(azure))
    assert members(await download(obj["status"]["artifact"]["url"]))["deploy/app.yaml"].endswith(b"{a: b}\n")

    sas = generate_container_sas(
        AZURITE_ACCOUNT,
        azure.name,
        account_key=AZURITE_KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    await kube.create(secret("sas", namespace, {"sasKey": "?" + sas}))
    await kube.create(bucket("sas", namespace, secretRef={"name": "sas"}, **spec))
    obj = await wait_ready(kube, namespace, "sas", await listed_revision(azure))
    assert (
        obj["status"]["artifact"]["revision"]
        == (await kube.get("source.toolkit.fluxcd.io/v1", "Bucket", "shared-key", namespace=namespace))["status"][
            "artifact"
        ]["revision"]
    )

    wrong = "d3JvbmcgYWNjb3VudCBrZXkgZm9yIHRoZSB0ZXN0cw=="
    await kube.create(secret("wrong", namespace, {"accountKey": wrong}))
    await kube.create(bucket("wrong", namespace, secretRef={"name": "wrong"}, **spec))
    obj = await wait_failed(kube, namespace, "wrong", azure.name)
    assert c.get_reason(obj, "Ready") == "BucketOperationFailed"
    events = (await kube.list("v1", "Event", namespace=namespace)).items
    text = dumped(obj, events, [e.message for e in controller.bus.events], controller.log.read_text())
    assert wrong not in text
    assert AZURITE_KEY not in text
    assert sas not in text


async def test_prefix_and_a_key_that_escapes(
    kube: KubeClient, namespace: str, controller: Controller, azure: Azure
) -> None:
    await azure.put("deploy/app.yaml", "kind: ConfigMap\n")
    await azure.put("other/x.yaml", "kind: Secret\n")
    await kube.create(secret("key", namespace, {"accountKey": AZURITE_KEY}))
    spec = {
        "interval": "10m",
        "provider": "azure",
        "endpoint": azure.endpoint,
        "bucketName": azure.name,
        "secretRef": {"name": "key"},
    }
    # Flux lists an Azure container under spec.prefix (server-side), as it does an S3 bucket.
    await kube.create(bucket("prefixed", namespace, prefix="deploy/", **spec))
    obj = await wait_ready(kube, namespace, "prefixed")
    assert members(await download(obj["status"]["artifact"]["url"])) == {"deploy/app.yaml": b"kind: ConfigMap\n"}

    # Azure refuses a '../' name but turns a backslash into '/': '..\\escape.yaml' is listed '../escape.yaml'.
    await azure.put("deploy/..\\..\\escape.yaml", "x")
    assert "deploy/../../escape.yaml" in [b.name async for b in azure.container.list_blobs()]
    await request_reconcile(kube, namespace, "prefixed", "escape")
    failed = await wait_failed(kube, namespace, "prefixed", "'deploy/../../escape.yaml'")
    assert c.get_reason(failed, "Ready") == "BucketOperationFailed"
    assert "escapes the artifact root" in c.get_message(failed, "Ready")
    assert failed["status"]["artifact"] == obj["status"]["artifact"]  # the last artifact is kept and served
    assert members(await download(obj["status"]["artifact"]["url"])) == {"deploy/app.yaml": b"kind: ConfigMap\n"}
