"""REST mapping from discovery documents, without an apiserver."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gitops_mesh.errors import Invalid, NotFound
from gitops_mesh.kube.mapping import ResourceInfo, RESTMapper, discovery_path, parse_resource_list

CORE_V1: dict[str, Any] = {
    "kind": "APIResourceList",
    "groupVersion": "v1",
    "resources": [
        {"name": "configmaps", "singularName": "configmap", "namespaced": True, "kind": "ConfigMap", "verbs": ["get"]},
        {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace", "verbs": []},
        {"name": "namespaces/status", "singularName": "", "namespaced": False, "kind": "Namespace", "verbs": []},
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"]},
        {"name": "pods/status", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get", "patch"]},
        {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
        {"name": "pods/binding", "singularName": "", "namespaced": True, "kind": "Binding", "verbs": ["create"]},
        {"name": "bindings", "singularName": "binding", "namespaced": True, "kind": "Binding", "verbs": ["create"]},
    ],
}

FLUX_SOURCE: dict[str, Any] = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "source.toolkit.fluxcd.io/v1",
    "resources": [
        {"name": "gitrepositories", "singularName": "gitrepository", "namespaced": True, "kind": "GitRepository"},
        {"name": "gitrepositories/status", "singularName": "", "namespaced": True, "kind": "GitRepository"},
    ],
}


def test_core_group_resources_and_subresources() -> None:
    kinds = parse_resource_list("v1", CORE_V1)
    pod = kinds["Pod"]
    assert (pod.group, pod.version, pod.plural, pod.namespaced) == ("", "v1", "pods", True)
    assert pod.subresources == {"status", "log", "binding"}
    assert kinds["Namespace"].namespaced is False
    assert kinds["Namespace"].subresources == {"status"}
    # "pods/binding" is a subresource, not Binding's own resource.
    assert kinds["Binding"].plural == "bindings"


def test_named_group_paths() -> None:
    info = parse_resource_list("source.toolkit.fluxcd.io/v1", FLUX_SOURCE)["GitRepository"]
    assert info.api_version == "source.toolkit.fluxcd.io/v1"
    assert info.resource == "gitrepositories.source.toolkit.fluxcd.io"
    assert info.path("flux-system") == "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories"
    assert (
        info.path("flux-system", "podinfo", "status")
        == "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/podinfo/status"
    )
    assert info.path() == "/apis/source.toolkit.fluxcd.io/v1/gitrepositories"


def test_core_paths_and_cluster_scope() -> None:
    kinds = parse_resource_list("v1", CORE_V1)
    assert kinds["ConfigMap"].path("ns", "cm") == "/api/v1/namespaces/ns/configmaps/cm"
    # A namespace given for a cluster-scoped kind is ignored, as kubectl does.
    assert kinds["Namespace"].path("ignored", "ns1") == "/api/v1/namespaces/ns1"
    with pytest.raises(Invalid, match="namespace is required"):
        kinds["ConfigMap"].path(None, "cm")
    with pytest.raises(Invalid, match="name is required"):
        kinds["ConfigMap"].path("ns", "")


def test_discovery_path() -> None:
    assert discovery_path("v1") == "/api/v1"
    assert discovery_path("apps/v1") == "/apis/apps/v1"


async def test_mapper_fetches_once_and_refreshes_on_miss() -> None:
    docs: dict[str, dict[str, Any]] = {"/api/v1": CORE_V1}
    fetched: list[str] = []

    async def fetch(path: str) -> dict[str, Any]:
        fetched.append(path)
        if path not in docs:
            raise NotFound(f"{path} not found")
        return docs[path]

    mapper = RESTMapper(fetch)
    assert (await mapper.resolve("v1", "ConfigMap")).plural == "configmaps"
    assert (await mapper.resolve("v1", "Pod")).plural == "pods"
    assert fetched == ["/api/v1"]

    # A group that is not served yet: NotFound, and asked again next time (the CRD may be installed by then).
    with pytest.raises(NotFound):
        await mapper.resolve("source.toolkit.fluxcd.io/v1", "GitRepository")
    docs["/apis/source.toolkit.fluxcd.io/v1"] = FLUX_SOURCE
    info = await mapper.resolve("source.toolkit.fluxcd.io/v1", "GitRepository")
    assert isinstance(info, ResourceInfo)
    assert fetched.count("/apis/source.toolkit.fluxcd.io/v1") == 2

    # A kind missing from a cached group version triggers a refetch of that document only.
    with pytest.raises(NotFound, match="Widget"):
        await mapper.resolve("v1", "Widget")
    assert fetched.count("/api/v1") == 2


async def test_concurrent_misses_share_one_fetch() -> None:
    calls = 0
    gate = asyncio.Event()

    async def fetch(path: str) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await gate.wait()
        return CORE_V1

    mapper = RESTMapper(fetch)
    tasks = [asyncio.create_task(mapper.resolve("v1", "ConfigMap")) for _ in range(20)]
    await asyncio.sleep(0)
    gate.set()
    infos = await asyncio.gather(*tasks)
    assert {i.plural for i in infos} == {"configmaps"}
    assert calls == 1


async def test_mapper_requires_api_version_and_kind() -> None:
    async def fetch(path: str) -> dict[str, Any]:
        raise AssertionError("not reached")

    with pytest.raises(Invalid):
        await RESTMapper(fetch).resolve("", "ConfigMap")
