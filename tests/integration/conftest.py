"""Fixtures for tests against the local stack: one kube client per session, one namespace per test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import aiohttp
import pytest

from gitops_mesh.errors import GitopsMeshError, KubeUnavailable, NotFound
from gitops_mesh.kube import KubeClient
from gitops_mesh_dev.namespaces import drop_finalizers

T = TypeVar("T")


@pytest.fixture(scope="session")
async def kube(stack_env: dict[str, str]) -> AsyncIterator[KubeClient]:
    client = await KubeClient.connect(stack_env["KUBECONFIG"])
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def namespace(kube: KubeClient, unique: str) -> AsyncIterator[str]:
    await until_available(lambda: kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": unique}}))
    try:
        yield unique
    finally:
        await drop_finalizers(kube, unique)
        with contextlib.suppress(NotFound):
            await until_available(lambda: kube.delete("v1", "Namespace", unique, propagation_policy="Background"))


async def until_available(call: Callable[[], Awaitable[T]], timeout: float = 60) -> T:
    """Retry ``call`` while the apiserver is away (restarts in other tests), up to ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                return await call()
            except KubeUnavailable:
                await asyncio.sleep(0.2)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30, interval: float = 0.1) -> None:
    """Poll ``check`` until it is true; apiserver hiccups count as not yet."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                if await check():
                    return
            except GitopsMeshError:
                pass
            await asyncio.sleep(interval)


async def compact_etcd(stack_env: dict[str, str]) -> None:
    """Compact the stack's etcd at its current revision, so old resourceVersions are really gone (410).

    A freshly started stack has not compacted yet (the apiserver does it every 5 minutes), and then an
    old resourceVersion may still be served; tests of the 410 path must not depend on the stack's age.
    """
    base = stack_env["ETCD_ENDPOINT"]
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/v3/kv/range", json={"key": "YQ=="}) as r:
            revision = (await r.json())["header"]["revision"]
        async with http.post(f"{base}/v3/kv/compaction", json={"revision": revision, "physical": True}) as r:
            assert r.status == 200, await r.text()
