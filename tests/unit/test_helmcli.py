"""The shared helm runner: helm sees only its private HOME and no kubeconfig; a stopped helm is the caller's error."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gitops_mesh.errors import TransientError
from gitops_mesh.helmcli import HelmResult, helm_env, run_helm


class Stopped(TransientError):
    reason = "Stopped"


def fake_helm(tmp_path: Path, script: str) -> Path:
    """A real program standing in for helm: the runner's contract is argv, env and exit status."""
    path = tmp_path / "helm"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(stat.S_IRWXU)
    return path


def test_env_is_private_to_home(tmp_path: Path) -> None:
    env = helm_env(tmp_path)
    assert env["HOME"] == str(tmp_path)
    for key in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME", "HELM_PLUGINS", "HELM_REPOSITORY_CONFIG"):
        assert env[key].startswith(str(tmp_path)), key
    # No user's cluster by accident: a kubeconfig is always passed explicitly.
    assert env["KUBECONFIG"] == os.devnull


def test_detail_prefers_stderr_one_line_bounded() -> None:
    r = HelmResult(1, "out", "line one\n\nError: UPGRADE FAILED: " + "x" * 5000 + "\n")
    d = r.detail()
    assert "\n" not in d
    assert d.endswith("x")
    assert len(d) <= 601
    assert HelmResult(1, "only stdout", "").detail() == "only stdout"
    assert HelmResult(3, "", "").detail() == "exit status 3"


async def test_runs_to_its_end_whatever_the_status(tmp_path: Path) -> None:
    helm = fake_helm(tmp_path, 'echo "args:$*"; echo "home:$HOME" >&2; exit 4\n')
    result = await run_helm(helm, ["status", "x"], home=tmp_path, timeout=10, on_stopped=Stopped)
    assert result.returncode == 4
    assert result.stdout.strip() == "args:status x"
    assert result.stderr.strip() == f"home:{tmp_path}"


async def test_timeout_is_the_callers_error(tmp_path: Path) -> None:
    helm = fake_helm(tmp_path, "sleep 30\n")
    with pytest.raises(Stopped, match=r"helm upgrade timed out after 0\.3s"):
        await run_helm(helm, ["upgrade"], home=tmp_path, timeout=0.3, on_stopped=Stopped)


async def test_missing_binary_is_the_callers_error(tmp_path: Path) -> None:
    with pytest.raises(Stopped, match="helm install"):
        await run_helm(tmp_path / "nope", ["install"], home=tmp_path, timeout=5, on_stopped=Stopped)
