"""Event and finalizer payloads, without an apiserver."""

from __future__ import annotations

from gitops_mesh.kube.events import aggregation_key, involved_object, new_event
from gitops_mesh.kube.finalizers import finalizer_patch, has_finalizer
from gitops_mesh.kube.objects import KubeObject, split_api_version

KS: KubeObject = {
    "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
    "kind": "Kustomization",
    "metadata": {"name": "apps", "namespace": "flux-system", "uid": "u-1", "resourceVersion": "42"},
}


def test_new_event_shape() -> None:
    event = new_event(
        KS,
        event_type="Warning",
        reason="BuildFailed",
        message="kustomize build failed",
        component="kustomize-controller",
        instance="pod-1",
        now="2025-01-01T00:00:00Z",
    )
    assert event["metadata"]["namespace"] == "flux-system"
    assert event["metadata"]["name"].startswith("apps.")
    assert event["involvedObject"] == {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "name": "apps",
        "namespace": "flux-system",
        "uid": "u-1",
        "resourceVersion": "42",
    }
    assert event["source"] == {"component": "kustomize-controller", "host": "pod-1"}
    assert (event["count"], event["firstTimestamp"], event["lastTimestamp"]) == (
        1,
        "2025-01-01T00:00:00Z",
        "2025-01-01T00:00:00Z",
    )


def test_cluster_scoped_objects_get_events_in_default() -> None:
    ns: KubeObject = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a", "uid": "u"}}
    assert (
        new_event(ns, event_type="Normal", reason="R", message="m", component="c", instance="i")["metadata"][
            "namespace"
        ]
        == "default"
    )
    assert "namespace" not in involved_object(ns)


def test_aggregation_key_ignores_resource_version() -> None:
    later = {**KS, "metadata": {**KS["metadata"], "resourceVersion": "43"}}
    assert aggregation_key(KS, "Normal", "R", "m") == aggregation_key(later, "Normal", "R", "m")
    assert aggregation_key(KS, "Normal", "R", "m") != aggregation_key(KS, "Normal", "R", "other")


def test_finalizer_patch_is_guarded_by_resource_version() -> None:
    obj: KubeObject = {"metadata": {"name": "x", "resourceVersion": "7", "finalizers": ["a"]}}
    assert has_finalizer(obj, "a")
    assert not has_finalizer(obj, "b")
    assert finalizer_patch(obj, ["a", "b"]) == {"metadata": {"finalizers": ["a", "b"], "resourceVersion": "7"}}


def test_split_api_version() -> None:
    assert split_api_version("v1") == ("", "v1")
    assert split_api_version("apps/v1") == ("apps", "v1")
