"""HelmRepository and HelmChart end to end through the real source-controller: real helm charts over real HTTP."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
import yaml

from gitops_mesh.errors import NotFound
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.gitserver import GitServer, TlsFiles, make_tls
from gitops_mesh_dev.repos import Repo
from tests.integration.conftest import eventually
from tests.integration.source.controller.conftest import Controller
from tests.integration.source.helm.repo import RepoServer, helm

pytestmark = [pytest.mark.stack, pytest.mark.timeout(120)]

API = "source.toolkit.fluxcd.io/v1"
VERSIONS = ("0.1.0", "0.2.0", "0.9.0", "1.0.0")


@pytest.fixture(autouse=True)
def helm_for_controller(stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The controller process packages charts with the stack's helm (it reads $HELM)."""
    monkeypatch.setenv("HELM", stack_env["HELM"])


@pytest.fixture(scope="session")
def helm_bin(stack_env: dict[str, str]) -> Path:
    return Path(stack_env["HELM"])


@pytest.fixture(scope="session")
def chart_src(tmp_path_factory: pytest.TempPathFactory, helm_bin: Path) -> Path:
    """``demo``, as ``helm create`` makes it, with a values file for valuesFiles."""
    work = tmp_path_factory.mktemp("demo-src")
    helm(helm_bin, "create", "demo", cwd=work)
    (work / "demo" / "values-prod.yaml").write_text("replicaCount: 5\n")
    return work / "demo"


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory, helm_bin: Path, chart_src: Path) -> Path:
    """``demo`` in every version of VERSIONS, indexed by ``helm repo index``."""
    repo = tmp_path_factory.mktemp("demo-repo")
    for version in VERSIONS:
        helm(helm_bin, "package", str(chart_src), "--version", version, "--destination", str(repo), cwd=repo.parent)
    helm(helm_bin, "repo", "index", str(repo), cwd=repo.parent)
    return repo


@pytest.fixture
async def served(packaged: Path, tmp_path: Path) -> AsyncIterator[RepoServer]:
    """A private copy of the repository (tests add versions and break its index), served over HTTP."""
    root = tmp_path / "charts"
    shutil.copytree(packaged, root)
    async with RepoServer(root) as server:
        yield server


@pytest.fixture(scope="session")
def helm_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("helm-tls"))


def secret(name: str, namespace: str, **data: str) -> KubeObject:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": data,
    }


def helmrepo(name: str, namespace: str, url: str, **spec: object) -> KubeObject:
    return {
        "apiVersion": API,
        "kind": "HelmRepository",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"url": url, "interval": "10m", **spec},
    }


def helmchart(name: str, namespace: str, chart: str, source_kind: str, source: str, **spec: object) -> KubeObject:
    return {
        "apiVersion": API,
        "kind": "HelmChart",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"chart": chart, "sourceRef": {"kind": source_kind, "name": source}, "interval": "10m", **spec},
    }


async def get(kube: KubeClient, kind: str, namespace: str, name: str) -> KubeObject:
    return await kube.get(API, kind, name, namespace=namespace)


async def request(kube: KubeClient, kind: str, namespace: str, name: str, token: str) -> None:
    annotations = {"reconcile.fluxcd.io/requestedAt": token}
    await kube.patch(API, kind, name, {"metadata": {"annotations": annotations}}, namespace=namespace)


async def wait_ready(kube: KubeClient, kind: str, namespace: str, name: str, revision: str | None = None) -> KubeObject:
    async def done() -> bool:
        obj = await get(kube, kind, namespace, name)
        artifact = (obj.get("status") or {}).get("artifact") or {}
        return c.is_ready(obj) and (revision is None or artifact.get("revision") == revision)

    await eventually(done, timeout=45)
    return await get(kube, kind, namespace, name)


async def wait_failed(kube: KubeClient, kind: str, namespace: str, name: str, reason: str) -> KubeObject:
    async def done() -> bool:
        obj = await get(kube, kind, namespace, name)
        return c.is_false(obj, "Ready") and c.get_reason(obj, "Ready") == reason

    await eventually(done, timeout=45)
    return await get(kube, kind, namespace, name)


async def download(url: str) -> bytes:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        assert r.status == 200, url
        return await r.read()


