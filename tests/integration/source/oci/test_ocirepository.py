"""OCIRepository end to end through the real source-controller process: `gitops-mesh push artifact` → the
distribution registry → artifact → HTTP → Kafka; the no-op, refs, layer operations, verification, bad input."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.oci import RegistryClient, Transport, parse_repository
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.http import serve
from gitops_mesh_dev.ociregistry import OciRegistry
from tests.integration.conftest import eventually
from tests.integration.source.controller.conftest import Controller
from tests.integration.source.oci.conftest import push, write_tree
from tests.support.cosign import Signer

pytestmark = [pytest.mark.stack, pytest.mark.timeout(180)]

API = "source.toolkit.fluxcd.io/v1"
ORIGIN = "main@sha1:0123456789abcdef0123456789abcdef01234567"


def ocirepo(name: str, namespace: str, url: str, **spec: Any) -> KubeObject:
    return {
        "apiVersion": API,
        "kind": "OCIRepository",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"url": url, "interval": "10m", "insecure": True, **spec},
    }


async def get(kube: KubeClient, namespace: str, name: str) -> KubeObject:
    return await kube.get(API, "OCIRepository", name, namespace=namespace)


async def wait_for(kube: KubeClient, namespace: str, name: str, check: Any, timeout: float = 60) -> KubeObject:
    async def done() -> bool:
        return bool(check(await get(kube, namespace, name)))

    await eventually(done, timeout=timeout)
    return await get(kube, namespace, name)


def ready_at(revision: str) -> Any:
    return lambda o: c.is_ready(o) and (o.get("status", {}).get("artifact") or {}).get("revision") == revision


def failing(reason: str) -> Any:
    def check(o: KubeObject) -> bool:
        ready = c.get(o, c.ConditionType.READY)
        return ready is not None and ready["status"] == "False" and ready["reason"] == reason

    return check


async def request_reconcile(kube: KubeClient, namespace: str, name: str, token: str) -> None:
    annotation = {"reconcile.fluxcd.io/requestedAt": token}
    await kube.patch(API, "OCIRepository", name, {"metadata": {"annotations": annotation}}, namespace=namespace)


async def download(url: str) -> dict[str, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        assert r.status == 200
        blob = await r.read()
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


async def test_pushed_artifact_is_stored_announced_skipped_when_unchanged_and_updated(
    kube: KubeClient, namespace: str, controller: Controller, registry: OciRegistry, tmp_path: Path
) -> None:
    src = write_tree(tmp_path / "v1", {"deploy/cm.yaml": "kind: ConfigMap\n", "docs/README.md": "# hi\n"})
    digest = await push(f"oci://{registry.address}/apps/web:v1", src, revision=ORIGIN)
    url = f"oci://{registry.address}/apps/web"
    await kube.create(ocirepo("web", namespace, url, ref={"tag": "v1"}, ignore="docs/\n"))
    obj = await wait_for(kube, namespace, "web", ready_at(f"v1@{digest}"))

    status = obj["status"]
    artifact = status["artifact"]
    assert artifact["path"] == f"ocirepository/{namespace}/web/{digest.removeprefix('sha256:')}.tar.gz"
    assert artifact["metadata"]["org.opencontainers.image.revision"] == ORIGIN
    assert artifact["metadata"]["org.opencontainers.image.source"] == "https://git.example.com/app.git"
    assert status["observedIgnore"] == "docs/\n"
    assert status["url"].endswith(f"/ocirepository/{namespace}/web/latest.tar.gz")
    ready = c.get(obj, c.ConditionType.READY)
    assert ready is not None
    assert ready["message"] == f"stored artifact for digest 'v1@{digest}'"
    assert await download(artifact["url"]) == {"deploy/cm.yaml": b"kind: ConfigMap\n"}

    async def announced(revision: str) -> bool:
        return any(e.revision == revision for e in controller.events_of("artifact-ready", "web"))

    await eventually(lambda: announced(f"v1@{digest}"), timeout=30)
    [event] = controller.events_of("artifact-ready", "web")
    assert event.reason == "NewArtifact"
    assert event.message == (
        f"stored artifact with revision 'v1@{digest}' from '{url}', "
        f"origin source 'https://git.example.com/app.git', origin revision '{ORIGIN}'"
    )
    assert event.artifact is not None
    assert event.artifact.digest == artifact["digest"]

    # Nothing changed in the registry: a HEAD, no pull, the same artifact, nothing announced.
    await request_reconcile(kube, namespace, "web", "one")
    again = await wait_for(kube, namespace, "web", lambda o: o["status"].get("lastHandledReconcileAt") == "one")
    assert again["status"]["artifact"] == artifact
    assert len(controller.events_of("artifact-ready", "web")) == 1

    # A new push to the same tag: a new revision, a new artifact, announced.
    newer = await push(
        f"oci://{registry.address}/apps/web:v1",
        write_tree(tmp_path / "v2", {"deploy/cm.yaml": "kind: ConfigMap\nv: 2\n"}),
    )
    assert newer != digest
    await request_reconcile(kube, namespace, "web", "two")
    updated = await wait_for(kube, namespace, "web", ready_at(f"v1@{newer}"))
    assert await download(updated["status"]["artifact"]["url"]) == {"deploy/cm.yaml": b"kind: ConfigMap\nv: 2\n"}
    await eventually(lambda: announced(f"v1@{newer}"), timeout=30)


async def test_semver_digest_and_copy_references(
    kube: KubeClient, namespace: str, controller: Controller, registry: OciRegistry, tmp_path: Path
) -> None:
    url = f"oci://{registry.address}/apps/versions"
    digests = {}
    for tag in ("1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0"):
        digests[tag] = await push(f"{url}:{tag}", write_tree(tmp_path / tag, {"v.txt": tag}))
    await kube.create(ocirepo("semver", namespace, url, ref={"semver": "<2.0.0"}))
    await kube.create(ocirepo("rc", namespace, url, ref={"semver": ">=1.0.0-0", "semverFilter": "-rc"}))
    await kube.create(ocirepo("pinned", namespace, url, ref={"digest": digests["1.0.0"], "tag": "2.0.0"}))
    await kube.create(
        ocirepo(
            "copied",
            namespace,
            url,
            ref={"tag": "2.0.0"},
            layerSelector={"mediaType": "application/vnd.cncf.flux.content.v1.tar+gzip", "operation": "copy"},
        )
    )
    await wait_for(kube, namespace, "semver", ready_at(f"1.1.0@{digests['1.1.0']}"))
    await wait_for(kube, namespace, "rc", ready_at(f"1.2.0-rc.1@{digests['1.2.0-rc.1']}"))
    pinned = await wait_for(kube, namespace, "pinned", ready_at(digests["1.0.0"]))
    assert await download(pinned["status"]["artifact"]["url"]) == {"v.txt": b"1.0.0"}
    copied = await wait_for(kube, namespace, "copied", ready_at(f"2.0.0@{digests['2.0.0']}"))
    # copy: the layer as it is in the registry, byte for byte.
    async with aiohttp.ClientSession() as http:
        client = RegistryClient(http, registry.address, transport=Transport(insecure=True))
        manifest = await client.manifest(parse_repository(url), digests["2.0.0"])
    assert copied["status"]["artifact"]["digest"] == manifest.layers[0].digest
    assert copied["status"]["observedLayerSelector"]["operation"] == "copy"


async def test_bad_input_fails_with_fluxs_reasons_and_keeps_the_artifact(
    kube: KubeClient, namespace: str, controller: Controller, registry: OciRegistry, tmp_path: Path
) -> None:
    url = f"oci://{registry.address}/apps/bad"
    digest = await push(f"{url}:v1", write_tree(tmp_path / "src", {"a.yaml": "a: 1\n"}))
    await kube.create(ocirepo("kept", namespace, url, ref={"tag": "v1"}))
    good = await wait_for(kube, namespace, "kept", ready_at(f"v1@{digest}"))

    # A tag that does not exist: OCIArtifactPullFailed; the artifact stays and is served.
    await kube.patch(API, "OCIRepository", "kept", {"spec": {"ref": {"tag": "missing"}}}, namespace=namespace)
    broken = await wait_for(kube, namespace, "kept", failing("OCIArtifactPullFailed"))
    ready = c.get(broken, c.ConditionType.READY)
    assert ready is not None
    assert ready["message"].startswith("failed to determine artifact digest: manifest ")
    assert "HTTP 404" in ready["message"]
    assert broken["status"]["artifact"] == good["status"]["artifact"]
    assert await download(good["status"]["artifact"]["url"]) == {"a.yaml": b"a: 1\n"}

    async def failed_on_bus() -> bool:
        return any(e.reason == "OCIArtifactPullFailed" for e in controller.events_of("failed", "kept"))

    await eventually(failed_on_bus, timeout=30)

    await kube.create(ocirepo("layer", namespace, url, ref={"tag": "v1"}, layerSelector={"mediaType": "x/none"}))
    layer = await wait_for(kube, namespace, "layer", failing("OCIArtifactLayerOperationFailed"))
    assert "failed to find layer with media type 'x/none' in artifact" in c.get(layer, "Ready")["message"]  # type: ignore[index]

    await kube.create(ocirepo("tagged", namespace, f"{url}:v1"))
    tagged = await wait_for(kube, namespace, "tagged", lambda o: c.is_stalled(o))
    assert c.get(tagged, "Ready")["reason"] == "URLInvalid"  # type: ignore[index]

    await kube.create(ocirepo("aws", namespace, url, provider="aws"))
    aws = await wait_for(kube, namespace, "aws", lambda o: c.is_stalled(o))
    assert c.get(aws, "Ready")["reason"] == "UnsupportedField"  # type: ignore[index]

    await kube.create(ocirepo("nosecret", namespace, url, secretRef={"name": "absent"}))
    nosecret = await wait_for(kube, namespace, "nosecret", failing("AuthenticationFailed"))
    assert f"failed to get credential: secret '{namespace}/absent' not found" in c.get(nosecret, "Ready")["message"]  # type: ignore[index]

    # A "registry" that answers a login page.
    async def html(_: web.Request) -> web.Response:
        return web.Response(text="<html>please log in</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", html)
    runner, port = await serve(app)
    try:
        await kube.create(ocirepo("html", namespace, f"oci://127.0.0.1:{port}/apps/x"))
        page = await wait_for(kube, namespace, "html", failing("OCIArtifactPullFailed"))
        message = c.get(page, "Ready")["message"]  # type: ignore[index]
        assert "HTML" in message
        assert "please log in" not in message
    finally:
        await runner.cleanup()


async def test_cosign_signatures_are_verified_with_the_secrets_keys(
    kube: KubeClient, namespace: str, controller: Controller, registry: OciRegistry, tmp_path: Path
) -> None:
    url = f"oci://{registry.address}/apps/signed"
    repo = parse_repository(url)
    signer, stranger = Signer(), Signer()
    signed = await push(f"{url}:signed", write_tree(tmp_path / "a", {"a.yaml": "a: 1\n"}))
    unsigned = await push(f"{url}:unsigned", write_tree(tmp_path / "b", {"b.yaml": "b: 1\n"}))
    foreign = await push(f"{url}:foreign", write_tree(tmp_path / "c", {"c.yaml": "c: 1\n"}))
    async with aiohttp.ClientSession() as http:
        client = RegistryClient(http, registry.address, transport=Transport(insecure=True))
        await signer.sign(client, repo, signed)
        await stranger.sign(client, repo, unsigned)
        # A valid signature of another artifact, stored under this one's tag.
        await signer.sign(client, repo, foreign, claim=signed)
    keys = {"cosign.pub": base64.b64encode(signer.public_pem).decode()}
    await kube.create(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys", "namespace": namespace}, "data": keys}
    )
    verify = {"provider": "cosign", "secretRef": {"name": "keys"}}

    await kube.create(ocirepo("signed", namespace, url, ref={"tag": "signed"}, verify=verify))
    ok = await wait_for(kube, namespace, "signed", ready_at(f"signed@{signed}"))
    mark = c.get(ok, c.ConditionType.SOURCE_VERIFIED)
    assert mark is not None
    assert (mark["status"], mark["message"]) == ("True", f"verified signature of revision signed@{signed}")

    for name in ("unsigned", "foreign"):
        await kube.create(ocirepo(name, namespace, url, ref={"tag": name}, verify=verify))
        bad = await wait_for(kube, namespace, name, failing("VerificationError"))
        mark = c.get(bad, c.ConditionType.SOURCE_VERIFIED)
        assert mark is not None
        assert mark["status"] == "False"
        assert mark["message"].startswith(
            "failed to verify the signature using provider 'cosign': no matching signatures"
        )
        assert not bad["status"].get("artifact")

    await kube.create(ocirepo("keyless", namespace, url, ref={"tag": "signed"}, verify={"provider": "cosign"}))
    keyless = await wait_for(kube, namespace, "keyless", lambda o: c.is_stalled(o))
    assert "keyless" in c.get(keyless, "Ready")["message"]  # type: ignore[index]
    assert json.dumps(keyless).count(signer.public_pem.decode()) == 0
