"""Fixtures for the helm-controller's tests: a second cluster (etcd + kube-apiserver) for spec.kubeConfig."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import pytest

from gitops_mesh.kube import KubeClient
from gitops_mesh_dev.cluster import SecondCluster


@pytest.fixture(scope="session")
async def second_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SecondCluster]:
    """A remote cluster for HelmReleases with spec.kubeConfig; started once per session, stopped at its end."""
    async with SecondCluster(tmp_path_factory.mktemp("second-cluster")) as cluster:
        sys.stderr.write(f"\nsecond cluster up in {cluster.started_in:.1f}s at {cluster.server}\n")
        yield cluster


@pytest.fixture(scope="session")
async def remote_kube(second_cluster: SecondCluster) -> AsyncIterator[KubeClient]:
    client = await KubeClient.connect(str(second_cluster.kubeconfig))
    try:
        yield client
    finally:
        await client.close()
