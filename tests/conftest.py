"""Fixtures shared by every test tier: where the local stack is, and unique names per test."""

from __future__ import annotations

import uuid

import pytest

from gitops_mesh_dev.stack import StackNotUp, read_stack_env


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    """The local stack's addresses: KUBECONFIG, KAFKA_BOOTSTRAP, KUBECTL, HELM, KUSTOMIZE, STACK_DIR."""
    try:
        return read_stack_env()
    except StackNotUp as e:
        pytest.fail(str(e))


@pytest.fixture
def unique() -> str:
    """A short name unique to this test, usable in namespaces, topics and object names."""
    return "t" + uuid.uuid4().hex[:10]
