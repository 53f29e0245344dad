"""`make demo`, the other sources: an OCIRepository, a Bucket and an ArtifactGenerator, each followed by a Kustomization.

Where it sits: deploy/local/demo.py calls :func:`show_sources` once the Git, Helm and notification parts have run.
Each source here is a real server of the local stack (.stack/env): distribution's registry (``OCI_REGISTRY``),
SeaweedFS's S3 gateway (``S3_*``), and the demo's own GitRepository split by an ArtifactGenerator into an
ExternalArtifact. What each Kustomization applied, and what the sink was told, is shown.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiobotocore.session import AioSession

from gitops_mesh import commands
from gitops_mesh.errors import NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.reconcile import conditions as c

KS_API = "kustomize.toolkit.fluxcd.io/v1"
SOURCE_API = "source.toolkit.fluxcd.io/v1"
GENERATOR_API = "source.extensions.fluxcd.io/v1beta1"
#: Where the objects of these Kustomizations go: one namespace, so `make demo-down` clears them at once.
TARGET_NS = "demo-sources"
BUCKET = "demo-manifests"


def config_map(name: str, source: str, revision: str) -> str:
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {TARGET_NS}\n"
        f"data:\n  source: {source}\n  revision: '{revision}'\n"
    )


def kustomization(name: str, source_kind: str, source_name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": KS_API,
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": "flux-system"},
        "spec": {
            "interval": "10m",
            "path": "./",
            "prune": True,
            "sourceRef": {"kind": source_kind, "name": source_name},
            **spec,
        },
    }


async def wait_ready(
    kube: KubeClient,
    api: str,
    kind: str,
    name: str,
    started: float,
    say: Callable[[str], None],
    *,
    revision: str = "",
    handled: str = "",
) -> str:
    """The revision ``kind/name`` in flux-system applied or stored, once Ready (and, when asked, once it is
    ``revision`` and the reconcile requested as ``handled`` was done); the reasons while it waits."""
    last = ""
    while time.monotonic() - started < 120:
        try:
            obj = await kube.get(api, kind, name, namespace="flux-system")
        except NotFound:  # an ExternalArtifact exists once its generator has made it
            await asyncio.sleep(0.2)
            continue
        status = obj.get("status") or {}
        got = status.get("lastAppliedRevision") or (status.get("artifact") or {}).get("revision")
        done = not handled or status.get("lastHandledReconcileAt") == handled
        if c.is_ready(obj) and got and done and (not revision or got == revision):
            return str(got)
        msg = c.get_message(obj, "Ready") or "waiting"
        if msg != last:
            say(f"  {kind}/{name}: {msg}")
            last = msg
        await asyncio.sleep(0.2)
    raise SystemExit(f"[demo] {kind}/{name} was not Ready within 120s; see .stack/logs/*.log")


async def request_reconcile(kube: KubeClient, api: str, kind: str, name: str) -> str:
    """What `flux reconcile source ...` does: the requestedAt annotation, which the controller acts on at once."""
    token = time.strftime("%Y-%m-%dT%H:%M:%S.") + f"{time.time() % 1:.6f}"[2:]
    patch = {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}}
    await kube.patch(api, kind, name, patch, namespace="flux-system")
    return token


async def applied(
    kube: KubeClient, name: str, started: float, say: Callable[[str], None], *, revision: str = ""
) -> None:
    got = await wait_ready(kube, KS_API, "Kustomization", name, started, say, revision=revision)
    obj = await kube.get(KS_API, "Kustomization", name, namespace="flux-system")
    entries = [e["id"].split("_") for e in obj["status"]["inventory"]["entries"]]
    objects = ", ".join(f"{kind}/{ns or '-'}/{oname}" for ns, oname, _g, kind in entries)
    say(f"  Kustomization/{name} applied {got} in {time.monotonic() - started:.1f}s: {objects}")


async def follow(
    kube: KubeClient, kind: str, name: str, kustomization: str, started: float, say: Callable[[str], None]
) -> None:
    """A source asked to reconcile now (the demo has no webhook for it), then its new artifact applied."""
    try:
        handled = await request_reconcile(kube, SOURCE_API, kind, name)
    except NotFound:  # created just now: its first reconcile is on its way
        handled = ""
    revision = await wait_ready(kube, SOURCE_API, kind, name, started, say, handled=handled)
    say(f"  {kind}/{name} stored {revision}")
    await applied(kube, kustomization, started, say, revision=revision)


async def oci(kube: KubeClient, env: dict[str, str], work: Path, say: Callable[[str], None]) -> None:
    """`gitops-mesh push artifact` publishes a directory in Flux's format; an OCIRepository follows its tag."""
    registry = env["OCI_REGISTRY"]
    content = work / "oci"
    content.mkdir(parents=True, exist_ok=True)
    revision = f"demo@sha1:{int(time.time())}"
    (content / "config.yaml").write_text(config_map("from-oci", f"oci://{registry}/demo/manifests", revision))
    url = f"oci://{registry}/demo/manifests:v1"
    say(f"gitops-mesh push artifact {url} --path={content} (Flux's OCI artifact format)")
    argv = [sys.executable, "-m", "gitops_mesh.cli", "push", "artifact", url, f"--path={content}"]
    argv += ["--source=https://example.com/demo.git", f"--revision={revision}", "--insecure-registry"]
    try:
        pushed = await commands.run(argv, env=dict(os.environ), timeout=120)
    except commands.CommandFailed as e:
        raise SystemExit(f"[demo] push artifact failed: {e.stderr.decode(errors='replace').strip()}") from None
    say(f"  {pushed.stdout.decode().strip().splitlines()[0]}")
    started = time.monotonic()
    await kube.apply(
        {
            "apiVersion": SOURCE_API,
            "kind": "OCIRepository",
            "metadata": {"name": "manifests", "namespace": "flux-system"},
            "spec": {
                "url": f"oci://{registry}/demo/manifests",
                "ref": {"tag": "v1"},
                "insecure": True,
                "interval": "10m",
            },
        },
        field_manager="gitops-mesh-demo",
        force=True,
    )
    await kube.apply(
        kustomization("from-oci", "OCIRepository", "manifests"), field_manager="gitops-mesh-demo", force=True
    )
    await follow(kube, "OCIRepository", "manifests", "from-oci", started, say)


