"""Informers against the real kube-apiserver: cache, indexes, handlers, relist diffs, an apiserver restart."""

from __future__ import annotations

import asyncio
import time
from functools import partial

import pytest
from prometheus_client import REGISTRY

from gitops_mesh.errors import NotFound
from gitops_mesh.kube import Informer, KubeClient, KubeObject, ObjectKey
from gitops_mesh.kube.informer import Handler
from gitops_mesh_dev.stack import STACK_SCRIPT
from tests.integration.conftest import compact_etcd, eventually, until_available

pytestmark = pytest.mark.stack

Seen = list[tuple[str, str, str | None]]


def configmap(name: str, namespace: str, **labels: str) -> KubeObject:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"at": str(time.time())},
    }


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"resource": "ConfigMap.v1"}) or 0.0


def recorder(seen: Seen) -> Handler:
    async def handler(change: str, obj: KubeObject, old: KubeObject | None) -> None:
        seen.append((change, obj["metadata"]["name"], old["metadata"]["resourceVersion"] if old else None))

    return handler


async def server_state(kube: KubeClient, namespace: str, label_selector: str | None = None) -> dict[ObjectKey, str]:
    listed = await kube.list("v1", "ConfigMap", namespace=namespace, label_selector=label_selector)
    return {(o["metadata"]["namespace"], o["metadata"]["name"]): o["metadata"]["resourceVersion"] for o in listed.items}


def cache_state(informer: Informer) -> dict[ObjectKey, str]:
    return {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o["metadata"]["resourceVersion"] for o in informer.list()
    }


async def converged(kube: KubeClient, informer: Informer, namespace: str, selector: str | None = None) -> None:
    async def same() -> bool:
        return cache_state(informer) == await server_state(kube, namespace, selector)

    await eventually(same, timeout=60, interval=0.2)


async def test_cache_indexes_and_handlers(kube: KubeClient, namespace: str) -> None:
    for name, tier in (("a", "web"), ("b", "web"), ("c", "db")):
        await kube.create(configmap(name, namespace, app="x", tier=tier))
    await kube.create(configmap("unlabelled", namespace))

    seen: Seen = []
    informer = Informer(kube, "v1", "ConfigMap", namespace, label_selector="app=x")
    informer.add_index("tier", lambda o: [o["metadata"].get("labels", {}).get("tier", "")])
    informer.on_event(recorder(seen))
    synced_before_start = informer.has_synced
    async with informer:
        await informer.wait_synced(timeout=10)
        assert (synced_before_start, informer.has_synced) == (False, True)
        assert sorted(n for _, n in informer.object_keys()) == ["a", "b", "c"]
        assert sorted(o["metadata"]["name"] for o in informer.by_index("tier", "web")) == ["a", "b"]
        assert sorted(c for c, _, _ in seen) == ["ADDED"] * 3
        assert informer.get(namespace, "a") is not None
        assert informer.get(namespace, "unlabelled") is None

        cached_c = informer.get(namespace, "c")
        assert cached_c is not None
        old_rv = cached_c["metadata"]["resourceVersion"]
        await kube.patch("v1", "ConfigMap", "c", {"metadata": {"labels": {"tier": "web"}}}, namespace=namespace)
        await kube.delete("v1", "ConfigMap", "a", namespace=namespace)
        await kube.create(configmap("d", namespace, app="x", tier="db"))
        await converged(kube, informer, namespace, "app=x")

        assert ("MODIFIED", "c", old_rv) in seen
        assert any(change == "DELETED" and name == "a" and old for change, name, old in seen)
        assert ("ADDED", "d", None) in seen
        assert sorted(o["metadata"]["name"] for o in informer.by_index("tier", "web")) == ["b", "c"]
        assert [o["metadata"]["name"] for o in informer.by_index("tier", "db")] == ["d"]
        # An index added late covers what is already cached.
        informer.add_index("name", lambda o: [o["metadata"]["name"]])
        assert [o["metadata"]["name"] for o in informer.by_index("name", "b")] == ["b"]


async def test_relist_after_gone_reports_what_was_missed(
    kube: KubeClient, namespace: str, stack_env: dict[str, str]
) -> None:
    for name in ("keep", "change", "remove"):
        await kube.create(configmap(name, namespace, app="y"))
    seen: Seen = []
    informer = Informer(kube, "v1", "ConfigMap", namespace, label_selector="app=y")
    informer.on_event(recorder(seen))
    async with informer:
        await informer.wait_synced(timeout=10)
    # Disconnected: the world moves on, and the informer's resourceVersion falls out of the window.
    await kube.delete("v1", "ConfigMap", "remove", namespace=namespace)
    await kube.patch("v1", "ConfigMap", "change", {"data": {"v": "2"}}, namespace=namespace)
    await kube.create(configmap("new", namespace, app="y"))
    await compact_etcd(stack_env)
    informer._resource_version = "1"  # an old version, compacted away just above: the 410 path
    relists = metric("gitops_informer_relists_total")
    seen.clear()
    async with informer:
        await converged(kube, informer, namespace, "app=y")
    assert metric("gitops_informer_relists_total") > relists
    assert sorted((c, n) for c, n, _ in seen) == [("ADDED", "new"), ("DELETED", "remove"), ("MODIFIED", "change")]


