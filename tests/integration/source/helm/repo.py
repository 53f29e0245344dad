"""The source-controller helm tests' repository: a directory served on 127.0.0.1 (HTTP/HTTPS, basic auth, auth header
log) by the dev tooling's ChartServer, and the stack's helm binary to build its charts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from gitops_mesh.helmcli import helm_env
from gitops_mesh_dev.chartrepo import ChartServer as RepoServer
from gitops_mesh_dev.stack import ROOT, STACK_DIR


def helm_binary() -> Path:
    """The helm binary deploy/local/build.sh installed: from the stack's env file, else build.sh --print."""
    env_file = STACK_DIR / "env"
    lines: list[str] = []
    if env_file.exists():
        lines = env_file.read_text().splitlines()
    if not any(line.startswith("export HELM=") for line in lines):
        out = subprocess.run(
            [str(ROOT / "deploy" / "local" / "build.sh"), "--print"], capture_output=True, text=True, timeout=60
        )
        lines = out.stdout.splitlines()
    for line in lines:
        key, _, value = line.removeprefix("export ").partition("=")
        if key == "HELM" and value and os.access(value, os.X_OK):
            return Path(value)
    raise RuntimeError("no helm binary: run deploy/local/build.sh (make setup)")


def helm(binary: Path, *args: str, cwd: Path | None = None) -> str:
    env = helm_env((cwd or Path.cwd()) / ".helm-home")
    done = subprocess.run([str(binary), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args)}: {done.stderr}")
    return done.stdout


__all__ = ["RepoServer", "helm", "helm_binary"]
