"""ArtifactGenerator end to end: a monorepo GitRepository split into ExternalArtifacts that Kustomizations follow.

Like fluxcd/flux2-kustomize-helm-example: one repository, an infrastructure part and an apps part, each applied
by its own Kustomization from its own ExternalArtifact. An app team's commit regenerates and redeploys the apps
artifact only; the infrastructure artifact keeps its revision, announces nothing and is not applied again.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from gitops_mesh.errors import NotFound
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.repos import Repo
from tests.integration.conftest import eventually
from tests.integration.source.generator.conftest import Generators

pytestmark = pytest.mark.stack

SRC = "source.toolkit.fluxcd.io/v1"
AG = "source.extensions.fluxcd.io/v1beta1"
KS = "kustomize.toolkit.fluxcd.io/v1"


def configmap(name: str, value: str) -> str:
    return f'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: "{value}"\n'


def gitrepo(namespace: str, url: str) -> KubeObject:
    return {
        "apiVersion": SRC,
        "kind": "GitRepository",
        "metadata": {"name": "monorepo", "namespace": namespace},
        "spec": {"url": url, "interval": "10m", "ref": {"branch": "main"}},
    }


def generator(namespace: str, **spec: Any) -> KubeObject:
    body: dict[str, Any] = {
        "sources": [{"alias": "repo", "kind": "GitRepository", "name": "monorepo"}],
        "artifacts": [
            {"name": "infrastructure", "copy": [{"from": "@repo/infrastructure/**", "to": "@artifact/"}]},
            {
                "name": "apps",
                "originRevision": "@repo",
                "copy": [{"from": "@repo/apps/**", "to": "@artifact/", "exclude": ["*.md"]}],
            },
        ],
    }
    body.update(spec)
    return {
        "apiVersion": AG,
        "kind": "ArtifactGenerator",
        "metadata": {"name": "split", "namespace": namespace},
        "spec": body,
    }


def kustomization(namespace: str, name: str) -> KubeObject:
    return {
        "apiVersion": KS,
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "interval": "10m",
            "path": "./",
            "prune": True,
            "targetNamespace": namespace,
            "sourceRef": {"kind": "ExternalArtifact", "name": name},
        },
    }


async def get(kube: KubeClient, api: str, kind: str, namespace: str, name: str) -> KubeObject:
    return await kube.get(api, kind, name, namespace=namespace)


async def ea(kube: KubeClient, namespace: str, name: str) -> KubeObject:
    return await get(kube, SRC, "ExternalArtifact", namespace, name)


async def value_of(kube: KubeClient, namespace: str, name: str) -> str | None:
    try:
        return str((await kube.get("v1", "ConfigMap", name, namespace=namespace))["data"]["value"])
    except NotFound:
        return None


async def files_of(url: str) -> dict[str, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        assert r.status == 200
        blob = await r.read()
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


async def until_applied(kube: KubeClient, namespace: str, name: str, revision: str) -> KubeObject:
    async def applied() -> bool:
        ks = await get(kube, KS, "Kustomization", namespace, name)
        return c.is_ready(ks) and ks["status"].get("lastAppliedRevision") == revision

    await eventually(applied, timeout=60)
    return await get(kube, KS, "Kustomization", namespace, name)


async def test_monorepo_split_redeploys_only_the_part_that_changed(
    kube: KubeClient,
    namespace: str,
    generators: Generators,
    git_http: GitServer,
    make_repo: Callable[..., Repo],
) -> None:
    repo = make_repo("main")
    first = repo.commit(
        {
            "infrastructure/controllers.yaml": configmap("infra", "1"),
            "apps/podinfo.yaml": configmap("podinfo", "1"),
            "apps/README.md": "not a manifest",
        }
    )
    repo.push()
    await kube.create(gitrepo(namespace, git_http.url(repo.name)))
    await kube.create(generator(namespace))
    await kube.create(kustomization(namespace, "infrastructure"))
    await kube.create(kustomization(namespace, "apps"))

    async def generated() -> bool:
        ag = await get(kube, AG, "ArtifactGenerator", namespace, "split")
        return c.is_ready(ag)

    await eventually(generated, timeout=60)
    ag = await get(kube, AG, "ArtifactGenerator", namespace, "split")
    assert c.get_reason(ag, "Ready") == "Succeeded"
    assert c.get_message(ag, "Ready") == "reconciliation succeeded, generated 2 artifact(s)"
    assert ag["metadata"]["finalizers"] == ["source.extensions.fluxcd.io/finalizer"]
    assert sorted(r["name"] for r in ag["status"]["inventory"]) == ["apps", "infrastructure"]
    assert ag["status"]["observedSourcesDigest"].startswith("sha256:")

    apps, infra = await ea(kube, namespace, "apps"), await ea(kube, namespace, "infrastructure")
    assert apps["metadata"]["labels"]["source.extensions.fluxcd.io/generator"] == ag["metadata"]["uid"]
    assert apps["spec"]["sourceRef"] == {
        "apiVersion": AG,
        "kind": "ArtifactGenerator",
        "name": "split",
        "namespace": namespace,
    }
    assert c.is_ready(apps)
    assert apps["status"]["artifact"]["revision"] == f"latest@{apps['status']['artifact']['digest']}"
    assert apps["status"]["artifact"]["metadata"] == {"org.opencontainers.image.revision": f"main@sha1:{first}"}
    assert await files_of(apps["status"]["artifact"]["url"]) == {"podinfo.yaml": configmap("podinfo", "1").encode()}
    assert await files_of(infra["status"]["artifact"]["url"]) == {"controllers.yaml": configmap("infra", "1").encode()}

    infra_revision = infra["status"]["artifact"]["revision"]
    await until_applied(kube, namespace, "infrastructure", infra_revision)
    await until_applied(kube, namespace, "apps", apps["status"]["artifact"]["revision"])
    assert await value_of(kube, namespace, "podinfo") == "1"
    assert await value_of(kube, namespace, "infra") == "1"

    # The app team commits: only the apps artifact is new, announced and applied again.
    second = repo.commit({"apps/podinfo.yaml": configmap("podinfo", "2"), "apps/README.md": "changed docs"})
    repo.push()
    await kube.patch(
        SRC,
        "GitRepository",
        "monorepo",
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "commit-2"}}},
        namespace=namespace,
    )

    async def redeployed() -> bool:
        return await value_of(kube, namespace, "podinfo") == "2"

    await eventually(redeployed, timeout=60)
    apps2, infra2 = await ea(kube, namespace, "apps"), await ea(kube, namespace, "infrastructure")
    assert apps2["status"]["artifact"]["revision"] != apps["status"]["artifact"]["revision"]
    assert apps2["status"]["artifact"]["metadata"] == {"org.opencontainers.image.revision": f"main@sha1:{second}"}
    assert infra2["status"]["artifact"] == infra["status"]["artifact"], "the infrastructure's artifact is untouched"
    ks_infra = await get(kube, KS, "Kustomization", namespace, "infrastructure")
    assert ks_infra["status"]["lastAppliedRevision"] == infra_revision

    ready_events = generators.bus.of("artifact-ready", "infrastructure")
    assert len(ready_events) == 1, "the infrastructure artifact was announced once, for its first revision"
    assert ready_events[0].involved_object.kind == "ExternalArtifact"
    assert len(generators.bus.of("artifact-ready", "apps")) == 2
    applied = [e for e in generators.bus.of("applied", "infrastructure") if e.revision == infra_revision]
    assert len(applied) == 1, "the infrastructure Kustomization did not apply again"

    # Deleting a generated ExternalArtifact regenerates it at once; deleting the generator removes its artifacts.
    await kube.delete(SRC, "ExternalArtifact", "apps", namespace=namespace)

    async def regenerated() -> bool:
        try:
            again = await ea(kube, namespace, "apps")
        except NotFound:
            return False
        return again["metadata"]["uid"] != apps2["metadata"]["uid"] and c.is_ready(again)

    await eventually(regenerated, timeout=30)
    await kube.delete(AG, "ArtifactGenerator", "split", namespace=namespace)

    async def collected() -> bool:
        for name in ("apps", "infrastructure"):
            try:
                await ea(kube, namespace, name)
                return False
            except NotFound:
                pass
        return not (generators.storage / "externalartifact" / namespace / "apps").exists()

    await eventually(collected, timeout=30)


async def test_bad_input_is_reported_and_the_previous_artifact_kept(
    kube: KubeClient,
    namespace: str,
    generators: Generators,
    git_http: GitServer,
    make_repo: Callable[..., Repo],
) -> None:
    repo = make_repo("main")
    repo.commit({"infrastructure/a.yaml": configmap("a", "1"), "apps/b.yaml": configmap("b", "1")})
    repo.push()
    await kube.create(gitrepo(namespace, git_http.url(repo.name)))
    await kube.create(generator(namespace))

    async def ready() -> bool:
        return c.is_ready(await get(kube, AG, "ArtifactGenerator", namespace, "split"))

    await eventually(ready, timeout=60)
    before = (await ea(kube, namespace, "apps"))["status"]["artifact"]

    # A copy from a path the repository does not have: BuildFailed, retried, a Warning and `failed` on the bus.
    broken = generator(namespace)["spec"]
    broken["artifacts"][1]["copy"] = [{"from": "@repo/missing/**", "to": "@artifact/"}]
    await kube.patch(AG, "ArtifactGenerator", "split", {"spec": broken}, namespace=namespace)

    async def failed() -> bool:
        ag = await get(kube, AG, "ArtifactGenerator", namespace, "split")
        return c.get_reason(ag, "Ready") == "BuildFailed"

    await eventually(failed, timeout=30)
    ag = await get(kube, AG, "ArtifactGenerator", namespace, "split")
    assert "apps build failed" in c.get_message(ag, "Ready")
    assert "no files match pattern 'missing/**' in source 'repo'" in c.get_message(ag, "Ready")
    assert not c.is_true(ag, "Stalled"), "a build failure is retried, not stalled"
    assert (await ea(kube, namespace, "apps"))["status"]["artifact"] == before, "the previous artifact is kept"

    async def announced() -> bool:
        return any(e.reason == "BuildFailed" for e in generators.bus.of("failed", "split"))

    await eventually(announced, timeout=30)
    events = (await kube.list("v1", "Event", namespace=namespace)).items
    assert any(
        e["involvedObject"]["kind"] == "ArtifactGenerator" and e["reason"] == "BuildFailed" and e["type"] == "Warning"
        for e in events
    )

    # A copy that climbs out of the source stalls (the spec itself must change), with source-watcher's reason.
    escaping = generator(namespace)["spec"]
    escaping["artifacts"][1]["copy"] = [{"from": "@repo/../../etc/**", "to": "@artifact/"}]
    await kube.patch(AG, "ArtifactGenerator", "split", {"spec": escaping}, namespace=namespace)

    async def stalled() -> bool:
        ag = await get(kube, AG, "ArtifactGenerator", namespace, "split")
        return c.is_true(ag, "Stalled") and c.get_reason(ag, "Ready") == "ValidationFailed"

    await eventually(stalled, timeout=30)
    assert (await ea(kube, namespace, "apps"))["status"]["artifact"] == before


async def test_path_pattern_generates_one_labelled_artifact_per_directory(
    kube: KubeClient,
    namespace: str,
    generators: Generators,
    git_http: GitServer,
    make_repo: Callable[..., Repo],
) -> None:
    repo = make_repo("main")
    repo.commit(
        {
            "apps/Auth/envs/prod/cm.yaml": configmap("auth", "prod"),
            "apps/web/envs/prod/cm.yaml": configmap("web", "prod"),
            "apps/web/envs/dev/cm.yaml": configmap("web", "dev"),
        }
    )
    repo.push()
    await kube.create(gitrepo(namespace, git_http.url(repo.name)))
    spec = {
        "pathPattern": "@repo/apps/{app}/envs/{env}",
        "artifacts": [
            {"name": "{app}-{env}", "copy": [{"from": "@repo/apps/{app}/envs/{env}/**", "to": "@artifact/"}]}
        ],
    }
    await kube.create(generator(namespace, **spec))

    async def ready() -> bool:
        return c.is_ready(await get(kube, AG, "ArtifactGenerator", namespace, "split"))

    await eventually(ready, timeout=60)
    ag = await get(kube, AG, "ArtifactGenerator", namespace, "split")
    assert sorted(r["name"] for r in ag["status"]["inventory"]) == ["auth-prod", "web-dev", "web-prod"]
    auth = await ea(kube, namespace, "auth-prod")
    assert auth["metadata"]["labels"]["app"] == "auth"
    assert auth["metadata"]["labels"]["env"] == "prod"
    assert await files_of(auth["status"]["artifact"]["url"]) == {"cm.yaml": configmap("auth", "prod").encode()}

    # A directory removed from the repository: its artifact is garbage-collected.
    repo.commit({"apps/web/envs/dev/cm.yaml": None})
    repo.push()
    await kube.patch(
        SRC,
        "GitRepository",
        "monorepo",
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "dev-gone"}}},
        namespace=namespace,
    )

    async def collected() -> bool:
        try:
            await ea(kube, namespace, "web-dev")
        except NotFound:
            return True
        return False

    await eventually(collected, timeout=60)
    ag = await get(kube, AG, "ArtifactGenerator", namespace, "split")
    assert sorted(r["name"] for r in ag["status"]["inventory"]) == ["auth-prod", "web-prod"]
