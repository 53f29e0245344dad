"""Kustomization's unsupported fields: each refused by its path when set; defaults and implemented fields pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_mesh.errors import InvalidSpec
from gitops_mesh.reconcile.unsupported import UNSUPPORTED_FIELD, unsupported_fields
from kustomize_controller.unsupported import KUSTOMIZATION, refuse_unsupported

SAMPLES = Path(__file__).parents[2] / "integration" / "crds" / "samples" / "valid"


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"kubeConfig": {"secretRef": {"name": "remote", "key": "value"}}}, "spec.kubeConfig"),
        ({"kubeConfig": {"configMapRef": {"name": "remote"}}}, "spec.kubeConfig"),
        (
            {"healthCheckExprs": [{"apiVersion": "x/v1", "kind": "X", "current": "status.ok"}]},
            "spec.healthCheckExprs",
        ),
        (
            {"dependsOn": [{"name": "db"}, {"name": "cache", "readyExpr": "dep.status.ok"}]},
            "spec.dependsOn[1].readyExpr",
        ),
        ({"decryption": {"provider": "sops", "serviceAccountName": "kms"}}, "spec.decryption.serviceAccountName"),
        ({"deletionPolicy": "WaitForTermination"}, "spec.deletionPolicy 'WaitForTermination'"),
    ],
)
def test_each_unsupported_field_is_refused(spec: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidSpec) as raised:
        refuse_unsupported(spec, KUSTOMIZATION)
    assert str(raised.value).startswith(f"{path} is not supported by this controller")
    assert raised.value.reason == UNSUPPORTED_FIELD


def test_kubeconfig_message_says_what_ignoring_it_would_do() -> None:
    [message] = unsupported_fields({"kubeConfig": {"secretRef": {"name": "remote"}}}, KUSTOMIZATION)
    assert "would apply (and prune) the manifests on this cluster" in message


@pytest.mark.parametrize("policy", ["MirrorPrune", "Delete", "Orphan", None, ""])
def test_implemented_deletion_policies_pass(policy: str | None) -> None:
    assert unsupported_fields({"deletionPolicy": policy}, KUSTOMIZATION) == []


def test_a_full_kustomization_of_implemented_fields_passes() -> None:
    sample = yaml.safe_load((SAMPLES / "kustomization-full.yaml").read_text())
    spec = sample["spec"]
    # The sample exercises the nested objects the table looks into.
    assert {"dependsOn", "decryption", "postBuild"} <= spec.keys()
    assert unsupported_fields(spec, KUSTOMIZATION) == []
    assert (
        unsupported_fields({"healthCheckExprs": [], "kubeConfig": None, "dependsOn": [{"name": "a"}]}, KUSTOMIZATION)
        == []
    )