async def bucket(kube: KubeClient, env: dict[str, str], say: Callable[[str], None]) -> None:
    """Manifests uploaded to an S3 bucket (SeaweedFS) with the server's own SDK; a Bucket follows its objects."""
    endpoint = env["S3_ENDPOINT"]
    async with AioSession().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=env["S3_ACCESS_KEY"],
        aws_secret_access_key=env["S3_SECRET_KEY"],
    ) as s3:
        existing = {b["Name"] for b in (await s3.list_buckets()).get("Buckets", [])}
        if BUCKET not in existing:
            await s3.create_bucket(Bucket=BUCKET)
        body = config_map("from-bucket", f"s3://{BUCKET}", time.strftime("%Y-%m-%dT%H:%M:%S"))
        await s3.put_object(Bucket=BUCKET, Key="config.yaml", Body=body.encode())
    say(f"uploaded config.yaml to s3://{BUCKET} at {endpoint}")
    started = time.monotonic()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "demo-s3", "namespace": "flux-system"},
        "stringData": {"accesskey": env["S3_ACCESS_KEY"], "secretkey": env["S3_SECRET_KEY"]},
    }
    spec = {
        "provider": "generic",
        "endpoint": endpoint.split("://", 1)[-1],
        "insecure": True,
        "bucketName": BUCKET,
        "region": "us-east-1",
        "interval": "10m",
        "secretRef": {"name": "demo-s3"},
    }
    for obj in (
        secret,
        {
            "apiVersion": SOURCE_API,
            "kind": "Bucket",
            "metadata": {"name": "manifests", "namespace": "flux-system"},
            "spec": spec,
        },
    ):
        await kube.apply(obj, field_manager="gitops-mesh-demo", force=True)
    await kube.apply(kustomization("from-bucket", "Bucket", "manifests"), field_manager="gitops-mesh-demo", force=True)
    await follow(kube, "Bucket", "manifests", "from-bucket", started, say)


async def generator(kube: KubeClient, say: Callable[[str], None]) -> None:
    """The demo's GitRepository split by an ArtifactGenerator: only apps/ becomes the ExternalArtifact
    `podinfo-apps`, which a Kustomization applies into its own namespace (a commit to infra/ leaves it alone)."""
    started = time.monotonic()
    await kube.apply(
        {
            "apiVersion": GENERATOR_API,
            "kind": "ArtifactGenerator",
            "metadata": {"name": "podinfo-split", "namespace": "flux-system"},
            "spec": {
                "sources": [{"alias": "podinfo", "kind": "GitRepository", "name": "podinfo"}],
                "artifacts": [
                    {
                        "name": "podinfo-apps",
                        "originRevision": "@podinfo",
                        "copy": [{"from": "@podinfo/apps/**", "to": "@artifact/"}],
                    }
                ],
            },
        },
        field_manager="gitops-mesh-demo",
        force=True,
    )
    revision = await wait_ready(kube, SOURCE_API, "ExternalArtifact", "podinfo-apps", started, say)
    say(f"  ArtifactGenerator/podinfo-split made ExternalArtifact/podinfo-apps {revision}")
    await kube.apply(
        kustomization("from-generator", "ExternalArtifact", "podinfo-apps", targetNamespace=TARGET_NS),
        field_manager="gitops-mesh-demo",
        force=True,
    )
    await applied(kube, "from-generator", started, say)


async def show_sources(
    kube: KubeClient, env: dict[str, str], work: Path, say: Callable[[str], None], notified: Callable[[float], None]
) -> None:
    """The OCI, S3 and generator sources, each to an applied Kustomization, then what the sink saw."""
    missing = [k for k in ("OCI_REGISTRY", "S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY") if not env.get(k)]
    if missing:
        raise SystemExit(f"[demo] the stack exports no {', '.join(missing)}: run `make stack-down stack-up`")
    wall = time.time()
    await kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TARGET_NS}},
        field_manager="gitops-mesh-demo",
        force=True,
    )
    await oci(kube, env, work, say)
    await bucket(kube, env, say)
    await generator(kube, say)
    await asyncio.sleep(1.0)
    notified(wall)
