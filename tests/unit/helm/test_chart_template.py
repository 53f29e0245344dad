"""The HelmChart a HelmRelease's spec.chart makes, the chart source of spec.chartRef, and the HelmChart left behind."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_mesh.errors import InvalidSpec
from helm_controller.chart_template import (
    ChartSource,
    chart_current,
    chart_source,
    cross_namespace,
    desired_helmchart,
    stale_helmchart,
)


def hr(spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": "podinfo", "namespace": "team", **meta},
        "spec": {"interval": "5m", **spec},
    }


TEMPLATE = {"spec": {"chart": "podinfo", "sourceRef": {"kind": "HelmRepository", "name": "repo"}}}


def test_template_gives_the_helmchart_flux_builds_with_defaults() -> None:
    assert desired_helmchart(hr({"chart": TEMPLATE})) == {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "HelmChart",
        "metadata": {
            "name": "team-podinfo",
            "namespace": "team",
            "labels": {"helm.toolkit.fluxcd.io/name": "podinfo", "helm.toolkit.fluxcd.io/namespace": "team"},
        },
        "spec": {
            "chart": "podinfo",
            "version": "*",
            "sourceRef": {"kind": "HelmRepository", "name": "repo"},
            "interval": "5m",
            "reconcileStrategy": "ChartVersion",
        },
    }


def test_template_fields_and_metadata_are_carried() -> None:
    template = {
        "metadata": {"labels": {"team": "a", "helm.toolkit.fluxcd.io/name": "spoofed"}, "annotations": {"x": "y"}},
        "spec": {
            "chart": "./charts/app",
            "version": "1.2.x",
            "sourceRef": {"kind": "GitRepository", "name": "repo", "namespace": "flux-system"},
            "interval": "1m",
            "reconcileStrategy": "Revision",
            "valuesFiles": ["values.yaml", "values-prod.yaml"],
            "ignoreMissingValuesFiles": True,
            "verify": {"provider": "cosign", "secretRef": {"name": "keys"}, "ignored": "field"},
        },
    }
    chart = desired_helmchart(hr({"chart": template}))
    assert chart is not None
    assert chart["metadata"] == {
        "name": "team-podinfo",
        "namespace": "flux-system",
        # the owner labels are set after the template's, as Flux's SetOwnerLabels does
        "labels": {"team": "a", "helm.toolkit.fluxcd.io/name": "podinfo", "helm.toolkit.fluxcd.io/namespace": "team"},
        "annotations": {"x": "y"},
    }
    assert chart["spec"] == {
        "chart": "./charts/app",
        "version": "1.2.x",
        # the source's namespace is the HelmChart's own, never in its sourceRef
        "sourceRef": {"kind": "GitRepository", "name": "repo"},
        "interval": "1m",
        "reconcileStrategy": "Revision",
        "valuesFiles": ["values.yaml", "values-prod.yaml"],
        "ignoreMissingValuesFiles": True,
        "verify": {"provider": "cosign", "secretRef": {"name": "keys"}},
    }


def test_chart_ref_makes_no_helmchart() -> None:
    assert desired_helmchart(hr({"chartRef": {"kind": "HelmChart", "name": "shared"}})) is None


def test_chart_source_of_template_and_of_chart_ref() -> None:
    assert chart_source(hr({"chart": TEMPLATE})) == ChartSource("HelmChart", "team", "team-podinfo")
    moved = {"spec": {**TEMPLATE["spec"], "sourceRef": {"kind": "HelmRepository", "name": "r", "namespace": "src"}}}
    assert chart_source(hr({"chart": moved})) == ChartSource("HelmChart", "src", "team-podinfo")
    assert chart_source(hr({"chartRef": {"kind": "OCIRepository", "name": "oci"}})) == ChartSource(
        "OCIRepository", "team", "oci"
    )
    ref = {"kind": "HelmChart", "name": "c", "namespace": "shared"}
    assert chart_source(hr({"chartRef": ref})) == ChartSource("HelmChart", "shared", "c")
    assert str(ChartSource("HelmChart", "shared", "c")) == "shared/c"


@pytest.mark.parametrize(
    "spec",
    [{}, {"chart": TEMPLATE, "chartRef": {"kind": "HelmChart", "name": "c"}}],
)
def test_exactly_one_of_chart_and_chart_ref(spec: dict[str, Any]) -> None:
    with pytest.raises(InvalidSpec, match="either chart or chartRef must be set"):
        chart_source(hr(spec))
    with pytest.raises(InvalidSpec):
        desired_helmchart(hr(spec))


def test_chart_ref_of_an_unknown_kind_is_invalid() -> None:
    with pytest.raises(InvalidSpec, match="unsupported chartRef kind 'GitRepository'"):
        chart_source(hr({"chartRef": {"kind": "GitRepository", "name": "g"}}))


def test_cross_namespace() -> None:
    assert not cross_namespace(hr({"chart": TEMPLATE}))
    same = {"spec": {**TEMPLATE["spec"], "sourceRef": {"kind": "HelmRepository", "name": "r", "namespace": "team"}}}
    assert not cross_namespace(hr({"chart": same}))
    other = {"spec": {**TEMPLATE["spec"], "sourceRef": {"kind": "HelmRepository", "name": "r", "namespace": "x"}}}
    assert cross_namespace(hr({"chart": other}))
    assert cross_namespace(hr({"chartRef": {"kind": "HelmChart", "name": "c", "namespace": "x"}}))
    assert not cross_namespace(hr({"chartRef": {"kind": "HelmChart", "name": "c"}}))


def test_stale_helmchart_when_the_template_moves_or_goes() -> None:
    current = hr({"chart": TEMPLATE})
    assert stale_helmchart(current, None) is None
    assert stale_helmchart(current, "") is None
    assert stale_helmchart(current, "team/team-podinfo") is None
    assert stale_helmchart(current, ChartSource("HelmChart", "team", "team-podinfo")) is None
    # the source moved to another namespace: the old HelmChart goes
    assert stale_helmchart(current, "old/team-podinfo") == ChartSource("HelmChart", "old", "team-podinfo")
    # switched to chartRef: the one we made goes
    switched = hr({"chartRef": {"kind": "OCIRepository", "name": "oci"}})
    assert stale_helmchart(switched, "team/team-podinfo") == ChartSource("HelmChart", "team", "team-podinfo")
    # ... unless the chartRef names that very HelmChart
    adopted = hr({"chartRef": {"kind": "HelmChart", "name": "team-podinfo"}})
    assert stale_helmchart(adopted, "team/team-podinfo") is None


def test_stale_helmchart_on_deletion_and_never_while_suspended() -> None:
    deleting = hr({"chart": TEMPLATE}, deletionTimestamp="2026-01-01T00:00:00Z")
    assert stale_helmchart(deleting, "team/team-podinfo") == ChartSource("HelmChart", "team", "team-podinfo")
    suspended = hr({"chart": TEMPLATE, "suspend": True}, deletionTimestamp="2026-01-01T00:00:00Z")
    assert stale_helmchart(suspended, "team/team-podinfo") is None
    assert stale_helmchart(hr({"chartRef": {"kind": "OCIRepository", "name": "o"}, "suspend": True}), "team/x") is None


def test_a_helmchart_already_as_desired_is_not_applied_again() -> None:
    desired = desired_helmchart(hr({"chart": TEMPLATE}))
    assert desired is not None
    live = {
        **desired,
        "metadata": {**desired["metadata"], "uid": "u", "finalizers": ["finalizers.fluxcd.io"]},
        "spec": {**desired["spec"], "suspend": False},  # a field the template does not set: not ours
        "status": {"observedGeneration": 1},
    }
    assert chart_current(desired, live)
    assert not chart_current(desired, None)
    # a field of ours changed, or one we set left over, or the labels differ: applied again
    assert not chart_current(desired, {**live, "spec": {**live["spec"], "version": "1.x"}})
    assert not chart_current(desired, {**live, "spec": {**live["spec"], "valuesFiles": ["a.yaml"]}})
    extra = {**live["metadata"], "labels": {**live["metadata"]["labels"], "x": "y"}}
    assert not chart_current(desired, {**live, "metadata": extra})
    assert not chart_current(desired, {**live, "metadata": {**live["metadata"], "annotations": {"a": "b"}}})