async def _restart_apiserver() -> None:
    proc = await asyncio.create_subprocess_exec(
        str(STACK_SCRIPT), "restart", "kube-apiserver", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode(errors="replace")


async def test_informer_keeps_its_cache_right_across_an_apiserver_restart(kube: KubeClient, namespace: str) -> None:
    """The foundation issue's requirement: the cache converges to the server's list after a restart."""
    for i in range(10):
        await kube.create(configmap(f"before-{i}", namespace))
    seen: Seen = []
    informer = Informer(kube, "v1", "ConfigMap", namespace)
    informer.on_event(recorder(seen))
    errors_before = metric("gitops_informer_watch_errors_total")
    async with informer:
        await informer.wait_synced(timeout=10)
        await converged(kube, informer, namespace)

        restart = asyncio.create_task(_restart_apiserver(), name="restart-kube-apiserver")
        # Writes racing the restart: each lands before the stop or, retried, once the apiserver is back.
        for i in range(5):
            await until_available(partial(kube.create, configmap(f"during-{i}", namespace)), timeout=150)
            patch = partial(kube.patch, "v1", "ConfigMap", f"before-{i}", {"data": {"during": "yes"}})
            await until_available(partial(patch, namespace=namespace), timeout=150)
            await asyncio.sleep(0.3)
        await restart

        # Right after it is back: deletions (impossible while it is down), changes, additions.
        for i in range(5, 10):
            await until_available(partial(kube.delete, "v1", "ConfigMap", f"before-{i}", namespace=namespace))
        patch = partial(kube.patch, "v1", "ConfigMap", "before-0", {"data": {"after": "yes"}})
        await until_available(partial(patch, namespace=namespace))
        await until_available(partial(kube.create, configmap("after-0", namespace)))

        await converged(kube, informer, namespace)
        assert informer.has_synced
        deleted = {name for change, name, _ in seen if change == "DELETED"}
        assert {f"before-{i}" for i in range(5, 10)} <= deleted
        # The watch really broke and recovered (rather than the restart happening elsewhere).
        assert metric("gitops_informer_watch_errors_total") > errors_before
        cached = informer.get(namespace, "before-0")
        assert cached is not None
        assert cached["data"].get("after") == "yes"
        assert informer.get(namespace, "before-7") is None


async def test_informer_waits_for_a_kind_that_is_not_served(kube: KubeClient) -> None:
    informer = Informer(kube, "nothing.example.com/v1", "Nothing")
    async with informer:
        with pytest.raises(TimeoutError):
            await informer.wait_synced(timeout=1)
    with pytest.raises(NotFound):
        await kube.resource("nothing.example.com/v1", "Nothing")


async def test_observe_applies_our_own_write_at_once_and_handlers_see_it_once(kube: KubeClient, namespace: str) -> None:
    await kube.create(configmap("mine", namespace))
    transitions: list[tuple[str | None, str]] = []

    async def handler(change: str, obj: KubeObject, old: KubeObject | None) -> None:
        before = (old or {}).get("data", {}).get("step")
        if before != obj["data"].get("step"):
            transitions.append((before, obj["data"]["step"]))

    informer = Informer(kube, "v1", "ConfigMap", namespace)
    informer.on_event(handler)
    async with informer:
        await informer.wait_synced(timeout=10)
        await informer.stop()  # no watch: whatever reaches the cache now comes from observe()
        stale = informer.get(namespace, "mine")
        assert stale is not None
        written = await kube.patch("v1", "ConfigMap", "mine", {"data": {"step": "one"}}, namespace=namespace)
        await informer.observe(written)
        cached = informer.get(namespace, "mine")
        assert cached is not None
        assert cached["data"]["step"] == "one"
        await informer.observe(stale)  # an older copy never replaces a newer one
        assert informer.get(namespace, "mine") == cached
        assert transitions == [(None, "one")]

        informer.start()  # the relist and watch find the cache already right: nothing to tell again
        await converged(kube, informer, namespace)
        await asyncio.sleep(0.5)
    assert transitions == [(None, "one")], "handlers see the change once"
