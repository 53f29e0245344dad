"""Unit: helm_controller.drift — the spec's rules, target matching, the opt-out annotation, the diff with ignore paths, messages."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_mesh.errors import InvalidSpec
from helm_controller import drift
from helm_controller.drift import Correction, DiffType, Mode, ObjectDiff
from helm_controller.releases import manifest_documents


def deployment(replicas: int = 1, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps", "labels": {"app": "web"}, **meta},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    }


def live(obj: dict[str, Any], **extra_meta: Any) -> dict[str, Any]:
    out = {**obj, "metadata": {**obj["metadata"], "resourceVersion": "7", "uid": "u", **extra_meta}}
    out["status"] = {"replicas": 3}
    return out


# --- the spec -----------------------------------------------------------------------------------------------------


def test_absent_drift_detection_is_disabled_and_modes_parse() -> None:
    assert drift.drift_detection({}) == drift.DriftDetection(Mode.DISABLED)
    assert not drift.drift_detection({}).detects
    assert drift.drift_detection({"driftDetection": {"mode": "warn"}}).detects
    assert drift.drift_detection({"driftDetection": {"mode": "enabled"}}).mode is Mode.ENABLED


@pytest.mark.parametrize(
    "spec",
    [
        {"mode": "sometimes"},
        {"mode": "enabled", "ignore": [{"paths": []}]},
        {"mode": "enabled", "ignore": [{"paths": ["spec/replicas"]}]},  # a pointer starts with "/"
        {"mode": "enabled", "ignore": [{"paths": ["/a"], "target": {"kind": "(unclosed"}}]},
        {"mode": "enabled", "ignore": [{"paths": ["/a"], "target": {"labelSelector": "a in b"}}]},
        {"mode": "enabled", "ignore": [{"paths": ["/a"], "target": {"labelSelector": "n>1"}}]},
        {"mode": "enabled", "ignore": [{"paths": ["/a"]}] * (drift.MAX_RULES + 1)},
    ],
)
def test_a_malformed_rule_is_invalid_spec(spec: dict[str, Any]) -> None:
    with pytest.raises(InvalidSpec):
        drift.drift_detection({"driftDetection": spec})


def test_target_patterns_are_anchored_and_all_must_match() -> None:
    rules = drift.drift_detection(
        {"driftDetection": {"ignore": [{"paths": ["/spec/replicas"], "target": {"kind": "Deploy", "group": "apps"}}]}}
    ).ignore
    assert drift.ignored_paths(rules, deployment()) == []  # "Deploy" must match the whole kind
    rules = drift.drift_detection(
        {"driftDetection": {"ignore": [{"paths": ["/spec/replicas"], "target": {"kind": "Deploy.*", "name": "w.b"}}]}}
    ).ignore
    assert drift.ignored_paths(rules, deployment()) == ["/spec/replicas"]
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}
    assert drift.ignored_paths(rules, svc) == []


def test_label_and_annotation_selectors_in_string_form() -> None:
    spec = {
        "driftDetection": {
            "ignore": [
                {"paths": ["/a"], "target": {"labelSelector": "app in (web, api),tier!=db"}},
                {"paths": ["/b"], "target": {"annotationSelector": "!skip,owner=team"}},
                {"paths": ["/c"]},
            ]
        }
    }
    rules = drift.drift_detection(spec).ignore
    obj = deployment(annotations={"owner": "team"})
    assert drift.ignored_paths(rules, obj) == ["/a", "/b", "/c"]
    other = deployment(annotations={"owner": "team", "skip": "yes"})
    other["metadata"]["labels"] = {"app": "web", "tier": "db"}
    assert drift.ignored_paths(rules, other) == ["/c"]


def test_the_opt_out_annotation_or_label() -> None:
    assert drift.excluded(deployment(annotations={drift.DRIFT_DETECTION_KEY: "disabled"}))
    assert drift.excluded({"metadata": {"labels": {drift.DRIFT_DETECTION_KEY: "Disabled"}}})
    assert not drift.excluded(deployment(annotations={drift.DRIFT_DETECTION_KEY: "enabled"}))
    assert not drift.excluded(None)


# --- the diff -----------------------------------------------------------------------------------------------------


def test_helm_metadata_is_added_without_touching_the_input() -> None:
    obj = deployment()
    out = drift.with_helm_metadata(obj, "web", "apps")
    assert out["metadata"]["labels"] == {"app": "web", "app.kubernetes.io/managed-by": "Helm"}
    assert out["metadata"]["annotations"]["meta.helm.sh/release-name"] == "web"
    assert "annotations" not in obj["metadata"]


def test_unchanged_ignores_status_and_server_metadata() -> None:
    want = deployment(3)
    have = live(want, managedFields=[{"manager": "kubectl"}], generation=4)
    dry = live(want, generation=5)
    assert drift.compare(want, have, dry, []).type is DiffType.NONE


def test_a_changed_field_is_update_with_a_patch_to_the_dry_run() -> None:
    want = deployment(3)
    have, dry = live(deployment(1)), live(want)
    d = drift.compare(want, have, dry, [])
    assert d.type is DiffType.UPDATE
    assert list(d.patch) == [{"op": "replace", "path": "/spec/replicas", "value": 3}]
    assert d.counts() == (0, 1, 0)


def test_an_ignored_path_is_not_drift_but_other_changes_still_are() -> None:
    want = deployment(3)
    assert drift.compare(want, live(deployment(1)), live(want), ["/spec/replicas"]).type is DiffType.NONE
    changed = deployment(1)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "evil"
    d = drift.compare(want, live(changed), live(want), ["/spec/replicas", "/no/such/path"])
    assert [op["path"] for op in d.patch] == ["/spec/template/spec/containers/0/image"]


def test_labels_added_by_others_are_not_drift_but_removed_ones_are() -> None:
    want = deployment()
    extra = live(want)
    extra["metadata"]["labels"] = {"app": "web", "added-by": "someone"}
    assert drift.compare(want, extra, live(want), []).type is DiffType.NONE
    missing = live(want)
    missing["metadata"]["labels"] = {}
    d = drift.compare(want, missing, live(want), [])
    assert d.type is DiffType.UPDATE
    assert list(d.patch) == [{"op": "add", "path": "/metadata/labels/app", "value": "web"}]


def test_a_missing_object_is_create() -> None:
    want = deployment()
    assert drift.compare(want, None, want, []).type is DiffType.CREATE


def test_remove_paths_escapes_and_lists() -> None:
    obj = {"metadata": {"annotations": {"a/b": "x", "c": "y"}}, "items": [1, 2, 3]}
    out = drift.remove_paths(obj, ["/metadata/annotations/a~1b", "/items/1", "/items/9", "/nope/deeper"])
    assert out == {"metadata": {"annotations": {"c": "y"}}, "items": [1, 3]}
    assert obj["items"] == [1, 2, 3]


# --- messages -----------------------------------------------------------------------------------------------------


def test_summary_and_messages_in_flux_wording() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "apps"}}
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}}
    diffs = [
        ObjectDiff(deployment(), DiffType.UPDATE, ({"op": "replace", "path": "/spec/replicas", "value": 1},)),
        ObjectDiff(svc, DiffType.CREATE),
        ObjectDiff(ns, DiffType.EXCLUDE),
        ObjectDiff(ns, DiffType.NONE),
    ]
    assert drift.has_changes(diffs)
    assert not drift.has_changes(diffs[2:])
    assert drift.drifted_message("apps/web.v1", diffs) == (
        "Cluster state of release apps/web.v1 has drifted from the desired state:\n"
        "Deployment/apps/web changed (0 additions, 1 changes, 0 removals)\n"
        "Service/apps/web removed\n"
        "Namespace/apps excluded"
    )
    assert drift.summarize_brief(diffs) == "removed: 1, changed: 1, excluded: 1"
    ok = Correction(("Service/apps/web created", "Deployment/apps/web configured"))
    assert ok.reason == "DriftCorrected"
    assert ok.message("apps/web.v1") == (
        "Cluster state of release apps/web.v1 has been corrected:\nService/apps/web created\nDeployment/apps/web configured"
    )
    partial = Correction(("Service/apps/web created",), ("Deployment/apps/web patch failure: denied",))
    assert partial.reason == "DriftCorrectionFailed"
    assert partial.message("apps/web.v1").startswith(
        "Failed to partially correct cluster state of release apps/web.v1:\n"
    )
    assert partial.message("apps/web.v1").endswith("\n\nSuccessful corrections:\nService/apps/web created")


def test_manifest_documents_flattens_lists_and_skips_nameless() -> None:
    manifest = (
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
        "---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: b}}\n"
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {}\n---\n"
    )
    assert [d["metadata"]["name"] for d in manifest_documents(manifest)] == ["a", "b"]
