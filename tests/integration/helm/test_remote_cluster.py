"""HelmRelease spec.kubeConfig: the release made on a second cluster, the HelmRelease and its status on this one.

source- and helm-controller run as processes against the stack; the second cluster (etcd + kube-apiserver,
no kwok: objects are stored, nothing rolls out, so waits are disabled) is reached only through the kubeconfig
in a Secret beside the HelmRelease. `helm` with the second cluster's kubeconfig is the judge of where the
release is; the stack's own Helm storage must stay empty.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from gitops_mesh import commands
from gitops_mesh.bus.topics import Topics, ensure_topics
from gitops_mesh.errors import KubeUnavailable, NotFound
from gitops_mesh.helmcli import helm_env
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.kube.remote import RemoteOptions
from gitops_mesh_dev.chartrepo import PODINFO_CHART, ChartRepo
from gitops_mesh_dev.cluster import SecondCluster
from gitops_mesh_dev.mesh import Controller, mesh_for
from helm_controller.releases import release_history
from helm_controller.target import TargetClusters

HR = "helm.toolkit.fluxcd.io/v2"
SRC = "source.toolkit.fluxcd.io/v1"
WATCH = {"reconcile.fluxcd.io/watch": "Enabled"}


@pytest.fixture
async def controllers(
    stack_env: dict[str, str], namespace: str, unique: str, tmp_path: Path
) -> AsyncIterator[Controller]:
    """source- and helm-controller for this namespace, on topics of their own."""
    topics = Topics(f"{unique}.")
    await ensure_topics(stack_env["KAFKA_BOOTSTRAP"], topics.all(), partitions=1)
    mesh = mesh_for(stack_env, topics, namespace, tmp_path, f"{unique}-nc", helm=True)
    assert mesh.helm is not None
    started = [mesh.source, mesh.helm]
    for ctl in started:
        ctl.start()
    try:
        for ctl in started:
            await ctl.ready()
        yield mesh.helm
    finally:
        for ctl in started:
            await ctl.stop()


@pytest.fixture
async def repo(stack_env: dict[str, str], tmp_path: Path) -> AsyncIterator[ChartRepo]:
    async with ChartRepo(tmp_path / "charts", helm=stack_env["HELM"]) as r:
        await r.add(PODINFO_CHART, version="1.0.0", app_version="6.0.0")
        await r.add(PODINFO_CHART, version="1.0.1", app_version="6.0.1")
        yield r


async def helm_json(stack_env: dict[str, str], home: Path, kubeconfig: Path | str, *args: str) -> Any:
    argv = [stack_env["HELM"], *args, "--kubeconfig", str(kubeconfig), "-o", "json"]
    done = await commands.run(argv, env=helm_env(home), timeout=60)
    return json.loads(done.stdout.decode())


def condition(obj: KubeObject, type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


async def until(ctl: Controller, what: str, check: Callable[[], Awaitable[Any]], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await check()
        if got:
            return got
        await asyncio.sleep(0.2)
    raise AssertionError(f"never {what}\n{ctl.tail(4000)}")


def kubeconfig_secret(namespace: str, data: bytes, *, key: str = "value.yaml") -> KubeObject:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "remote", "namespace": namespace, "labels": WATCH},
        "stringData": {key: data.decode()},
    }


def helmrelease(namespace: str, version: str = "1.0.0") -> KubeObject:
    return {
        "apiVersion": HR,
        "kind": "HelmRelease",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            # Long: only the Secret's watch label, the chart's new artifact or an edit can wake it in time.
            "interval": "10m",
            "timeout": "1m",
            "kubeConfig": {"secretRef": {"name": "remote"}},
            "chart": {
                "spec": {
                    "chart": "podinfo",
                    "version": version,
                    "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                    "interval": "10m",
                }
            },
            # The namespace does not exist on the second cluster: helm creates it there.
            "install": {"createNamespace": True, "disableWait": True},
            "upgrade": {"disableWait": True},
        },
    }


async def helm_repository(kube: KubeClient, namespace: str, repo: ChartRepo) -> None:
    await kube.create(
        {
            "apiVersion": SRC,
            "kind": "HelmRepository",
            "metadata": {"name": "charts", "namespace": namespace},
            "spec": {"url": repo.url, "interval": "10m"},
        }
    )


async def test_install_upgrade_and_uninstall_land_on_the_remote_cluster(
    kube: KubeClient,
    remote_kube: KubeClient,
    second_cluster: SecondCluster,
    stack_env: dict[str, str],
    namespace: str,
    repo: ChartRepo,
    controllers: Controller,
    tmp_path: Path,
) -> None:
    home = tmp_path / "helm-home"
    remote_helm = second_cluster.kubeconfig
    await helm_repository(kube, namespace, repo)
    await kube.create(kubeconfig_secret(namespace, second_cluster.kubeconfig_bytes))
    await kube.create(helmrelease(namespace))

    async def hr_when(check: Callable[[KubeObject], bool]) -> KubeObject | None:
        obj = await kube.get(HR, "HelmRelease", "web", namespace=namespace)
        return obj if check(obj) else None

    def ready_at(version: str) -> Callable[[KubeObject], bool]:
        def check(o: KubeObject) -> bool:
            history = (o.get("status") or {}).get("history") or [{}]
            return condition(o, "Ready").get("status") == "True" and history[0].get("chartVersion") == version

        return check

    obj = await until(controllers, "installed on the second cluster", lambda: hr_when(ready_at("1.0.0")))
    assert condition(obj, "Released")["reason"] == "InstallSucceeded"
    (listed,) = await helm_json(stack_env, home, remote_helm, "list", "-n", namespace)
    assert (listed["name"], int(listed["revision"]), listed["status"], listed["chart"]) == (
        "web",
        1,
        "deployed",
        "podinfo-1.0.0",
    )
    assert obj["status"]["history"][0]["version"] == 1
    # The objects and the namespace are the second cluster's; nothing of the release is on this one.
    await remote_kube.get("v1", "Namespace", namespace)
    await remote_kube.get("apps/v1", "Deployment", "web-podinfo", namespace=namespace)
    with pytest.raises(NotFound):
        await kube.get("apps/v1", "Deployment", "web-podinfo", namespace=namespace)
    assert await release_history(kube, namespace, "web") == []
    assert await helm_json(stack_env, home, stack_env["KUBECONFIG"], "list", "-n", namespace) == []
    # The HelmRelease's own objects stay here: its HelmChart and status.
    await kube.get(SRC, "HelmChart", f"{namespace}-web", namespace=namespace)

    # Upgrade: revision 2 on the second cluster.
    await kube.patch(HR, "HelmRelease", "web", {"spec": {"chart": {"spec": {"version": "1.0.1"}}}}, namespace=namespace)
    obj = await until(controllers, "upgraded on the second cluster", lambda: hr_when(ready_at("1.0.1")))
    assert condition(obj, "Released")["reason"] == "UpgradeSucceeded"
    entries = await helm_json(stack_env, home, remote_helm, "history", "web", "-n", namespace)
    assert [(e["revision"], e["status"], e["chart"]) for e in entries] == [
        (1, "superseded", "podinfo-1.0.0"),
        (2, "deployed", "podinfo-1.0.1"),
    ]

    # Deletion uninstalls the release where it lives.
    await kube.delete(HR, "HelmRelease", "web", namespace=namespace)

    async def gone() -> bool:
        try:
            await kube.get(HR, "HelmRelease", "web", namespace=namespace)
        except NotFound:
            return True
        return False

    await until(controllers, "the HelmRelease deleted", gone)
    assert await helm_json(stack_env, home, remote_helm, "list", "-n", namespace) == []
    assert await release_history(remote_kube, namespace, "web") == []


async def test_a_refused_or_unreachable_kubeconfig_is_ready_false_until_the_secret_is_fixed(
    kube: KubeClient,
    second_cluster: SecondCluster,
    stack_env: dict[str, str],
    namespace: str,
    repo: ChartRepo,
    controllers: Controller,
    tmp_path: Path,
) -> None:
    good = orjson.loads(second_cluster.kubeconfig_bytes)
    token = good["users"][0]["user"]["token"]
    with_exec = {**good, "users": [{"name": "admin", "user": {"exec": {"command": "/bin/sh", "args": ["-c", "id"]}}}]}
    await helm_repository(kube, namespace, repo)
    await kube.create(kubeconfig_secret(namespace, orjson.dumps(with_exec), key="value"))
    await kube.create(helmrelease(namespace))

    async def not_ready_with(text: str) -> dict[str, Any] | None:
        obj = await kube.get(HR, "HelmRelease", "web", namespace=namespace)
        ready = condition(obj, "Ready")
        return ready if ready.get("status") == "False" and text in str(ready.get("message")) else None

    # exec would run a program on the controller's host: refused, named, and nothing run.
    ready = await until(controllers, "refused the exec plugin", lambda: not_ready_with("--insecure-kubeconfig-exec"))
    assert ready["reason"] == "RESTClientError"
    assert ready["message"].startswith(f"KubeConfig secret '{namespace}/remote' key 'value': user 'admin': exec")
    assert "/bin/sh" not in ready["message"]

    async def warned(text: str) -> bool:
        events = await kube.list("v1", "Event", namespace=namespace)
        return any(
            e["type"] == "Warning"
            and e["reason"] == "RESTClientError"
            and e["involvedObject"]["kind"] == "HelmRelease"
            and text in str(e.get("message"))
            for e in events.items
        )

    await until(controllers, "a Warning Event", lambda: warned("--insecure-kubeconfig-exec"))

    # An unreachable server: the Secret's watch label wakes the release at once (its interval is 10m).
    unreachable = {**good, "clusters": [{"name": "second", "cluster": {"server": "https://127.0.0.1:1"}}]}
    secret = kubeconfig_secret(namespace, orjson.dumps(unreachable), key="value")
    await kube.replace(secret)
    ready = await until(controllers, "reported the unreachable cluster", lambda: not_ready_with("127.0.0.1:1"))
    assert ready["reason"] == "RESTClientError"
    assert ready["message"].startswith("remote cluster https://127.0.0.1:1: ")
    assert token not in ready["message"]

    # Fixed: installed on the second cluster.
    await kube.replace(kubeconfig_secret(namespace, second_cluster.kubeconfig_bytes, key="value"))

    async def installed() -> bool:
        obj = await kube.get(HR, "HelmRelease", "web", namespace=namespace)
        return condition(obj, "Ready").get("status") == "True"

    await until(controllers, "installed once the Secret was fixed", installed)
    (listed,) = await helm_json(stack_env, tmp_path / "home", second_cluster.kubeconfig, "list", "-n", namespace)
    assert listed["name"] == "web"
    # Not left behind on the shared second cluster: uninstalled with the HelmRelease.
    await kube.delete(HR, "HelmRelease", "web", namespace=namespace)
    await until(
        controllers,
        "uninstalled",
        lambda: _empty(helm_json(stack_env, tmp_path / "home", second_cluster.kubeconfig, "list", "-n", namespace)),
    )


async def _empty(listing: Awaitable[Any]) -> bool:
    return not await listing


async def test_remote_clients_are_kept_per_secret_version_and_closed_when_replaced(
    kube: KubeClient, second_cluster: SecondCluster, namespace: str
) -> None:
    targets = TargetClusters(kube, RemoteOptions(), idle_close=3600)
    await kube.create(kubeconfig_secret(namespace, second_cluster.kubeconfig_bytes))
    a, b = helmrelease(namespace), {**helmrelease(namespace), "metadata": {"name": "api", "namespace": namespace}}
    try:
        first = await targets.bind(a)
        assert first is not None
        assert await targets.bind(b) is first  # same Secret, same version: one client
        assert targets.bound(a) is first
        assert (await first.client.request("GET", "/version"))["major"] == "1"
        assert first.validates_fields  # 1.34: helm is told to leave field validation to that apiserver
        assert first.access(a, "").server_validates_fields
        await targets.release(a)
        # A new version of the Secret: a new client; the old one closes once its last holder lets go.
        await kube.patch("v1", "Secret", "remote", {"metadata": {"annotations": {"rotated": "1"}}}, namespace=namespace)
        second = await targets.bind(a)
        assert second is not None
        assert second is not first
        assert first.retired
        await first.client.request("GET", "/version")  # b still holds it: open
        await targets.release(b)
        with pytest.raises(KubeUnavailable, match="closed"):
            await first.client.request("GET", "/version")
        await second.client.request("GET", "/version")
        await targets.release(a)
        assert targets.bound(a) is None
    finally:
        await targets.close()
