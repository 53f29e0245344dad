"""Unit: gitops_mesh.kube.objects — Flux's AnyInMetadata (has_metadata_value)."""

from __future__ import annotations

from gitops_mesh.kube.objects import has_metadata_value


def test_a_label_or_an_annotation_counts_and_case_is_ignored() -> None:
    by_label = {"metadata": {"labels": {"k": "Disabled"}}}
    by_annotation = {"metadata": {"annotations": {"k": "disabled"}}}
    assert has_metadata_value(by_label, "k", "disabled")
    assert has_metadata_value(by_annotation, "k", "DISABLED")


def test_other_values_missing_keys_and_no_object_do_not_count() -> None:
    assert not has_metadata_value({"metadata": {"annotations": {"k": "enabled"}}}, "k", "disabled")
    assert not has_metadata_value({"metadata": {"annotations": {"other": "disabled"}}}, "k", "disabled")
    assert not has_metadata_value({"metadata": {"labels": {"k": ""}}}, "k", "")
    assert not has_metadata_value({}, "k", "disabled")
    assert not has_metadata_value(None, "k", "disabled")
