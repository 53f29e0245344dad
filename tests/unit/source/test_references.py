"""Which Secrets a source reads, as the labelled-Secret watch indexes them."""

from __future__ import annotations

from source_controller.references import git_repository_secrets, helm_repository_secrets


def test_git_repository_secrets() -> None:
    obj = {
        "metadata": {"name": "r", "namespace": "apps"},
        "spec": {"secretRef": {"name": "creds"}, "verify": {"mode": "HEAD", "secretRef": {"name": "keys"}}},
    }
    assert git_repository_secrets(obj) == ["Secret/apps/creds", "Secret/apps/keys"]
    assert git_repository_secrets({"metadata": {"namespace": "apps"}, "spec": {}}) == []


def test_helm_repository_secrets() -> None:
    obj = {"metadata": {"namespace": "x"}, "spec": {"secretRef": {"name": "a"}, "certSecretRef": {"name": "tls"}}}
    assert helm_repository_secrets(obj) == ["Secret/x/a", "Secret/x/tls"]
