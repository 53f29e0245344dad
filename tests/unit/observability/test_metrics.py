"""Per-object series go with their object, read back from prometheus-client's real default registry."""

from __future__ import annotations

from prometheus_client import REGISTRY

from gitops_mesh.observability import metrics


def series_of(name: str, namespace: str) -> list[tuple[str, dict[str, str]]]:
    """Every sample in the whole registry that carries this object's name and namespace labels."""
    return [
        (sample.name, sample.labels)
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.labels.get("name") == name and sample.labels.get("namespace") == namespace
    ]


def record(kind: str, namespace: str, name: str) -> None:
    """What the runner records about one object over a few reconciles."""
    labels = {"kind": kind, "namespace": namespace, "name": name}
    metrics.reconcile_duration.labels(**labels).observe(0.3)
    metrics.suspend_status.labels(**labels).set(0)
    for cond_type in ("Ready", "Reconciling", "Stalled"):
        for status in ("True", "False", "Unknown"):
            metrics.reconcile_condition.labels(**labels, type=cond_type, status=status).set(status == "True")


def test_forget_object_removes_every_series_of_that_object_only() -> None:
    record("GitRepository", "forget-ns", "gone")
    record("GitRepository", "forget-ns", "kept")
    record("Kustomization", "forget-ns", "gone")  # same name, another kind
    assert len(series_of("gone", "forget-ns")) > 2 * 9

    metrics.forget_object("GitRepository", "forget-ns", "gone")

    left = series_of("gone", "forget-ns")
    assert left, "the Kustomization of the same name keeps its series"
    assert {labels["kind"] for _, labels in left} == {"Kustomization"}
    kept = series_of("kept", "forget-ns")
    assert ("gotk_suspend_status", {"kind": "GitRepository", "name": "kept", "namespace": "forget-ns"}) in kept
    assert sum(name == "gotk_reconcile_condition" for name, _ in kept) == 9
    assert (
        REGISTRY.get_sample_value(
            "gotk_reconcile_duration_seconds_count", {"kind": "GitRepository", "name": "kept", "namespace": "forget-ns"}
        )
        == 1.0
    )


def test_forgetting_an_object_without_series_is_a_no_op() -> None:
    metrics.forget_object("HelmChart", "forget-ns", "never-reconciled")
    assert series_of("never-reconciled", "forget-ns") == []
