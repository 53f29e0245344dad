"""Bucket with provider generic against the stack's S3 server: artifact, Flux's revision, no-op, partial
refetch, bad input with Flux's reasons, secrets kept out of status, events and logs, deletion."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

import aiohttp
import botocore.exceptions
import pytest

from gitops_mesh.kube import KubeClient
from gitops_mesh.reconcile import conditions as c
from source_controller.bucket import cache_dir
from source_controller.objectstore.cache import entry_name
from source_controller.objectstore.index import digest
from tests.integration.conftest import eventually
from tests.integration.source.bucket.conftest import (
    API,
    MAX_OBJECT_SIZE,
    S3,
    Controller,
    bucket,
    dumped,
    get,
    request_reconcile,
    secret,
    wait_failed,
    wait_ready,
)

pytestmark = pytest.mark.stack


async def download(url: str) -> bytes:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        assert r.status == 200
        return await r.read()


def members(blob: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


async def s3_bucket(kube: KubeClient, namespace: str, s3: S3, name: str = "app", **spec: object) -> None:
    await kube.create(secret("s3-creds", namespace, {"accesskey": s3.access_key, "secretkey": s3.secret_key}))
    await kube.create(
        bucket(
            name,
            namespace,
            interval="10m",
            provider="generic",
            endpoint=s3.endpoint,
            insecure=True,
            bucketName=s3.bucket,
            secretRef={"name": "s3-creds"},
            **spec,
        )
    )


async def test_artifact_revision_noop_refetch_and_deletion(
    kube: KubeClient, namespace: str, controller: Controller, s3: S3
) -> None:
    await s3.put("deploy/app.yaml", "kind: ConfigMap\n")
    await s3.put("deploy/notes.md", "notes")
    await s3.put("deploy/big.yaml", "x" * 5000)
    await s3.put(".sourceignore", "*.md\n")
    await s3.put("dir/", b"")  # a "directory" placeholder some tools write
    await s3_bucket(kube, namespace, s3)

    etags = await s3.etags()
    kept = {k: v for k, v in etags.items() if k in ("deploy/app.yaml", "deploy/big.yaml")}
    revision = digest(kept)  # Flux's formula over the server's own listing
    obj = await wait_ready(kube, namespace, "app", revision)
    artifact = obj["status"]["artifact"]
    assert artifact["path"] == f"bucket/{namespace}/app/{revision.removeprefix('sha256:')}.tar.gz"
    blob = await download(artifact["url"])
    assert artifact["digest"] == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert members(blob) == {"deploy/app.yaml": b"kind: ConfigMap\n", "deploy/big.yaml": b"x" * 5000}
    assert c.get_message(obj, "Ready") == f"stored artifact: revision '{revision}'"
    assert obj["status"]["url"].endswith(f"/bucket/{namespace}/app/latest.tar.gz")

    async def announced() -> bool:
        return len(controller.events_of("artifact-ready", "app")) == 1

    await eventually(announced)
    event = controller.events_of("artifact-ready", "app")[0]
    assert event.reason == "NewArtifact"
    assert event.message == f"stored artifact with 2 fetched files from '{s3.bucket}' bucket"
    assert event.revision == revision
    assert event.artifact is not None
    assert event.artifact.digest == artifact["digest"]

    # No change: a reconcile lists only - same artifact, nothing announced.
    cache = cache_dir(controller.storage, namespace, "app")
    big_entry = cache / entry_name("deploy/big.yaml", kept["deploy/big.yaml"])
    inode = big_entry.stat().st_ino
    obj = await request_reconcile(kube, namespace, "app", "noop")
    assert obj["status"]["artifact"] == artifact
    assert len(controller.events_of("artifact-ready", "app")) == 1

    # One object changed, one added, one removed: a new revision; the unchanged object is not fetched again.
    await s3.put("deploy/app.yaml", "kind: ConfigMap\nmetadata: {name: changed}\n")
    await s3.put("deploy/new.yaml", "kind: Secret\n")
    await s3.delete("deploy/notes.md")
    etags = await s3.etags()
    kept = {k: v for k, v in etags.items() if k.endswith(".yaml")}
    new_revision = digest(kept)
    await request_reconcile(kube, namespace, "app", "changed")
    obj = await wait_ready(kube, namespace, "app", new_revision)
    files = members(await download(obj["status"]["artifact"]["url"]))
    assert files["deploy/app.yaml"] == b"kind: ConfigMap\nmetadata: {name: changed}\n"
    assert set(files) == {"deploy/app.yaml", "deploy/big.yaml", "deploy/new.yaml"}
    assert big_entry.stat().st_ino == inode, "an unchanged object must come from the cache"
    assert {p.name for p in cache.iterdir()} == {entry_name(k, v) for k, v in kept.items()} | {
        entry_name(".sourceignore", etags[".sourceignore"])
    }

    # Deletion removes the artifacts and the object cache.
    object_dir = controller.storage / "bucket" / namespace / "app"
    assert object_dir.is_dir()
    await kube.delete(API, "Bucket", "app", namespace=namespace)

    async def gone() -> bool:
        return not object_dir.exists()

    await eventually(gone, timeout=30)


async def test_bad_input_keeps_the_artifact_with_fluxs_reasons(
    kube: KubeClient, namespace: str, controller: Controller, s3: S3
) -> None:
    await s3.put("ok.yaml", "a: 1\n")
    await s3_bucket(kube, namespace, s3)
    obj = await wait_ready(kube, namespace, "app")
    artifact = obj["status"]["artifact"]

    # SeaweedFS refuses a key with a '..' segment itself (so the escaping key is Azurite's test, which keeps
    # one), but keeps a key that is also another key's directory: a tree no file system can hold.
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidRequest"):
        await s3.put("../escape.yaml", "x")
    await s3.put("clash", "x")
    await s3.put("clash/inner.yaml", "y")
    assert {"clash", "clash/inner.yaml"} <= set(await s3.etags()), "the server kept both keys"
    await request_reconcile(kube, namespace, "app", "clash")
    obj = await wait_failed(kube, namespace, "app", "is also the directory of 'clash/inner.yaml'")
    assert c.get_reason(obj, "Ready") == "BucketOperationFailed"
    assert c.get_reason(obj, "FetchFailed") == "BucketOperationFailed"
    assert "object key 'clash' in bucket" in c.get_message(obj, "Ready")
    assert obj["status"]["artifact"] == artifact
    assert members(await download(artifact["url"])) == {"ok.yaml": b"a: 1\n"}  # still served

    async def failed_on_bus() -> bool:
        return any("clash" in e.message for e in controller.events_of("failed", "app"))

    await eventually(failed_on_bus)

    async def warned() -> bool:
        events = await kube.list("v1", "Event", namespace=namespace)
        return any(e.get("reason") == "BucketOperationFailed" for e in events.items)

    await eventually(warned)
    await s3.delete("clash")
    await s3.delete("clash/inner.yaml")

    # An object over --max-bucket-object-size, named.
    await s3.put("huge.bin", b"\0" * (MAX_OBJECT_SIZE + 1))
    await request_reconcile(kube, namespace, "app", "huge")
    obj = await wait_failed(kube, namespace, "app", "object 'huge.bin'")
    assert "--max-bucket-object-size" in c.get_message(obj, "Ready")
    await s3.delete("huge.bin")
    await request_reconcile(kube, namespace, "app", "recovered")
    await wait_ready(kube, namespace, "app", artifact["revision"])


async def test_wrong_keys_missing_bucket_and_missing_secret(
    kube: KubeClient, namespace: str, controller: Controller, s3: S3
) -> None:
    wrong_secret = "not-the-secret-key-" + namespace
    await kube.create(secret("wrong", namespace, {"accesskey": s3.access_key, "secretkey": wrong_secret}))
    common = {"interval": "10m", "endpoint": s3.endpoint, "insecure": True}
    await kube.create(bucket("wrong-keys", namespace, bucketName=s3.bucket, secretRef={"name": "wrong"}, **common))
    await kube.create(secret("s3-creds", namespace, {"accesskey": s3.access_key, "secretkey": s3.secret_key}))
    await kube.create(
        bucket("no-bucket", namespace, bucketName="absent-" + s3.bucket[:40], secretRef={"name": "s3-creds"}, **common)
    )
    await kube.create(bucket("no-secret", namespace, bucketName=s3.bucket, secretRef={"name": "later"}, **common))

    obj = await wait_failed(kube, namespace, "wrong-keys", s3.bucket)
    assert c.get_reason(obj, "Ready") == "BucketOperationFailed"
    obj = await wait_failed(kube, namespace, "no-bucket", f"bucket 'absent-{s3.bucket[:40]}' not found")
    assert c.get_reason(obj, "Ready") == "BucketOperationFailed"
    obj = await wait_failed(kube, namespace, "no-secret", f"failed to get secret '{namespace}/later'")
    assert c.get_reason(obj, "Ready") == "AuthenticationFailed"
    assert not c.is_true(obj, "Stalled")  # a Secret created later heals it

    objs = [await get(kube, namespace, n) for n in ("wrong-keys", "no-bucket", "no-secret")]
    events = (await kube.list("v1", "Event", namespace=namespace)).items
    text = dumped(objs, events, [e.message for e in controller.bus.events], controller.log.read_text())
    assert wrong_secret not in text
    assert s3.secret_key not in text


async def test_unsupported_fields_are_refused(kube: KubeClient, namespace: str, controller: Controller, s3: S3) -> None:
    await kube.create(
        bucket(
            "wi",
            namespace,
            interval="10m",
            provider="aws",
            endpoint=s3.endpoint,
            bucketName="b",
            serviceAccountName="reader",
        )
    )
    obj = await wait_failed(kube, namespace, "wi", "spec.serviceAccountName is not supported")
    assert c.get_reason(obj, "Ready") == "UnsupportedField"
    assert c.is_true(obj, "Stalled")


async def test_every_object_arrives_whole(kube: KubeClient, namespace: str, controller: Controller, s3: S3) -> None:
    # Objects of tens of KiB fetched in parallel arrive over several reads: a download that took one read for
    # the whole body stored some of them cut short (seen against SeaweedFS). Every byte must be there.
    bodies = {f"data/{i:02d}.bin": os.urandom(20_000 + 700 * i) for i in range(60)}
    assert max(map(len, bodies.values())) < MAX_OBJECT_SIZE
    for key, body in bodies.items():
        await s3.put(key, body)
    await s3_bucket(kube, namespace, s3)
    obj = await wait_ready(kube, namespace, "app", digest(await s3.etags()))
    assert members(await download(obj["status"]["artifact"]["url"])) == bodies
