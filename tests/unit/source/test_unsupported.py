"""The source kinds' unsupported fields: each refused by its path when set; defaults and implemented fields pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_mesh.errors import InvalidSpec
from gitops_mesh.reconcile.unsupported import UNSUPPORTED_FIELD, Unsupported, unsupported_fields
from source_controller.unsupported import GIT_REPOSITORY, HELM_CHART, HELM_REPOSITORY, refuse_unsupported

SAMPLES = Path(__file__).parents[2] / "integration" / "crds" / "samples" / "valid"


@pytest.mark.parametrize(
    ("table", "spec", "path"),
    [
        (GIT_REPOSITORY, {"provider": "azure"}, "spec.provider 'azure'"),
        (GIT_REPOSITORY, {"provider": "github"}, "spec.provider 'github'"),
        (GIT_REPOSITORY, {"serviceAccountName": "git-reader"}, "spec.serviceAccountName"),
        (GIT_REPOSITORY, {"proxySecretRef": {"name": "proxy"}}, "spec.proxySecretRef"),
        (HELM_REPOSITORY, {"provider": "aws"}, "spec.provider 'aws'"),
        (HELM_REPOSITORY, {"provider": "gcp", "type": "oci"}, "spec.provider 'gcp'"),
        (
            HELM_REPOSITORY,
            {"accessFrom": {"namespaceSelectors": [{"matchLabels": {"team": "a"}}]}},
            "spec.accessFrom",
        ),
        (
            HELM_CHART,
            {"verify": {"provider": "notation", "secretRef": {"name": "k"}}},
            "spec.verify.provider 'notation'",
        ),
    ],
)
def test_each_unsupported_field_is_refused(table: tuple[Unsupported, ...], spec: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidSpec) as raised:
        refuse_unsupported(spec, table)
    assert str(raised.value).startswith(f"{path} is not supported by this controller")
    assert raised.value.reason == UNSUPPORTED_FIELD


@pytest.mark.parametrize(
    ("table", "spec"),
    [
        (GIT_REPOSITORY, {"provider": "generic", "proxySecretRef": None, "serviceAccountName": ""}),
        (HELM_REPOSITORY, {"provider": "generic", "type": "oci", "insecure": True, "accessFrom": {}}),
        (HELM_CHART, {"verify": None, "valuesFiles": ["values.yaml"]}),
    ],
)
def test_defaults_and_empty_values_pass(table: tuple[Unsupported, ...], spec: dict[str, Any]) -> None:
    assert unsupported_fields(spec, table) == []


@pytest.mark.parametrize(
    ("table", "sample"),
    [
        (GIT_REPOSITORY, "gitrepository-https-branch.yaml"),
        (GIT_REPOSITORY, "gitrepository-ssh-semver-verify.yaml"),
        (HELM_REPOSITORY, "helmrepository-https.yaml"),
        (HELM_REPOSITORY, "helmrepository-oci.yaml"),
        (HELM_CHART, "helmchart-from-gitrepository.yaml"),
        (HELM_CHART, "helmchart-from-helmrepository.yaml"),
    ],
)
def test_samples_of_implemented_fields_pass(table: tuple[Unsupported, ...], sample: str) -> None:
    spec = yaml.safe_load((SAMPLES / sample).read_text())["spec"]
    assert unsupported_fields(spec, table) == []
