"""Fixtures shared by every test tier: where the local stack is, and unique names per test."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STACK_DIR = Path(os.environ.get("STACK_DIR", ROOT / ".stack"))
STACK_SCRIPT = ROOT / "deploy" / "local" / "stack.sh"


def read_stack_env(path: Path = STACK_DIR / "env") -> dict[str, str]:
    """Parse the `export KEY=VALUE` lines `make stack-up` writes."""
    if not path.exists():
        pytest.fail(f"{path} is missing: the local stack is not up; run `make stack-up` (make test does)")
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("export ") and "=" in line:
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value
    return env


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    """The local stack's addresses: KUBECONFIG, KAFKA_BOOTSTRAP, KUBECTL, HELM, KUSTOMIZE, STACK_DIR."""
    return read_stack_env()


@pytest.fixture
def unique() -> str:
    """A short name unique to this test, usable in namespaces, topics and object names."""
    return "t" + uuid.uuid4().hex[:10]
