"""GitRepository end to end through the real source-controller process: git → artifact → HTTP → Kafka."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable

import aiohttp
import pytest

from gitops_mesh.errors import NotFound
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.repos import Repo
from tests.integration.conftest import eventually
from tests.integration.source.controller.conftest import Controller

pytestmark = pytest.mark.stack

API = "source.toolkit.fluxcd.io/v1"


def gitrepo(name: str, namespace: str, url: str, **spec: object) -> KubeObject:
    return {
        "apiVersion": API,
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"url": url, "interval": "5m", "ref": {"branch": "main"}, **spec},
    }


async def get(kube: KubeClient, namespace: str, name: str) -> KubeObject:
    return await kube.get(API, "GitRepository", name, namespace=namespace)


async def wait_revision(kube: KubeClient, namespace: str, name: str, commit: str) -> KubeObject:
    async def done() -> bool:
        obj = await get(kube, namespace, name)
        return c.is_ready(obj) and obj["status"]["artifact"]["revision"] == f"main@sha1:{commit}"

    await eventually(done, timeout=60)
    return await get(kube, namespace, name)


async def download(url: str) -> bytes:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        assert r.status == 200
        return await r.read()


def members(blob: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


async def test_artifact_stored_served_announced_and_updated(
    kube: KubeClient,
    namespace: str,
    controller: Controller,
    git_http: GitServer,
    make_repo: Callable[..., Repo],
) -> None:
    repo = make_repo("main")
    first = repo.commit(
        {
            "deploy/app.yaml": "kind: ConfigMap\n",
            "deploy/logo.png": b"\x89PNG",
            "notes/secret.txt": "x",
            ".sourceignore": "notes/\n",
        }
    )
    repo.push()
    await kube.create(gitrepo("app", namespace, git_http.url(repo.name)))
    obj = await wait_revision(kube, namespace, "app", first)

    artifact = obj["status"]["artifact"]
    assert artifact["path"] == f"gitrepository/{namespace}/app/{first}.tar.gz"
    assert artifact["url"] == f"http://127.0.0.1:{controller.storage_port}/{artifact['path']}"
    blob = await download(artifact["url"])
    assert artifact["digest"] == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert artifact["size"] == len(blob)
    files = members(blob)
    assert files["deploy/app.yaml"] == b"kind: ConfigMap\n"
    assert "notes/secret.txt" not in files  # .sourceignore
    assert "deploy/logo.png" in files  # a .sourceignore replaces Flux's default exclusions, as in Flux
    assert c.is_true(obj, "ArtifactInStorage")
    assert obj["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]
    latest = artifact["url"].rsplit("/", 1)[0] + "/latest.tar.gz"  # Flux v1 keeps no status.url; we keep the link
    assert await download(latest) == blob

    async def announced() -> bool:
        return len(controller.events_of("artifact-ready", "app")) == 1

    await eventually(announced)
    event = controller.events_of("artifact-ready", "app")[0]
    assert event.revision == f"main@sha1:{first}"
    assert event.artifact is not None
    assert event.artifact.digest == artifact["digest"]
    assert event.reason == "NewArtifact"

    # A reconcile request with nothing new changes nothing and announces nothing.
    fetches = git_http.fetches(repo.name)
    await kube.patch(
        API,
        "GitRepository",
        "app",
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "a"}}},
        namespace=namespace,
    )

    async def handled() -> bool:
        return bool((await get(kube, namespace, "app"))["status"].get("lastHandledReconcileAt") == "a")

    await eventually(handled)
    assert git_http.fetches(repo.name) == fetches, "an unchanged revision must not be fetched again"

    second = repo.commit({"deploy/app.yaml": "kind: Secret\n"})
    repo.push()
    await kube.patch(
        API,
        "GitRepository",
        "app",
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "b"}}},
        namespace=namespace,
    )
    obj = await wait_revision(kube, namespace, "app", second)
    assert members(await download(obj["status"]["artifact"]["url"]))["deploy/app.yaml"] == b"kind: Secret\n"

    async def two() -> bool:
        return len(controller.events_of("artifact-ready", "app")) == 2

    await eventually(two)
    assert len(controller.events_of("artifact-ready", "app")) == 2


async def test_unreachable_remote_fails_clearly_and_deletion_cleans_storage(
    kube: KubeClient,
    namespace: str,
    controller: Controller,
    git_http: GitServer,
    make_repo: Callable[..., Repo],
) -> None:
    await kube.create(gitrepo("down", namespace, "http://127.0.0.1:9/nothing.git"))

    async def failed() -> bool:
        obj = await get(kube, namespace, "down")
        return c.is_false(obj, "Ready") and c.is_true(obj, "FetchFailed")

    await eventually(failed, timeout=60)
    obj = await get(kube, namespace, "down")
    assert c.get_reason(obj, "Ready") == "GitOperationFailed"
    assert "127.0.0.1:9" in c.get_message(obj, "Ready")

    async def announced() -> bool:
        return bool(controller.events_of("failed", "down"))

    await eventually(announced)
    assert controller.events_of("failed", "down")[0].severity == "error"

    repo = make_repo("main")
    commit = repo.commit({"a.yaml": "a: 1\n"})
    repo.push()
    await kube.create(gitrepo("gone", namespace, git_http.url(repo.name)))
    await wait_revision(kube, namespace, "gone", commit)
    stored = controller.storage / "gitrepository" / namespace / "gone"
    assert (stored / f"{commit}.tar.gz").exists()
    await kube.delete(API, "GitRepository", "gone", namespace=namespace)

    async def deleted() -> bool:
        try:
            await get(kube, namespace, "gone")
        except NotFound:
            return True
        return False

    await eventually(deleted)
    assert not stored.exists()


async def test_missing_secret_then_created(
    kube: KubeClient,
    namespace: str,
    controller: Controller,
    git_http: GitServer,
    make_repo: Callable[..., Repo],
) -> None:
    repo = make_repo("main")
    commit = repo.commit({"a.yaml": "a: 1\n"})
    repo.push()
    await kube.create(gitrepo("auth", namespace, git_http.url(repo.name), secretRef={"name": "creds"}))

    async def waiting() -> bool:
        obj = await get(kube, namespace, "auth")
        return c.is_false(obj, "Ready") and "secret" in c.get_message(obj, "Ready")

    await eventually(waiting, timeout=30)
    assert "creds" in c.get_message(await get(kube, namespace, "auth"), "Ready")
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": namespace},
            "stringData": {"username": "u", "password": "p"},
        }
    )
    await wait_revision(kube, namespace, "auth", commit)


async def test_a_labelled_secret_created_later_wakes_the_repository_at_once(
    kube: KubeClient,
    namespace: str,
    controller: Controller,
    git_http: GitServer,
    make_repo: Callable[..., Repo],
) -> None:
    """Flux's ``reconcile.fluxcd.io/watch: Enabled``: the Secret's arrival, not the next retry, reconciles."""
    repo = make_repo("main")
    commit = repo.commit({"a.yaml": "a: 1\n"})
    repo.push()
    await kube.create(gitrepo("watched", namespace, git_http.url(repo.name), secretRef={"name": "late"}))

    def next_retry() -> float:
        retries = [
            float(str(line.get("retry_in")))
            for line in controller.log_lines()
            if line.get("event") == "reconcile failed; retrying" and "watched" in str(line.get("key"))
        ]
        return retries[-1] if retries else 0.0

    async def backed_off() -> bool:
        return next_retry() >= 20

    # The queue's backoff doubles per failure: wait until the next retry is far away.
    await eventually(backed_off, timeout=60, interval=0.5)
    obj = await get(kube, namespace, "watched")
    assert not c.is_stalled(obj)
    assert c.is_false(obj, "Ready")
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "late", "namespace": namespace, "labels": {"reconcile.fluxcd.io/watch": "Enabled"}},
            "stringData": {"username": "u", "password": "p"},
        }
    )

    async def ready() -> bool:
        return c.is_ready(await get(kube, namespace, "watched"))

    await eventually(ready, timeout=10)  # well before the retry that was 20 s or more away
    assert (await get(kube, namespace, "watched"))["status"]["artifact"]["revision"].endswith(commit)
