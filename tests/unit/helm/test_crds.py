"""A chart's crds/ as Flux applies them: which documents are CRDs, and Flux's origin labels on them."""

from __future__ import annotations

import pytest

from helm_controller.crds import CRDsFailed, crds_of, with_origin

CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
  labels:
    app: widget
spec:
  group: example.com
"""
OUTPUT = (
    "---\n# Source: app/crds/widgets.yaml\n"
    + CRD
    + "---\nkind: ConfigMap\napiVersion: v1\nmetadata:\n  name: stray\n\n"
    "---\n# Source: app/charts/sub/crds/gadgets.yaml\n" + CRD.replace("widgets", "gadgets") + "\n"
    "---\n# Source: app/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n"
)


def test_only_the_crds_of_crds_directories() -> None:
    found = crds_of(OUTPUT)
    # the ConfigMap in crds/ is dropped (Flux drops non-CRDs there); templates are not CRDs' business
    assert [c["metadata"]["name"] for c in found] == ["widgets.example.com", "gadgets.example.com"]


def test_unreadable_crds_are_flux_words() -> None:
    with pytest.raises(CRDsFailed, match=r"failed to parse CustomResourceDefinitions from app/crds/bad\.yaml"):
        crds_of("---\n# Source: app/crds/bad.yaml\nkind: [unclosed\n")


def test_origin_labels_merge_over_the_crds_own() -> None:
    crd = crds_of(OUTPUT)[0]
    labelled = with_origin(crd, {"helm.toolkit.fluxcd.io/name": "app", "helm.toolkit.fluxcd.io/namespace": "team"})
    assert labelled["metadata"]["labels"] == {
        "app": "widget",
        "helm.toolkit.fluxcd.io/name": "app",
        "helm.toolkit.fluxcd.io/namespace": "team",
    }
    assert crd["metadata"]["labels"] == {"app": "widget"}
