"""A direct install (Helm renders, we apply and record) next to helm's own install of the same chart: the helm CLI
must read both the same way, the objects must carry the same metadata and field ownership, and helm must take a
directly installed release on from there (upgrade, uninstall)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gitops_mesh import commands
from gitops_mesh.helmcli import helm_env
from gitops_mesh.kube import KubeClient
from helm_controller.actions import ActionRequest, HelmActionFailed, HelmActions, KubeAccess
from helm_controller.post_renderers import PostRender
from helm_controller.releases import release_history

ORIGIN = {"helm.toolkit.fluxcd.io/name": "app", "helm.toolkit.fluxcd.io/namespace": "team-a"}
BOGUS = (
    "{{- if .Values.bogus }}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-bogus\n"
    "bogus: field\ndata: {}\n{{- end }}\n"
)
TWO_IN_ONE_FILE = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-one\ndata:\n  mode: '0777'\n  when: 2001-12-14\n  at: 1:20\n"
    "---\n# a comment between\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-two\n"
    "  labels: null\ndata: {}\n"
)
HOOK = (
    "{{- if .Values.hook }}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-hook\n"
    '  annotations:\n    "helm.sh/hook": post-install\ndata: {}\n{{- end }}\n'
)


async def helm(stack_env: dict[str, str], home: Path, *args: str) -> str:
    argv = [stack_env["HELM"], *args, "--kubeconfig", stack_env["KUBECONFIG"]]
    done = await commands.run(argv, env=helm_env(home), timeout=120)
    return done.stdout.decode()


async def make_chart(stack_env: dict[str, str], tmp_path: Path, name: str, extra: dict[str, str]) -> Path:
    """``helm create``'s chart (NOTES.txt, helpers, Deployment, Service, ServiceAccount) without its test hook."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    await helm(stack_env, home, "create", str(tmp_path / name))
    templates = tmp_path / name / "templates"
    for f in (templates / "tests").iterdir():
        f.unlink()
    (templates / "tests").rmdir()
    for file, text in extra.items():
        (templates / file).write_text(text)
    out = await helm(stack_env, home, "package", str(tmp_path / name), "-d", str(tmp_path))
    return Path(out.strip().rsplit(": ", 1)[1])


@pytest.fixture
async def chart(stack_env: dict[str, str], tmp_path: Path) -> Path:
    return await make_chart(stack_env, tmp_path, "tiny", {"bogus.yaml": BOGUS, "two.yaml": TWO_IN_ONE_FILE})


def request(
    kube: KubeClient, stack_env: dict[str, str], namespace: str, chart: Path, name: str, **values: Any
) -> ActionRequest:
    return ActionRequest(
        release_name=name,
        target_namespace=namespace,
        storage_namespace=namespace,
        chart_path=chart,
        values=values,
        timeout=60,
        max_history=5,
        kube=KubeAccess(Path(stack_env["KUBECONFIG"]), client=kube, server_validates_fields=True),
        labels={"team": "a"},
        post_render=PostRender((), labels=ORIGIN),
        secrets=frozenset({"hunter2-secret"}),
    )


def neutral(text: str, name: str) -> str:
    return text.replace(name, "RELEASE")


def without_times(doc: Any) -> Any:
    """``doc`` without the stamps two installs a second apart differ in, and the live objects (``--show-resources``
    content of ``helm status -o json``: uids and resourceVersions)."""
    if isinstance(doc, list):
        return [without_times(d) for d in doc]
    if isinstance(doc, dict):
        return {
            k: without_times(v)
            for k, v in doc.items()
            if k not in ("updated", "first_deployed", "last_deployed", "resources")
        }
    return doc


