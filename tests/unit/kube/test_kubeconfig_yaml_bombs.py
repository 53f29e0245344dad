"""A kubeconfig holding an alias bomb is a KubeConfigError naming the file, never a hang or a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_mesh.kube.config import KubeConfigError, load_config, read_documents
from tests.support.yaml_bombs import alias_bomb

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: not-in-any-message}
contexts:
- name: ctx
  context: {cluster: c, user: u}
current-context: ctx
"""


async def test_a_kubeconfig_with_an_alias_bomb_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG + alias_bomb())
    with pytest.raises(KubeConfigError) as refused:
        await load_config(path)
    message = str(refused.value)
    assert message == (
        f"cannot load Kubernetes configuration ({path}): {path}: YAML aliases expand to more than 1000000 nodes"
    )
    assert "not-in-any-message" not in message


def test_a_kubeconfig_with_a_few_anchors_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG + "extensions: &e [{name: x}]\npreferences: {copy: *e}\n")
    [(_, doc)] = read_documents([path])
    assert doc["preferences"] == {"copy": [{"name": "x"}]}
