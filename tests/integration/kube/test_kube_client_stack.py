"""KubeClient verbs against the real kube-apiserver: CRUD, patches, SSA, status, errors, impersonation, watch."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from gitops_mesh.errors import Conflict, Forbidden, Gone, Invalid, NotFound
from gitops_mesh.kube import AlreadyExists, KubeClient, KubeObject, PatchType
from gitops_mesh.kube.client import WatchEventType
from tests.integration.conftest import compact_etcd, eventually, until_available

pytestmark = pytest.mark.stack


def configmap(name: str, namespace: str, data: dict[str, str] | None = None, **labels: str) -> KubeObject:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {}}


async def test_configmap_crud(kube: KubeClient, namespace: str) -> None:
    created = await kube.create(configmap("one", namespace, {"a": "1"}, app="x"))
    assert created["metadata"]["uid"]
    assert (await kube.get("v1", "ConfigMap", "one", namespace=namespace))["data"] == {"a": "1"}

    with pytest.raises(AlreadyExists):
        await kube.create(configmap("one", namespace))

    # PUT with a stale resourceVersion is refused; with the current one it goes through.
    fresh = {**created, "data": {"a": "2"}}
    replaced = await kube.replace(fresh)
    assert replaced["data"] == {"a": "2"}
    with pytest.raises(Conflict):
        await kube.replace({**created, "data": {"a": "3"}})

    merged = await kube.patch("v1", "ConfigMap", "one", {"data": {"b": "2"}}, namespace=namespace)
    assert merged["data"] == {"a": "2", "b": "2"}
    jsoned = await kube.patch(
        "v1",
        "ConfigMap",
        "one",
        [{"op": "remove", "path": "/data/a"}],
        namespace=namespace,
        patch_type=PatchType.JSON,
    )
    assert jsoned["data"] == {"b": "2"}
    strategic = await kube.patch(
        "v1", "ConfigMap", "one", {"metadata": {"labels": {"tier": "db"}}}, namespace=namespace,
        patch_type=PatchType.STRATEGIC,
    )  # fmt: skip
    assert strategic["metadata"]["labels"] == {"app": "x", "tier": "db"}

    # Preconditions: a wrong uid protects a recreated object from a stale delete.
    with pytest.raises(Conflict):
        await kube.delete("v1", "ConfigMap", "one", namespace=namespace, preconditions={"uid": "not-the-uid"})
    await kube.delete("v1", "ConfigMap", "one", namespace=namespace, preconditions={"uid": created["metadata"]["uid"]})
    with pytest.raises(NotFound):
        await kube.get("v1", "ConfigMap", "one", namespace=namespace)
    with pytest.raises(NotFound):
        await kube.delete("v1", "ConfigMap", "one", namespace=namespace)


async def test_list_selectors_and_paging(kube: KubeClient, namespace: str) -> None:
    for i in range(7):
        await kube.create(configmap(f"cm-{i}", namespace, parity="even" if i % 2 == 0 else "odd"))
    everything = await kube.list("v1", "ConfigMap", namespace=namespace, limit=2)  # four pages
    names = sorted(o["metadata"]["name"] for o in everything.items if o["metadata"]["name"].startswith("cm-"))
    assert names == [f"cm-{i}" for i in range(7)]
    assert everything.resource_version
    assert all(o["kind"] == "ConfigMap" and o["apiVersion"] == "v1" for o in everything.items)

    even = await kube.list("v1", "ConfigMap", namespace=namespace, label_selector="parity=even", limit=3)
    assert sorted(o["metadata"]["name"] for o in even.items) == ["cm-0", "cm-2", "cm-4", "cm-6"]
    by_name = await kube.list("v1", "ConfigMap", namespace=namespace, field_selector="metadata.name=cm-3")
    assert [o["metadata"]["name"] for o in by_name.items] == ["cm-3"]


async def test_errors_carry_the_apiserver_message(kube: KubeClient, namespace: str) -> None:
    with pytest.raises(Invalid, match=r"metadata\.name"):
        await kube.create(configmap("Not_A_Valid_Name", namespace))
    with pytest.raises(NotFound):
        await kube.get("v1", "ConfigMap", "missing", namespace=namespace)
    with pytest.raises(NotFound, match="Gizmo"):
        await kube.get("v1", "Gizmo", "x", namespace=namespace)
    with pytest.raises(Invalid, match="namespace is required"):
        await kube.create(configmap("x", ""))


async def test_server_side_apply(kube: KubeClient, namespace: str) -> None:
    desired = configmap("applied", namespace, {"owner": "a", "shared": "a"})
    first = await kube.apply(desired, field_manager="manager-a")
    assert first["data"] == {"owner": "a", "shared": "a"}
    managers = {m["manager"] for m in first["metadata"]["managedFields"]}
    assert "manager-a" in managers

    # Re-applying the same intent is a no-op, even when it carries managedFields (which apply refuses).
    with_managed = {**desired, "metadata": {**desired["metadata"], "managedFields": first["metadata"]["managedFields"]}}
    again = await kube.apply(with_managed, field_manager="manager-a")
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]

    # Another manager touching an owned field conflicts unless it forces.
    other = configmap("applied", namespace, {"shared": "b"})
    with pytest.raises(Conflict, match="conflict"):
        await kube.apply(other, field_manager="manager-b")
    forced = await kube.apply(other, field_manager="manager-b", force=True)
    assert forced["data"] == {"owner": "a", "shared": "b"}

    # Dropping a field from manager-a's apply removes it (manager-a owns "owner" alone).
    pruned = await kube.apply(configmap("applied", namespace, {}), field_manager="manager-a")
    assert pruned["data"] == {"shared": "b"}

    dry = await kube.apply(configmap("dry", namespace, {"x": "1"}), field_manager="manager-a", dry_run=True)
    assert dry["data"] == {"x": "1"}
    with pytest.raises(NotFound):
        await kube.get("v1", "ConfigMap", "dry", namespace=namespace)


def git_repository(name: str, namespace: str) -> KubeObject:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"url": "https://github.com/stefanprodan/podinfo", "interval": "1m", "ref": {"branch": "master"}},
    }


async def test_status_subresource_on_gitrepository(kube: KubeClient, namespace: str) -> None:
    try:
        await kube.resource("source.toolkit.fluxcd.io/v1", "GitRepository")
    except NotFound:
        pytest.skip("GitRepository CRD not installed (deploy/crds); the own-CRD test covers status")
    created = await kube.apply(git_repository("podinfo", namespace), field_manager="test")
    assert created["metadata"]["generation"] == 1

    condition = {
        "type": "Ready",
        "status": "True",
        "reason": "Succeeded",
        "message": "stored artifact",
        "lastTransitionTime": "2025-01-01T00:00:00Z",
        "observedGeneration": 1,
    }
    patched = await kube.patch_status(
        "source.toolkit.fluxcd.io/v1",
        "GitRepository",
        "podinfo",
        {"status": {"observedGeneration": 1, "conditions": [condition]}},
        namespace=namespace,
    )
    assert patched["status"]["conditions"][0]["reason"] == "Succeeded"
    # A status write does not bump the generation; a spec write through the main resource ignores status.
    assert patched["metadata"]["generation"] == 1
    main = await kube.patch(
        "source.toolkit.fluxcd.io/v1", "GitRepository", "podinfo",
        {"status": {"observedGeneration": 99}}, namespace=namespace,
    )  # fmt: skip
    assert main["status"]["observedGeneration"] == 1

    applied = await kube.apply_status(
        {**git_repository("podinfo", namespace), "status": {"observedGeneration": 1, "conditions": [
            {**condition, "status": "False", "reason": "GitOperationFailed", "message": "auth failed"}
        ]}},
        field_manager="source-controller",
    )  # fmt: skip
    assert applied["status"]["conditions"][0]["reason"] == "GitOperationFailed"
    assert applied["spec"]["url"] == "https://github.com/stefanprodan/podinfo"
    status_managers = [m for m in applied["metadata"]["managedFields"] if m["manager"] == "source-controller"]
    assert status_managers
    assert all(m.get("subresource") == "status" for m in status_managers)

    # The CRD's validation message names the field.
    bad = git_repository("bad", namespace)
    bad["spec"]["interval"] = "every minute"
    with pytest.raises(Invalid, match=r"spec\.interval"):
        await kube.create(bad)


async def test_own_crd_is_discovered_after_install(kube: KubeClient, namespace: str, unique: str) -> None:
    group = f"{unique}.example.com"
    crd: KubeObject = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1}}},
                                "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                            },
                        }
                    },
                }
            ],
        },
    }
    api_version = f"{group}/v1"
    # The mapper is asked first, before the group exists: the miss must not stick.
    with pytest.raises(NotFound):
        await kube.resource(api_version, "Widget")
    await kube.create(crd)
    try:

        async def established() -> bool:
            got = await kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"widgets.{group}")
            conditions = (got.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        await eventually(established)
        await eventually(lambda: _resolves(kube, api_version, "Widget"))
        widget = {"apiVersion": api_version, "kind": "Widget", "metadata": {"name": "w", "namespace": namespace}}
        created = await kube.create({**widget, "spec": {"size": 2}})
        assert created["spec"] == {"size": 2}
        status = await kube.patch_status(
            api_version, "Widget", "w", {"status": {"phase": "Ready"}}, namespace=namespace
        )
        assert status["status"] == {"phase": "Ready"}
        applied = await kube.apply_status({**widget, "status": {"phase": "Done"}}, field_manager="widget-controller")
        assert applied["status"] == {"phase": "Done"}
        assert applied["spec"] == {"size": 2}
        with pytest.raises(Invalid, match=r"spec\.size"):
            await kube.apply({**widget, "spec": {"size": 0}}, field_manager="test", force=True)
    finally:
        await kube.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"widgets.{group}")


async def _resolves(kube: KubeClient, api_version: str, kind: str) -> bool:
    await kube.resource(api_version, kind)
    return True


async def test_impersonation(kube: KubeClient, namespace: str) -> None:
    await kube.create(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": namespace}}
    )
    await kube.create(configmap("visible", namespace))
    robot = kube.impersonate("robot", namespace)

    with pytest.raises(Forbidden, match="system:serviceaccount:" + namespace + ":robot"):
        await robot.list("v1", "ConfigMap", namespace=namespace)

    await kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "configmap-reader", "namespace": namespace},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}],
        }
    )
    await kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "robot-reads", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": namespace}],
        }
    )

    async def can_list() -> bool:
        items = (await robot.list("v1", "ConfigMap", namespace=namespace)).items
        return "visible" in {o["metadata"]["name"] for o in items}

    await eventually(can_list, timeout=10)
    assert (await robot.get("v1", "ConfigMap", "visible", namespace=namespace))["metadata"]["name"] == "visible"
    # Reading is all the Role grants.
    with pytest.raises(Forbidden):
        await robot.create(configmap("nope", namespace))
    with pytest.raises(Forbidden):
        await robot.list("v1", "Secret", namespace=namespace)
    # The impersonating client shares the root's pool: closing it leaves the root working.
    await robot.close()
    await kube.get("v1", "ConfigMap", "visible", namespace=namespace)


async def _collect(
    kube: KubeClient, namespace: str, resource_version: str, sink: list[tuple[WatchEventType, KubeObject]]
) -> None:
    stream = kube.watch("v1", "ConfigMap", namespace=namespace, resource_version=resource_version, timeout_seconds=60)
    async with contextlib.aclosing(stream):
        async for event in stream:
            sink.append(event)


async def test_watch_and_resume(kube: KubeClient, namespace: str) -> None:
    start = (await kube.list("v1", "ConfigMap", namespace=namespace)).resource_version
    events: list[tuple[WatchEventType, KubeObject]] = []
    watcher = asyncio.create_task(_collect(kube, namespace, start, events), name="test-watch")
    try:
        await kube.create(configmap("w", namespace, {"v": "1"}))
        await kube.patch("v1", "ConfigMap", "w", {"data": {"v": "2"}}, namespace=namespace)
        await kube.delete("v1", "ConfigMap", "w", namespace=namespace)

        async def three() -> bool:
            return len([e for e in events if _ours(*e)]) >= 3

        await eventually(three, timeout=10)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    # The namespace controller adds kube-root-ca.crt to every new namespace at its own pace.
    changes = [(t, o["metadata"]["name"], o.get("data")) for t, o in events if _ours(t, o)]
    assert changes == [("ADDED", "w", {"v": "1"}), ("MODIFIED", "w", {"v": "2"}), ("DELETED", "w", {"v": "2"})]

    # Resuming from the last resourceVersion seen replays nothing already seen, only what came after.
    last = events[-1][1]["metadata"]["resourceVersion"]
    await kube.create(configmap("after", namespace))
    resumed: list[tuple[WatchEventType, KubeObject]] = []
    watcher = asyncio.create_task(_collect(kube, namespace, last, resumed), name="test-watch-resume")
    try:

        async def one() -> bool:
            return any(_ours(*e) for e in resumed)

        await eventually(one, timeout=10)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    assert [(t, o["metadata"]["name"]) for t, o in resumed if _ours(t, o)] == [("ADDED", "after")]


def _ours(event_type: str, obj: KubeObject) -> bool:
    return event_type != "BOOKMARK" and obj["metadata"]["name"] != "kube-root-ca.crt"


async def test_watch_from_an_expired_version_is_gone(
    kube: KubeClient, namespace: str, stack_env: dict[str, str]
) -> None:
    await compact_etcd(stack_env)
    stream = kube.watch("v1", "ConfigMap", namespace=namespace, resource_version="1", timeout_seconds=5)
    async with contextlib.aclosing(stream):
        with pytest.raises(Gone):
            await anext(stream)


async def test_bookmarks_advance_resource_version(kube: KubeClient, namespace: str) -> None:
    # The apiserver sends bookmarks about once a minute (short watches get none); a selector matching
    # nothing leaves only bookmarks, which move past changes made elsewhere. Slow (a minute) by nature.
    # Secrets, not ConfigMaps: bookmarks come from the watch cache, which the stack turns off for ConfigMaps.
    start = (await kube.list("v1", "Secret", namespace=namespace)).resource_version
    elsewhere = f"bookmark-{namespace}"
    await kube.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": elsewhere, "namespace": "default"}})
    try:
        stream = kube.watch(
            "v1",
            "Secret",
            namespace=namespace,
            label_selector="matches=nothing",
            resource_version=start,
            timeout_seconds=75,
        )
        async with contextlib.aclosing(stream):
            event_type, obj = await anext(stream)
    finally:
        await until_available(lambda: kube.delete("v1", "Secret", elsewhere, namespace="default"))
    assert event_type == "BOOKMARK"
    assert int(obj["metadata"]["resourceVersion"]) > int(start)