async def release_secret(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    found = await kube.list("v1", "Secret", namespace=namespace, label_selector=f"owner=helm,name={name}")
    assert len(found.items) == 1
    return found.items[0]


async def test_direct_install_reads_as_helms_own(
    stack_env: dict[str, str], kube: KubeClient, namespace: str, chart: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    direct = HelmActions(stack_env["HELM"], tmp_path / "direct")
    by_helm = HelmActions(stack_env["HELM"], tmp_path / "helm", direct_installs=False)
    ours = await direct.install(
        request(kube, stack_env, namespace, chart, "ours", replicaCount=2, password="hunter2-secret")
    )
    theirs = await by_helm.install(
        request(kube, stack_env, namespace, chart, "theirs", replicaCount=2, password="hunter2-secret")
    )
    assert direct.installs == {"direct": 1}
    assert by_helm.installs == {"helm": 1}
    assert (ours.version, ours.status, ours.apply_method, ours.description) == (
        1,
        "deployed",
        "ssa",
        "Install complete",
    )
    assert (ours.chart_name, ours.chart_version, ours.config) == (
        theirs.chart_name,
        theirs.chart_version,
        theirs.config,
    )
    assert ours.labels == theirs.labels == {"team": "a"}

    # What the helm CLI shows of each is the same, up to the release's name and times.
    ns = ["-n", namespace]
    for command in ("status {} -o json", "history {} -o json", "get values {} -o json", "get notes {}"):
        mine = await helm(stack_env, home, *command.format("ours").split(), *ns)
        other = await helm(stack_env, home, *command.format("theirs").split(), *ns)
        if command.endswith("json"):
            mine, other = (json.dumps(without_times(json.loads(x)), sort_keys=True) for x in (mine, other))
        assert mine, command
        assert neutral(mine, "ours") == neutral(other, "theirs"), command
    listed = {r["name"]: r for r in json.loads(await helm(stack_env, home, "list", *ns, "-o", "json"))}
    assert (listed["ours"]["status"], listed["ours"]["revision"]) == ("deployed", "1")

    # The storage objects carry the same labels and type.
    s_ours, s_theirs = await release_secret(kube, namespace, "ours"), await release_secret(kube, namespace, "theirs")
    assert s_ours["type"] == s_theirs["type"] == "helm.sh/release.v1"
    assert sorted(s_ours["metadata"]["labels"]) == sorted(s_theirs["metadata"]["labels"])

    # The objects: Helm's ownership metadata, Flux's origin labels, field manager "helm" applying.
    for obj in ours.manifest_documents():
        live = await kube.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], namespace=namespace)
        twin_name = obj["metadata"]["name"].replace("ours", "theirs")
        twin = await kube.get(obj["apiVersion"], obj["kind"], twin_name, namespace=namespace)
        for o, release in ((live, "ours"), (twin, "theirs")):
            meta = o["metadata"]
            assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
            assert {k: meta["labels"][k] for k in ORIGIN} == ORIGIN
            assert meta["annotations"]["meta.helm.sh/release-name"] == release
            assert meta["annotations"]["meta.helm.sh/release-namespace"] == namespace
        managers = [(m["manager"], m["operation"]) for m in live["metadata"]["managedFields"] if m["manager"] == "helm"]
        twin_managers = [
            (m["manager"], m["operation"]) for m in twin["metadata"]["managedFields"] if m["manager"] == "helm"
        ]
        assert managers == twin_managers == [("helm", "Apply")]
    assert "helm.toolkit.fluxcd.io/name" in await helm(stack_env, home, "get", "manifest", "ours", *ns)

    # helm takes the release on: an upgrade supersedes version 1, an uninstall removes its objects.
    upgraded = await direct.upgrade(request(kube, stack_env, namespace, chart, "ours", replicaCount=3))
    assert (upgraded.version, upgraded.status) == (2, "deployed")
    assert [(r.version, r.status) for r in await release_history(kube, namespace, "ours")] == [
        (2, "deployed"),
        (1, "superseded"),
    ]
    await direct.uninstall(
        request(kube, stack_env, namespace, chart, "ours"), keep_history=False, deletion_propagation="background"
    )
    assert await release_history(kube, namespace, "ours") == []
    deployments = await kube.list("apps/v1", "Deployment", namespace=namespace)
    assert [d["metadata"]["name"] for d in deployments.items] == ["theirs-tiny"]


async def test_a_refused_object_fails_the_release_as_helm_does(
    stack_env: dict[str, str], kube: KubeClient, namespace: str, chart: Path, tmp_path: Path
) -> None:
    direct = HelmActions(stack_env["HELM"], tmp_path / "direct")
    by_helm = HelmActions(stack_env["HELM"], tmp_path / "helm", direct_installs=False)
    failures = {}
    for run, name in ((direct, "ours"), (by_helm, "theirs")):
        with pytest.raises(HelmActionFailed) as failed:
            await run.install(request(kube, stack_env, namespace, chart, name, bogus=True))
        assert failed.value.reason == "InstallFailed"
        assert failed.value.release is not None
        assert failed.value.release.status == "failed"
        failures[name] = failed.value
    assert ".bogus: field not declared in schema" in str(failures["ours"])
    # The same record and message as helm's own, up to the release's name.
    assert neutral(str(failures["ours"]), "ours") == neutral(str(failures["theirs"]), "theirs")
    ours, theirs = failures["ours"].release, failures["theirs"].release
    assert ours is not None
    assert theirs is not None
    assert neutral(ours.description, "ours") == neutral(theirs.description, "theirs")
    # Like helm, every other object was still applied.
    names = {d["metadata"]["name"] for d in (await kube.list("apps/v1", "Deployment", namespace=namespace)).items}
    assert names == {"ours-tiny", "theirs-tiny"}


async def test_charts_with_hooks_or_crds_go_to_helm(
    stack_env: dict[str, str], kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    hooked = await make_chart(stack_env, tmp_path, "hooked", {"hook.yaml": HOOK})
    run = HelmActions(stack_env["HELM"], tmp_path / "work")
    await run.install(request(kube, stack_env, namespace, hooked, "hooked"))  # the hook renders nothing: still helm's
    assert run.installs == {"helm": 1}
    # A name with history is helm's to judge ("cannot re-use a name that is still in use").
    with pytest.raises(HelmActionFailed) as failed:
        await run.install(request(kube, stack_env, namespace, hooked, "hooked"))
    assert "still in use" in str(failed.value)
    assert run.installs == {"helm": 2}
