"""Fixtures for the build pipeline against the real kustomize, sops and age-keygen binaries."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitops_mesh_dev.stack import ROOT


@dataclass(frozen=True, slots=True)
class Binaries:
    kustomize: Path
    sops: Path
    age_keygen: Path


@dataclass(frozen=True, slots=True)
class AgeKey:
    identity: str
    recipient: str


@pytest.fixture(scope="session")
def binaries(stack_env: dict[str, str]) -> Binaries:
    """The stack's pinned binaries: from .stack/env, else where deploy/local/build.sh puts them."""
    printed = subprocess.run(
        [str(ROOT / "deploy/local/build.sh"), "--print"], capture_output=True, text=True, check=True
    ).stdout
    paths = dict(line.split("=", 1) for line in printed.splitlines() if "=" in line)
    found = Binaries(
        kustomize=Path(stack_env.get("KUSTOMIZE") or paths["KUSTOMIZE"]),
        sops=Path(stack_env.get("SOPS") or paths["SOPS"]),
        age_keygen=Path(paths["AGE_KEYGEN"]),
    )
    for path in (found.kustomize, found.sops, found.age_keygen):
        if not path.is_file():
            pytest.fail(f"{path} is missing: run deploy/local/build.sh (make stack-build)")
    return found


def generate_age_key(binaries: Binaries) -> AgeKey:
    """A fresh age identity made by the real age-keygen."""
    out = subprocess.run([str(binaries.age_keygen)], capture_output=True, text=True, check=True).stdout
    identity = next(line for line in out.splitlines() if line.startswith("AGE-SECRET-KEY-"))
    recipient = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("# public key: "))
    return AgeKey(identity=identity, recipient=recipient)


@pytest.fixture
def age_key(binaries: Binaries) -> AgeKey:
    return generate_age_key(binaries)


@pytest.fixture
def other_age_key(binaries: Binaries) -> AgeKey:
    return generate_age_key(binaries)


def sops_encrypt(
    binaries: Binaries, recipient: str, data: bytes, fmt: str, *, cwd: Path, regex: str | None = None
) -> bytes:
    """Encrypt ``data`` with the real sops for ``recipient`` (no private key needed)."""
    argv = [str(binaries.sops), "encrypt", "--age", recipient, "--input-type", fmt, "--output-type", fmt]
    argv += ["--filename-override", f"stdin.{fmt}"]
    if regex:
        argv += ["--encrypted-regex", regex]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(argv, input=data, capture_output=True, check=True, cwd=cwd, env=env).stdout


def write_tree(root: Path, files: Mapping[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of a tree and its bytes, to show a build left it alone."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
