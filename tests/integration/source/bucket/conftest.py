"""Buckets against the stack's real object stores (SeaweedFS's S3 API, Azurite), filled with their own SDKs,
and the source-controller as a real process; each test gets its own bucket or container."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import AioSession
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from gitops_mesh.bus.envelope import Event
from gitops_mesh.bus.topics import Topic, Topics, ensure_topics
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.mesh import common_args, free_port, running
from tests.integration.conftest import eventually

# source- and kustomize-controller over a test's own topics, as the kustomize tests run them (Kustomizations
# following these sources)
from tests.integration.kustomize.controller.conftest import mesh, topics  # noqa: F401
from tests.support.bus import BusLog, recording

API = "source.toolkit.fluxcd.io/v1"
#: Azurite's well-known development account (public, documented by Microsoft for the emulator).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#: Small enough for a test to pass it with a few KiB.
MAX_OBJECT_SIZE = 64 * 1024


def need(stack_env: dict[str, str], *names: str) -> None:
    missing = [n for n in names if not stack_env.get(n)]
    if missing:
        pytest.skip(f"the stack exports no {', '.join(missing)} (object stores not in this stack)")


@dataclass
class Controller:
    storage: Path
    storage_port: int
    log: Path
    bus: BusLog

    def events_of(self, kind: str, name: str) -> list[Event]:
        return self.bus.of(kind, name)


@pytest.fixture
async def controller(
    stack_env: dict[str, str], namespace: str, tmp_path: Path, unique: str
) -> AsyncIterator[Controller]:
    topics = Topics(f"{unique}.")
    await ensure_topics(stack_env["KAFKA_BOOTSTRAP"], topics.all(), partitions=1)
    storage, port, log = tmp_path / "storage", free_port(), tmp_path / "source-controller.log"
    args = [
        *common_args(stack_env, topics, namespace),
        f"--storage-path={storage}",
        f"--storage-addr=127.0.0.1:{port}",
        f"--max-bucket-object-size={MAX_OBJECT_SIZE}",
        f"--helm-path={stack_env['HELM']}",  # HelmCharts from a Bucket are packaged with the stack's helm
    ]
    which = [Topic.ARTIFACT_READY, Topic.FAILED]
    async with (
        recording(stack_env["KAFKA_BOOTSTRAP"], topics, f"{unique}-observer", which) as bus,
        running("source-controller", args, log),
    ):
        yield Controller(storage, port, log, bus)


@dataclass
class S3:
    """The stack's S3 server through aiobotocore (the controller's library), one bucket per test."""

    client: Any
    endpoint: str  # host:port, as spec.endpoint takes it
    access_key: str
    secret_key: str
    bucket: str

    async def put(self, key: str, body: bytes | str) -> None:
        await self.client.put_object(Bucket=self.bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)

    async def delete(self, key: str) -> None:
        await self.client.delete_object(Bucket=self.bucket, Key=key)

    async def etags(self) -> dict[str, str]:
        out: dict[str, str] = {}
        async for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for item in page.get("Contents") or ():
                out[item["Key"]] = item["ETag"].strip('"')
        return out


@pytest.fixture
async def s3(stack_env: dict[str, str], unique: str) -> AsyncIterator[S3]:
    need(stack_env, "S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY")
    url = stack_env["S3_ENDPOINT"]
    if "://" not in url:
        url = f"http://{url}"
    session = AioSession()
    async with session.create_client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=stack_env["S3_ACCESS_KEY"],
        aws_secret_access_key=stack_env["S3_SECRET_KEY"],
    ) as client:
        bucket = unique.lower().replace("_", "-")[:60]
        await client.create_bucket(Bucket=bucket)
        store = S3(
            client, url.split("://", 1)[1].rstrip("/"), stack_env["S3_ACCESS_KEY"], stack_env["S3_SECRET_KEY"], bucket
        )
        try:
            yield store
        finally:
            keys = list(await store.etags())
            for key in keys:
                await store.delete(key)
            await client.delete_bucket(Bucket=bucket)


@dataclass
class Azure:
    container: ContainerClient
    endpoint: str
    name: str

    async def put(self, key: str, body: bytes | str) -> None:
        await self.container.upload_blob(key, body.encode() if isinstance(body, str) else body, overwrite=True)

    async def delete(self, key: str) -> None:
        await self.container.delete_blob(key)


@pytest.fixture
async def azure(stack_env: dict[str, str], unique: str) -> AsyncIterator[Azure]:
    need(stack_env, "AZURE_BLOB_ENDPOINT")
    endpoint = stack_env["AZURE_BLOB_ENDPOINT"].rstrip("/")
    # The stack exports the emulator's account; it is the well-known development one.
    assert stack_env.get("AZURE_ACCOUNT_NAME", AZURITE_ACCOUNT) == AZURITE_ACCOUNT
    assert stack_env.get("AZURE_ACCOUNT_KEY", AZURITE_KEY) == AZURITE_KEY
    credential = {"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY}
    async with BlobServiceClient(endpoint, credential=credential) as service:
        name = unique.lower().replace("_", "-")[:60]
        container = await service.create_container(name)
        try:
            yield Azure(container, endpoint, name)
        finally:
            await service.delete_container(name)


def secret(name: str, namespace: str, data: dict[str, str]) -> KubeObject:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def bucket(name: str, namespace: str, **spec: Any) -> KubeObject:
    return {"apiVersion": API, "kind": "Bucket", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


async def get(kube: KubeClient, namespace: str, name: str) -> KubeObject:
    return await kube.get(API, "Bucket", name, namespace=namespace)


async def wait_ready(kube: KubeClient, namespace: str, name: str, revision: str | None = None) -> KubeObject:
    async def done() -> bool:
        obj = await get(kube, namespace, name)
        if not c.is_ready(obj) or (obj.get("status") or {}).get("observedGeneration") != obj["metadata"]["generation"]:
            return False
        return revision is None or obj["status"]["artifact"]["revision"] == revision

    await eventually(done, timeout=60)
    return await get(kube, namespace, name)


async def wait_failed(kube: KubeClient, namespace: str, name: str, words: str) -> KubeObject:
    async def done() -> bool:
        ready = c.get(await get(kube, namespace, name), c.ConditionType.READY)
        return bool(ready and ready["status"] == "False" and words in ready["message"])

    await eventually(done, timeout=60)
    return await get(kube, namespace, name)


async def request_reconcile(kube: KubeClient, namespace: str, name: str, token: str) -> KubeObject:
    patch = {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}}
    await kube.patch(API, "Bucket", name, patch, namespace=namespace)

    async def handled() -> bool:
        return bool((await get(kube, namespace, name)).get("status", {}).get("lastHandledReconcileAt") == token)

    await eventually(handled, timeout=60)
    return await get(kube, namespace, name)


def dumped(*things: Any) -> str:
    return json.dumps(things, default=str)
