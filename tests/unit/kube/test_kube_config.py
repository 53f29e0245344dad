"""Loading kubeconfig files into a KubeConfig, without an apiserver."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from gitops_mesh.kube.config import KubeConfigError, load_config


def write_kubeconfig(path: Path, server: str, user: str) -> Path:
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: "{server}", insecure-skip-tls-verify: true}}
users:
- name: u
  user: {user}
contexts:
- name: ctx
  context: {{cluster: c, user: u}}
current-context: ctx
"""
    )
    return path


async def test_token_and_tls_settings(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", "https://127.0.0.1:6443/", "{token: abc123}")
    config = await load_config(path)
    assert config.host == "https://127.0.0.1:6443"
    assert isinstance(config.ssl_context, ssl.SSLContext)
    assert config.ssl_context.verify_mode == ssl.CERT_NONE
    assert await config.authorization() == "Bearer abc123"


async def test_token_file_and_plain_http(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file")
    path = write_kubeconfig(tmp_path / "config", "http://127.0.0.1:8080", f"{{tokenFile: {tmp_path / 'token'}}}")
    config = await load_config(path)
    assert config.ssl_context is None
    assert await config.authorization() == "Bearer from-file"


async def test_kubeconfig_env_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_kubeconfig(tmp_path / "config", "https://10.0.0.1", "{token: t}")
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert (await load_config()).host == "https://10.0.0.1"


async def test_missing_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="cannot load"):
        await load_config(tmp_path / "nope")
