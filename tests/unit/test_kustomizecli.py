"""The shared kustomize runner: its build flags, git's protocols, proxies and a private HOME; errors stay commands'."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gitops_mesh import commands
from gitops_mesh.kustomizecli import build, build_argv, kustomize_env, trim_detail

ENV_PROXIES = {"https_proxy": "http://corp:3128", "NO_PROXY": "10.0.0.0/8", "no_proxy": "internal.example"}


def fake_kustomize(tmp_path: Path, script: str) -> Path:
    """A real program standing in for kustomize: the runner's contract is argv, env, cwd and exit status."""
    path = tmp_path / "kustomize"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(stat.S_IRWXU)
    return path


def test_remote_bases_allowed_git_speaks_only_https_and_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV_PROXIES.items():
        monkeypatch.setenv(name, value)
    env = kustomize_env(tmp_path, no_remote_bases=False)
    assert env["GIT_ALLOW_PROTOCOL"] == "https:ssh"
    assert env["HOME"] == env["TMPDIR"] == env["XDG_CONFIG_HOME"] == str(tmp_path)
    assert env["GIT_CONFIG_GLOBAL"] == os.devnull
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    # The operator's proxies still apply to the fetches that are allowed.
    assert {name: env[name] for name in ENV_PROXIES} == ENV_PROXIES


def test_without_remote_bases_nothing_leaves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV_PROXIES.items():
        monkeypatch.setenv(name, value)
    env = kustomize_env(tmp_path, no_remote_bases=True)
    assert env["GIT_ALLOW_PROTOCOL"] == "none"
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        assert env[name] == "http://127.0.0.1:0"
    # A NO_PROXY entry would let its hosts past the unreachable proxy.
    assert "NO_PROXY" not in env
    assert "no_proxy" not in env


def test_argv_refuses_plugins_exec_helm_and_loading_above_the_root() -> None:
    assert build_argv("kustomize", Path("/w/overlay")) == [
        "kustomize",
        "build",
        "--load-restrictor",
        "LoadRestrictionsRootOnly",
        "--enable-helm=false",
        "--enable-alpha-plugins=false",
        "--enable-exec=false",
        "/w/overlay",
    ]


async def test_build_runs_in_cwd_with_the_private_home_and_returns_stdout(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    kustomize = fake_kustomize(tmp_path, 'echo "$1 $PWD $HOME $TMPDIR $GIT_ALLOW_PROTOCOL"')
    out = await build(
        kustomize, tmp_path / "d", cwd=tmp_path, home=home, timeout=20, max_output=4096, no_remote_bases=True
    )
    assert out.decode().split() == ["build", str(tmp_path), str(home), str(home), "none"]


async def test_build_errors_are_commands_own_for_the_caller_to_word(tmp_path: Path) -> None:
    failing = fake_kustomize(tmp_path, 'echo "Error: accumulating resources" >&2; exit 1')
    with pytest.raises(commands.CommandFailed) as failed:
        await build(failing, tmp_path, cwd=tmp_path, home=tmp_path, timeout=20, max_output=4096, no_remote_bases=False)
    assert b"accumulating resources" in failed.value.stderr
    chatty = fake_kustomize(tmp_path, "head -c 5000 /dev/zero; sleep 30")
    with pytest.raises(commands.OutputTooLarge):
        await build(chatty, tmp_path, cwd=tmp_path, home=tmp_path, timeout=20, max_output=4096, no_remote_bases=False)


def test_trim_detail_is_relative_one_line_and_keeps_the_first_error(tmp_path: Path) -> None:
    stderr = f"Error: accumulating resources from '{tmp_path}/base': missing\nError: in {tmp_path}\n" + "x" * 500
    detail = trim_detail(stderr, tmp_path, 120)
    assert str(tmp_path) not in detail
    assert detail.startswith("accumulating resources from 'base': missing")
    assert "in ." in detail
    assert "\n" not in detail
    # kustomize's first error is kept; the cut at the limit is marked.
    assert detail.endswith("…")
    assert len(detail) == 120 + 1
