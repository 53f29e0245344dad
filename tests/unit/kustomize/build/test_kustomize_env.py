"""How kustomize is run: its flags, its environment (git's protocols, proxies, private HOME/TMPDIR), its output cap."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kustomize_controller.build.errors import KustomizeFailed
from kustomize_controller.build.kustomize import MAX_OUTPUT, kustomize_build


def stand_in(directory: Path, script: str) -> Path:
    """An executable ``kustomize`` running ``script``: a stand-in for the real binary."""
    path = directory / "kustomize"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


async def seen_by_kustomize(tmp_path: Path, *, no_remote_bases: bool) -> tuple[list[str], dict[str, str]]:
    """The argv and environment the stand-in kustomize ran with."""
    kustomize = stand_in(tmp_path, 'printf "%s\\n" "$@"; echo ---; env')
    out = (await kustomize_build(kustomize, tmp_path, tmp_path, timeout=30, no_remote_bases=no_remote_bases)).decode()
    args, _, rest = out.partition("---\n")
    env = dict(line.split("=", 1) for line in rest.splitlines() if "=" in line)
    return args.split(), env


@pytest.mark.parametrize("no_remote_bases", [True, False])
async def test_kustomize_runs_without_helm_plugins_or_exec(tmp_path: Path, no_remote_bases: bool) -> None:
    args, _ = await seen_by_kustomize(tmp_path, no_remote_bases=no_remote_bases)
    assert args == [
        "build",
        "--load-restrictor",
        "LoadRestrictionsRootOnly",
        "--enable-helm=false",
        "--enable-alpha-plugins=false",
        "--enable-exec=false",
        str(tmp_path),
    ]


async def test_git_speaks_only_https_and_ssh_when_remote_bases_are_allowed(tmp_path: Path) -> None:
    _, env = await seen_by_kustomize(tmp_path, no_remote_bases=False)
    assert env["GIT_ALLOW_PROTOCOL"] == "https:ssh"
    assert env["HOME"] == env["TMPDIR"] == env["XDG_CONFIG_HOME"]
    assert env["HOME"] != os.environ.get("HOME")
    assert not Path(env["HOME"]).exists(), "the private home (and any clone in it) is removed after the run"


async def test_no_network_for_kustomize_or_git_without_remote_bases(tmp_path: Path) -> None:
    _, env = await seen_by_kustomize(tmp_path, no_remote_bases=True)
    assert env["GIT_ALLOW_PROTOCOL"] == "none", "no protocol git knows: every transport refused"
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        assert env[name] == "http://127.0.0.1:0"
    assert "NO_PROXY" not in env
    assert "no_proxy" not in env


async def test_kustomize_output_is_capped(tmp_path: Path) -> None:
    assert MAX_OUTPUT == 64 << 20
    kustomize = stand_in(tmp_path, "head -c 5000 /dev/zero; sleep 30")
    with pytest.raises(KustomizeFailed, match=r"^kustomize build of '.' stopped: kustomize printed more than 4"):
        await kustomize_build(kustomize, tmp_path, tmp_path, timeout=20, max_output=4096)
