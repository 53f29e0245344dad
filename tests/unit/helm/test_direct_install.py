"""The pure half of a direct install: which installs qualify, the manifest, Helm's metadata, order and record."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from helm_controller.actions import ActionRequest, CRDsPolicy, KubeAccess, direct_request_refusal
from helm_controller.direct_install import (
    ChartShape,
    NotDirect,
    _read_shape,
    apply_failure,
    chart_qualifies,
    gvk,
    helm_object,
    kind_batches,
    labelled_manifest,
    record,
    release_qualifies,
    split_manifest,
)
from helm_controller.post_renderers import PostRender
from helm_controller.releases import Status, decode_secret

MANIFEST = (
    "---\n# Source: app/templates/sa.yaml\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n"
    "---\n# Source: app/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n"
    "  labels:\n    keep: 'yes'\ndata:\n  mode: '0777'\n"
)


def test_split_manifest_keeps_each_source() -> None:
    assert [src for src, _ in split_manifest(MANIFEST)] == ["app/templates/sa.yaml", "app/templates/cm.yaml"]
    assert split_manifest(MANIFEST)[1][1].endswith("mode: '0777'")


def test_labels_go_on_every_object_with_scalars_written_as_they_came() -> None:
    out = labelled_manifest(MANIFEST, {"helm.toolkit.fluxcd.io/name": "app"})
    assert out.count('helm.toolkit.fluxcd.io/name: "app"') == 2
    assert "keep: 'yes'" in out
    assert "mode: '0777'" in out
    assert [src for src, _ in split_manifest(out)] == ["app/templates/sa.yaml", "app/templates/cm.yaml"]
    assert labelled_manifest(MANIFEST, {}) == MANIFEST


def test_helm_object_adds_ownership_and_the_release_namespace() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "labels": {"x": "1"}}}
    out = helm_object(obj, release="rel", namespace="ns", namespaced=True)
    assert out["metadata"]["labels"] == {"x": "1", "app.kubernetes.io/managed-by": "Helm"}
    assert out["metadata"]["annotations"] == {
        "meta.helm.sh/release-name": "rel",
        "meta.helm.sh/release-namespace": "ns",
    }
    assert out["metadata"]["namespace"] == "ns"
    assert "namespace" not in helm_object(obj, release="rel", namespace="ns", namespaced=False)["metadata"]
    elsewhere = {**obj, "metadata": {"name": "b", "namespace": "other"}}
    assert helm_object(elsewhere, release="rel", namespace="ns", namespaced=True)["metadata"]["namespace"] == "other"
    assert obj["metadata"] == {"name": "b", "labels": {"x": "1"}}  # the input is not changed


def test_kinds_in_turn_and_helms_words() -> None:
    objs = [{"kind": "A"}, {"kind": "A"}, {"kind": "B"}, {"kind": "A"}]
    assert [len(b) for b in kind_batches(objs)] == [2, 1, 1]
    assert gvk({"apiVersion": "apps/v1", "kind": "Deployment"}) == "apps/v1, Kind=Deployment"
    assert gvk({"apiVersion": "v1", "kind": "Service"}) == "/v1, Kind=Service"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "ns"}}
    assert apply_failure(cm, ValueError("no")) == "server-side apply failed for object ns/b /v1, Kind=ConfigMap: no"


def test_the_record_is_the_secret_drivers() -> None:
    rendered = {
        "name": "rel",
        "info": {
            "first_deployed": "2026-12-03T18:00:00Z",
            "status": "pending-install",
            "description": "Dry run complete",
        },
        "chart": {"metadata": {"name": "app", "version": "1.0.0"}},
        "config": {"a": 1},
        "manifest": MANIFEST,
        "version": 1,
        "namespace": "ns",
        "apply_method": "ssa",
    }
    secret = record(
        rendered, status=Status.DEPLOYED, description="Install complete", labels={"team": "a"}, created=False
    )
    assert secret["metadata"]["name"] == "sh.helm.release.v1.rel.v1"
    labels = secret["metadata"]["labels"]
    assert set(labels) == {"team", "modifiedAt", "name", "owner", "status", "version"}
    assert (labels["name"], labels["owner"], labels["status"], labels["version"]) == ("rel", "helm", "deployed", "1")
    assert secret["type"] == "helm.sh/release.v1"
    # data.release: the API's base64 of Helm's base64 of gzip of the JSON
    helm_text = base64.b64decode(secret["data"]["release"])
    rel = json.loads(gzip.decompress(base64.b64decode(helm_text)))
    assert rel["info"] == {
        "first_deployed": "2026-12-03T18:00:00Z",
        "status": "deployed",
        "description": "Install complete",
    }
    assert rel["manifest"] == MANIFEST
    decoded = decode_secret({**secret, "metadata": {**secret["metadata"], "namespace": "ns"}})
    assert (decoded.name, decoded.version, decoded.status, decoded.labels) == ("rel", 1, "deployed", {"team": "a"})
    created = record(rendered, status=Status.PENDING_INSTALL, description="x", labels={}, created=True)
    assert "createdAt" in created["metadata"]["labels"]
    assert "modifiedAt" not in created["metadata"]["labels"]


def _chart(tmp_path: Path, files: dict[str, bytes]) -> Path:
    path = tmp_path / "chart.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {"app/Chart.yaml": b"name: app\nversion: 1.0.0\n", **files}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_chart_shape(tmp_path: Path) -> None:
    plain = _read_shape(_chart(tmp_path, {"app/templates/cm.yaml": b"kind: ConfigMap\n"}))
    assert plain == ChartShape(may_have_crds=False, may_have_hooks=False)
    hooked = _read_shape(_chart(tmp_path, {"app/templates/job.yaml": b'annotations: {"helm.sh/hook": post-install}'}))
    assert hooked.may_have_hooks
    assert _read_shape(_chart(tmp_path, {"app/crds/crd.yaml": b"kind: CustomResourceDefinition\n"})).may_have_crds
    assert _read_shape(_chart(tmp_path, {"app/charts/sub/crds/crd.yaml": b"x: 1\n"})).may_have_crds
    assert _read_shape(_chart(tmp_path, {"app/charts/sub-1.0.0.tgz": b"packed"})).may_have_crds


def test_what_goes_to_helm() -> None:
    chart_qualifies(ChartShape(False, False), skip_crds=False, disable_hooks=False)
    chart_qualifies(ChartShape(True, True), skip_crds=True, disable_hooks=True)
    with pytest.raises(NotDirect):
        chart_qualifies(ChartShape(True, False), skip_crds=False, disable_hooks=False)
    with pytest.raises(NotDirect):
        chart_qualifies(ChartShape(False, True), skip_crds=False, disable_hooks=False)
    release_qualifies({"apply_method": "ssa", "version": 1}, disable_hooks=False)
    release_qualifies({"apply_method": "ssa", "version": 1, "hooks": [{}]}, disable_hooks=True)
    for rendered in ({"apply_method": "ssa", "version": 1, "hooks": [{}]}, {"apply_method": "csa", "version": 1}):
        with pytest.raises(NotDirect):
            release_qualifies(rendered, disable_hooks=False)


def test_requests_that_go_to_helm(tmp_path: Path) -> None:
    base = ActionRequest(
        release_name="r",
        target_namespace="ns",
        storage_namespace="ns",
        chart_path=tmp_path,
        values={},
        timeout=60,
        max_history=5,
        kube=KubeAccess(None, server_validates_fields=True),
        crds=CRDsPolicy.CREATE,
    )
    assert direct_request_refusal(base) == ""
    assert direct_request_refusal(dataclasses.replace(base, server_side=False)) == "client-side apply"
    assert direct_request_refusal(dataclasses.replace(base, replace=True)) == "install.replace"
    kustomized = PostRender(({"patches": []},), labels={})
    assert direct_request_refusal(dataclasses.replace(base, post_render=kustomized)) == "kustomize post-renderers"
    assert direct_request_refusal(dataclasses.replace(base, post_render=PostRender((), labels={"a": "b"}))) == ""
    old_server = dataclasses.replace(base, kube=KubeAccess(None, server_validates_fields=False))
    assert direct_request_refusal(old_server) == "the apiserver does not validate fields itself"
