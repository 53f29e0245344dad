"""A private distribution registry per test, and `gitops-mesh push artifact` (the real console entry point)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from gitops_mesh import commands
from gitops_mesh_dev.ociregistry import OciRegistry

# source- and kustomize-controller over a test's own topics, as the kustomize tests run them (Kustomizations
# following these sources)
from tests.integration.kustomize.controller.conftest import mesh, topics  # noqa: F401
from tests.integration.source.controller.conftest import controller  # noqa: F401  (the source-controller process)


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[OciRegistry]:
    async with OciRegistry(tmp_path / "registry") as running:
        yield running


def write_tree(root: Path, files: Mapping[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


async def push(
    target: str,
    path: Path,
    *,
    source: str = "https://git.example.com/app.git",
    revision: str = "main@sha1:0123456789abcdef0123456789abcdef01234567",
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
) -> str:
    """Run ``python -m gitops_mesh.cli push artifact`` (plain HTTP); the pushed manifest's digest."""
    args = [
        sys.executable,
        "-m",
        "gitops_mesh.cli",
        "push",
        "artifact",
        target,
        f"--path={path}",
        f"--source={source}",
        f"--revision={revision}",
        *(extra if extra is not None else ["--insecure-registry"]),
    ]
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    done = await commands.run(args, env={**base, **(env or {})}, timeout=60, stdin=stdin, check=False)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, args, done.stdout, done.stderr)
    return done.stdout.decode().strip().splitlines()[-1]