def sha256(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def chart_files(blob: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


async def gone(kube: KubeClient, kind: str, namespace: str, name: str) -> bool:
    try:
        await get(kube, kind, namespace, name)
    except NotFound:
        return True
    return False


async def test_repository_index_and_charts_follow_new_versions(
    kube: KubeClient, namespace: str, controller: Controller, served: RepoServer, helm_bin: Path, chart_src: Path
) -> None:
    await kube.create(helmrepo("charts", namespace, served.url))
    repo = await wait_ready(kube, "HelmRepository", namespace, "charts")
    index = (served.root / "index.yaml").read_bytes()
    artifact = repo["status"]["artifact"]
    hexdigest = hashlib.sha256(index).hexdigest()
    assert artifact["revision"] == f"sha256:{hexdigest}"
    assert artifact["path"] == f"helmrepository/{namespace}/charts/index-{hexdigest}.yaml"
    blob = await download(artifact["url"])
    assert blob == index
    assert artifact["digest"] == sha256(blob)
    assert artifact["size"] == len(blob)
    assert repo["status"]["url"].endswith(f"/helmrepository/{namespace}/charts/index.yaml")
    assert await download(repo["status"]["url"]) == index
    assert c.get_message(repo, "Ready") == f"stored artifact: revision 'sha256:{hexdigest}'"
    assert c.is_true(repo, "ArtifactInStorage")

    # The chart: the newest version in the range, the repository's own archive byte for byte.
    await kube.create(helmchart("demo", namespace, "demo", "HelmRepository", "charts", version=">=0.1.0 <1.0.0"))
    chart = await wait_ready(kube, "HelmChart", namespace, "demo", "0.9.0")
    chart_artifact = chart["status"]["artifact"]
    assert chart_artifact["path"] == f"helmchart/{namespace}/demo/demo-0.9.0.tgz"
    tgz = await download(chart_artifact["url"])
    assert tgz == (served.root / "demo-0.9.0.tgz").read_bytes()
    assert chart_artifact["digest"] == sha256(tgz)
    assert chart["status"]["observedChartName"] == "demo"
    assert chart["status"]["observedSourceArtifactRevision"] == artifact["revision"]
    assert c.get_reason(chart, "Ready") == "ChartPullSucceeded"
    assert c.get_message(chart, "Ready") == "pulled 'demo' chart with version '0.9.0'"

    # An unchanged index is a no-op: same artifact, nothing announced again.
    await request(kube, "HelmRepository", namespace, "charts", "a")

    async def handled() -> bool:
        obj = await get(kube, "HelmRepository", namespace, "charts")
        return bool(obj["status"].get("lastHandledReconcileAt") == "a")

    await eventually(handled)
    assert (await get(kube, "HelmRepository", namespace, "charts"))["status"]["artifact"] == artifact

    # A new version in the index: one request on the repository, and the chart follows by itself.
    helm(helm_bin, "package", str(chart_src), "--version", "0.9.5", "--destination", str(served.root), cwd=served.root)
    helm(helm_bin, "repo", "index", str(served.root), cwd=served.root)
    await request(kube, "HelmRepository", namespace, "charts", "b")
    chart = await wait_ready(kube, "HelmChart", namespace, "demo", "0.9.5")
    assert await download(chart["status"]["artifact"]["url"]) == (served.root / "demo-0.9.5.tgz").read_bytes()
    repo = await get(kube, "HelmRepository", namespace, "charts")
    assert repo["status"]["artifact"]["revision"] == sha256((served.root / "index.yaml").read_bytes())
    assert chart["status"]["observedSourceArtifactRevision"] == repo["status"]["artifact"]["revision"]

    async def announced() -> bool:
        return (
            len(controller.events_of("artifact-ready", "charts")) == 2
            and len(controller.events_of("artifact-ready", "demo")) == 2
        )

    await eventually(announced)
    assert [e.revision for e in controller.events_of("artifact-ready", "demo")] == ["0.9.0", "0.9.5"]
    first = controller.events_of("artifact-ready", "charts")[0]
    assert first.revision == artifact["revision"]
    assert first.artifact is not None
    assert first.artifact.digest == artifact["digest"]
    assert not controller.events_of("failed", "charts")

    # valuesFiles: repackaged with the merged values, version <version>+<generation>.
    await kube.create(
        helmchart(
            "prod", namespace, "demo", "HelmRepository", "charts", version="0.2.0", valuesFiles=["values-prod.yaml"]
        )
    )
    prod = await wait_ready(kube, "HelmChart", namespace, "prod", "0.2.0+1")
    values = yaml.safe_load(chart_files(await download(prod["status"]["artifact"]["url"]))["demo/values.yaml"])
    assert values == {"replicaCount": 5}
    assert prod["status"]["observedValuesFiles"] == ["values-prod.yaml"]
    assert c.get_reason(prod, "Ready") == "ChartPackageSucceeded"

    # Deleting a chart removes its artifacts.
    stored = controller.storage / "helmchart" / namespace / "demo"
    assert (stored / "demo-0.9.5.tgz").exists()
    await kube.delete(API, "HelmChart", "demo", namespace=namespace)
    await eventually(lambda: gone(kube, "HelmChart", namespace, "demo"))
    assert not stored.exists()


async def test_repository_and_chart_errors(
    kube: KubeClient, namespace: str, controller: Controller, served: RepoServer
) -> None:
    await kube.create(helmrepo("good", namespace, served.url))
    await kube.create(helmrepo("missing", namespace, served.url + "/nope"))
    await kube.create(helmrepo("oci", namespace, "oci://registry.example.com/charts", type="oci"))
    await kube.create(helmchart("unknown-version", namespace, "demo", "HelmRepository", "good", version="5.x"))
    await kube.create(helmchart("unknown-chart", namespace, "dmeo", "HelmRepository", "good"))
    await kube.create(helmchart("bucket", namespace, "demo", "Bucket", "b"))

    missing = await wait_failed(kube, "HelmRepository", namespace, "missing", "Failed")
    message = c.get_message(missing, "Ready")
    assert f"{served.url}/nope/index.yaml" in message
    assert "404" in message
    assert "spec.url" in message
    assert c.is_true(missing, "FetchFailed")
    assert "artifact" not in missing["status"]

    oci = await wait_ready(kube, "HelmRepository", namespace, "oci")
    assert c.get_message(oci, "Ready") == "Helm repository is ready"
    assert "artifact" not in oci["status"]
    assert "url" not in oci["status"]

    # Chart and version not found: Flux's persistent build errors, Stalled, saying what there is.
    unknown = await wait_failed(kube, "HelmChart", namespace, "unknown-version", "InvalidChartReference")
    assert c.is_true(unknown, "Stalled")
    assert "available: 1.0.0, 0.9.0, 0.2.0, 0.1.0" in c.get_message(unknown, "Ready")
    unknown = await wait_failed(kube, "HelmChart", namespace, "unknown-chart", "InvalidChartReference")
    assert "did you mean demo" in c.get_message(unknown, "Ready")
    assert "charts in the index: demo" in c.get_message(unknown, "Ready")
    # A Bucket source that does not exist (yet): waited for, not stalled; its creation wakes the chart.
    bucket = await wait_failed(kube, "HelmChart", namespace, "bucket", "DependencyNotReady")
    assert c.get_message(bucket, "Ready") == f"Bucket '{namespace}/b' not found"
    assert c.get_reason(bucket, "FetchFailed") == "SourceUnavailable"
    assert not c.is_true(bucket, "Stalled")

    # A malformed index fails clearly; the artifact fetched before stays stored and served.
    good = await wait_ready(kube, "HelmRepository", namespace, "good")
    before = good["status"]["artifact"]
    (served.root / "index.yaml").write_text("apiVersion: v1\nentries:\n  demo: [\n")
    await request(kube, "HelmRepository", namespace, "good", "broken")
    good = await wait_failed(kube, "HelmRepository", namespace, "good", "IndexationFailed")
    message = c.get_message(good, "Ready")
    assert message.startswith("failed to load Helm repository from index YAML:")
    assert "line 4" in message
    assert good["status"]["artifact"] == before
    assert sha256(await download(before["url"])) == before["digest"]

    async def announced() -> bool:
        return bool(controller.events_of("failed", "missing")) and bool(controller.events_of("failed", "good"))

    await eventually(announced)
    assert controller.events_of("failed", "good")[0].reason == "IndexationFailed"
    assert controller.events_of("failed", "missing")[0].severity == "error"

    # A chart of a repository that is not Ready waits for it.
    await kube.create(helmchart("waiting", namespace, "demo", "HelmRepository", "good"))
    waiting = await wait_failed(kube, "HelmChart", namespace, "waiting", "DependencyNotReady")
    assert "HelmRepository" in c.get_message(waiting, "Ready")
    assert "good" in c.get_message(waiting, "Ready")


async def test_repository_over_https_with_credentials(
    kube: KubeClient, namespace: str, controller: Controller, packaged: Path, tmp_path: Path, helm_tls: TlsFiles
) -> None:
    root = tmp_path / "private"
    shutil.copytree(packaged, root)
    async with RepoServer(root, tls=helm_tls, username="flux", password="pw-s3cret") as server:
        await kube.create(secret("creds", namespace, username="flux", password="pw-s3cret"))
        await kube.create(secret("wrong", namespace, username="flux", password="pw-wrong"))
        await kube.create(secret("ca", namespace, **{"ca.crt": helm_tls.ca_pem.decode()}))
        await kube.create(
            helmrepo("private", namespace, server.url, secretRef={"name": "creds"}, certSecretRef={"name": "ca"})
        )
        await kube.create(
            helmrepo("refused", namespace, server.url, secretRef={"name": "wrong"}, certSecretRef={"name": "ca"})
        )
        await kube.create(helmrepo("untrusted", namespace, server.url, secretRef={"name": "creds"}))
        await kube.create(helmchart("private", namespace, "demo", "HelmRepository", "private", version="1.0.0"))

        chart = await wait_ready(kube, "HelmChart", namespace, "private", "1.0.0")
        assert await download(chart["status"]["artifact"]["url"]) == (root / "demo-1.0.0.tgz").read_bytes()
        pulls = [header for path, header in server.auth_log if path == "/demo-1.0.0.tgz"]
        assert pulls
        assert all(header and header.startswith("Basic ") for header in pulls)

        refused = await wait_failed(kube, "HelmRepository", namespace, "refused", "AuthenticationFailed")
        message = c.get_message(refused, "Ready")
        assert "401" in message
        assert "secretRef" in message
        assert "pw-wrong" not in message
        untrusted = await wait_failed(kube, "HelmRepository", namespace, "untrusted", "Failed")
        assert "certSecretRef ca.crt" in c.get_message(untrusted, "Ready")


CHART_YAML = "apiVersion: v2\nname: app\nversion: 0.1.0\n"
TEMPLATE = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  color: {{ .Values.color }}\n"
)


async def test_chart_from_git_repository(
    kube: KubeClient,
    namespace: str,
    controller: Controller,
    git_http: GitServer,
    make_repo: Callable[..., Repo],
) -> None:
    source = make_repo("main")
    first = source.commit(
        {
            "charts/app/Chart.yaml": CHART_YAML,
            "charts/app/values.yaml": "color: blue\n",
            "charts/app/templates/cm.yaml": TEMPLATE,
            "env/prod.yaml": "color: red\n",
        }
    )
    source.push()
    await kube.create(
        {
            "apiVersion": API,
            "kind": "GitRepository",
            "metadata": {"name": "src", "namespace": namespace},
            "spec": {"url": git_http.url(source.name), "interval": "10m", "ref": {"branch": "main"}},
        }
    )
    await kube.create(helmchart("app", namespace, "./charts/app", "GitRepository", "src"))
    await kube.create(
        helmchart(
            "app-rev",
            namespace,
            "charts/app",
            "GitRepository",
            "src",
            reconcileStrategy="Revision",
            valuesFiles=["charts/app/values.yaml", "env/prod.yaml"],
        )
    )

    app = await wait_ready(kube, "HelmChart", namespace, "app", "0.1.0")
    files = chart_files(await download(app["status"]["artifact"]["url"]))
    assert yaml.safe_load(files["app/Chart.yaml"])["version"] == "0.1.0"
    assert files["app/templates/cm.yaml"].decode() == TEMPLATE
    assert app["status"]["artifact"]["path"] == f"helmchart/{namespace}/app/app-0.1.0.tgz"
    assert c.get_message(app, "Ready") == "packaged 'app' chart with version '0.1.0'"
    rev = await wait_ready(kube, "HelmChart", namespace, "app-rev", f"0.1.0+{first[:12]}.1")
    files = chart_files(await download(rev["status"]["artifact"]["url"]))
    assert yaml.safe_load(files["app/values.yaml"]) == {"color": "red"}
    assert rev["status"]["observedValuesFiles"] == ["charts/app/values.yaml", "env/prod.yaml"]

    # A new commit: the Revision chart follows at once; the ChartVersion one keeps its artifact.
    second = source.commit({"charts/app/values.yaml": "color: green\n"})
    source.push()
    await request(kube, "GitRepository", namespace, "src", "b")
    await wait_ready(kube, "HelmChart", namespace, "app-rev", f"0.1.0+{second[:12]}.1")

    async def observed() -> bool:
        obj = await get(kube, "HelmChart", namespace, "app")
        return bool(obj["status"]["observedSourceArtifactRevision"] == f"main@sha1:{second}")

    await eventually(observed)
    kept = await get(kube, "HelmChart", namespace, "app")
    assert kept["status"]["artifact"] == app["status"]["artifact"]
    assert [e.revision for e in controller.events_of("artifact-ready", "app")] == ["0.1.0"]

    # A version bump is a new artifact.
    source.commit({"charts/app/Chart.yaml": CHART_YAML.replace("0.1.0", "0.2.0")})
    source.push()
    await request(kube, "GitRepository", namespace, "src", "c")
    await wait_ready(kube, "HelmChart", namespace, "app", "0.2.0")
