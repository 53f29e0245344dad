"""The plugin's origin labels: set on the node graph, so scalars keep their meaning; hooks as the strategy says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from helm_controller.post_renderers import PostRenderFailed, Strategy
from helm_controller.postrender import label_documents, render

LABELS = {"helm.toolkit.fluxcd.io/name": "web", "helm.toolkit.fluxcd.io/namespace": "apps"}

RENDERED = b"""---
# Source: web/templates/cm.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: web
  labels:
    app: web
    helm.toolkit.fluxcd.io/name: someone-else
data:
  enabled: yes
  mode: 0777
  quoted: "yes"
  time: 1:20
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels:
spec:
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata:
  name: web-test
  annotations:
    helm.sh/hook: test
"""


def docs(stream: bytes) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(stream) if d]


def test_every_object_gains_the_labels_over_its_own() -> None:
    cm, svc, pod = docs(label_documents(RENDERED, LABELS))
    assert cm["metadata"]["labels"] == {"app": "web", **LABELS}
    assert svc["metadata"]["labels"] == LABELS  # a null labels field becomes the labels
    assert pod["metadata"]["labels"] == LABELS  # made where missing
    assert svc["spec"]["ports"] == [{"port": 80}]


def test_scalars_are_written_back_as_they_came() -> None:
    out = label_documents(RENDERED, LABELS).decode()
    # Constructed under YAML 1.1 and dumped, these would turn into true, 511 and 80.
    for written in ("enabled: yes", "mode: 0777", 'quoted: "yes"', "time: 1:20"):
        assert written in out


def test_nothing_to_set_leaves_the_stream_untouched() -> None:
    assert label_documents(RENDERED, {}) == RENDERED


def test_unreadable_manifests_are_a_post_render_failure() -> None:
    with pytest.raises(PostRenderFailed, match="rendered manifests"):
        label_documents(b"a: [unclosed\n", LABELS)


@pytest.mark.parametrize(("strategy", "hook_labelled"), [(Strategy.COMBINED, True), (Strategy.NO_HOOKS, False)])
def test_hooks_follow_the_strategy(tmp_path: Path, strategy: Strategy, hook_labelled: bool) -> None:
    request = {"kustomizations": [], "labels": LABELS, "strategy": strategy.value, "deadline": 0, "kustomize": None}
    out = docs(render(RENDERED, request, work=tmp_path))
    pod = next(d for d in out if d["kind"] == "Pod")
    assert ("labels" in pod["metadata"]) is hook_labelled
    assert all(d["metadata"]["labels"].items() >= LABELS.items() for d in out if d["kind"] != "Pod")


def test_steps_without_kustomize_fail_clearly(tmp_path: Path) -> None:
    request = {"kustomizations": [{"resources": ["helm-output.yaml"]}], "labels": LABELS, "deadline": 0}
    with pytest.raises(PostRenderFailed, match="need kustomize"):
        render(RENDERED, {**request, "kustomize": None}, work=tmp_path)
