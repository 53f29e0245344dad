"""The chart a HelmRelease releases: the HelmChart its ``spec.chart`` template makes, or its ``spec.chartRef`` (pure).

Flux's helm-controller (``internal/reconcile/helmchart_template.go``) server-side applies a HelmChart
``<hr-namespace>-<hr-name>`` in the source's namespace from ``spec.chart``, labels it with its owner
(``helm.toolkit.fluxcd.io/name``, ``/namespace``) and records it in ``status.helmChart`` as
``<namespace>/<name>``. When the template moves (a new source namespace, a switch to ``chartRef``) or the
HelmRelease is deleted, the HelmChart recorded there is deleted, unless the HelmRelease is suspended.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from gitops_mesh.errors import InvalidSpec

SOURCE_API: Final = "source.toolkit.fluxcd.io/v1"
HELMCHART: Final = "HelmChart"
#: The kinds ``spec.chartRef`` may name (Flux gates ExternalArtifact behind --feature-gates=ExternalArtifact;
#: accepted here as the kustomize-controller accepts it).
CHART_REF_KINDS: Final = frozenset({"HelmChart", "OCIRepository", "ExternalArtifact"})
#: fluxcd/pkg ssa's owner labels, with helm-controller's API group as the owner.
OWNER_NAME_LABEL: Final = "helm.toolkit.fluxcd.io/name"
OWNER_NAMESPACE_LABEL: Final = "helm.toolkit.fluxcd.io/namespace"
#: CRD defaults of HelmChartTemplateSpec, written out so the applied object says what it gets.
DEFAULT_VERSION: Final = "*"
DEFAULT_RECONCILE_STRATEGY: Final = "ChartVersion"

#: Flux's CRD validation message (the apiserver enforces it for v2; served older versions may not).
CHART_XOR_CHARTREF: Final = "either chart or chartRef must be set"


@dataclass(frozen=True)
class ChartSource:
    """The object whose artifact is the chart: a HelmChart (made by us or referred to), an OCIRepository or an
    ExternalArtifact."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _template(hr: Mapping[str, Any]) -> Mapping[str, Any] | None:
    chart = _mapping(hr.get("spec")).get("chart")
    return chart if isinstance(chart, Mapping) else None


def _chart_ref(hr: Mapping[str, Any]) -> Mapping[str, Any] | None:
    ref = _mapping(hr.get("spec")).get("chartRef")
    return ref if isinstance(ref, Mapping) else None


def helmchart_name(hr: Mapping[str, Any]) -> str:
    """Flux's GetHelmChartName: ``<namespace>-<name>`` of the HelmRelease (not shortened)."""
    meta = hr["metadata"]
    return f"{meta['namespace']}-{meta['name']}"


def _template_namespace(hr: Mapping[str, Any], template: Mapping[str, Any]) -> str:
    source = _mapping(_mapping(template.get("spec")).get("sourceRef"))
    return str(source.get("namespace") or hr["metadata"]["namespace"])


def chart_source(hr: Mapping[str, Any]) -> ChartSource:
    """Where the chart comes from; InvalidSpec unless exactly one of ``spec.chart`` / ``spec.chartRef`` is set."""
    template, ref = _template(hr), _chart_ref(hr)
    if (template is None) == (ref is None):
        raise InvalidSpec(CHART_XOR_CHARTREF)
    if template is not None:
        return ChartSource(HELMCHART, _template_namespace(hr, template), helmchart_name(hr))
    assert ref is not None
    kind, name = ref.get("kind"), ref.get("name")
    if kind not in CHART_REF_KINDS:
        raise InvalidSpec(f"unsupported chartRef kind '{kind}': must be one of {', '.join(sorted(CHART_REF_KINDS))}")
    if not isinstance(name, str) or not name:
        raise InvalidSpec("chartRef.name must be set")
    return ChartSource(str(kind), str(ref.get("namespace") or hr["metadata"]["namespace"]), name)


def cross_namespace(hr: Mapping[str, Any]) -> bool:
    """Whether the chart's source lives in another namespace than the HelmRelease (``--no-cross-namespace-refs``)."""
    template, ref = _template(hr), _chart_ref(hr)
    ns = hr["metadata"]["namespace"]
    if template is not None:
        other = _mapping(_mapping(template.get("spec")).get("sourceRef")).get("namespace")
        if other and other != ns:
            return True
    if ref is not None:
        other = ref.get("namespace")
        if other and other != ns:
            return True
    return False


def desired_helmchart(hr: Mapping[str, Any]) -> dict[str, Any] | None:
    """The HelmChart to server-side apply for ``spec.chart`` (None for ``spec.chartRef``), as Flux builds it.

    Only the template's fields are copied (Flux's buildHelmChartFromTemplate): chart, version, sourceRef's
    kind and name (its namespace is the object's), interval (the HelmRelease's when the template has none),
    reconcileStrategy, valuesFiles, ignoreMissingValuesFiles and verify's provider and secretRef. The
    template's labels and annotations go on the object; the owner labels win over a template label of the
    same key, as Flux sets them after.
    """
    source = chart_source(hr)
    template = _template(hr)
    if template is None:
        return None
    spec = _mapping(template.get("spec"))
    source_ref = _mapping(spec.get("sourceRef"))
    chart_spec: dict[str, Any] = {
        "chart": spec.get("chart"),
        "version": spec.get("version") or DEFAULT_VERSION,
        "sourceRef": {"kind": source_ref.get("kind"), "name": source_ref.get("name")},
        "interval": spec.get("interval") or _mapping(hr.get("spec")).get("interval"),
        "reconcileStrategy": spec.get("reconcileStrategy") or DEFAULT_RECONCILE_STRATEGY,
    }
    chart_spec = {k: v for k, v in chart_spec.items() if v is not None}
    if spec.get("valuesFiles"):
        chart_spec["valuesFiles"] = list(spec["valuesFiles"])
    if spec.get("ignoreMissingValuesFiles"):
        chart_spec["ignoreMissingValuesFiles"] = True
    verify = spec.get("verify")
    if isinstance(verify, Mapping):
        chart_spec["verify"] = {k: verify[k] for k in ("provider", "secretRef") if verify.get(k) is not None}
    meta = _mapping(template.get("metadata"))
    labels = {str(k): str(v) for k, v in _mapping(meta.get("labels")).items()}
    labels[OWNER_NAME_LABEL] = hr["metadata"]["name"]
    labels[OWNER_NAMESPACE_LABEL] = hr["metadata"]["namespace"]
    metadata: dict[str, Any] = {"name": source.name, "namespace": source.namespace, "labels": labels}
    annotations = _mapping(meta.get("annotations"))
    if annotations:
        metadata["annotations"] = {str(k): str(v) for k, v in annotations.items()}
    return {"apiVersion": SOURCE_API, "kind": HELMCHART, "metadata": metadata, "spec": chart_spec}


#: The HelmChart spec fields a HelmRelease's template sets (and so owns).
TEMPLATE_FIELDS: Final = (
    "chart",
    "version",
    "sourceRef",
    "interval",
    "reconcileStrategy",
    "valuesFiles",
    "ignoreMissingValuesFiles",
    "verify",
)


def chart_current(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """``live`` already is ``desired``: the template's spec fields, labels and annotations all equal (Flux updates
    the HelmChart only when it needs it). Anything else, an extra label included, is applied again."""
    if live is None:
        return False
    live_spec = _mapping(live.get("spec"))
    if {k: live_spec[k] for k in TEMPLATE_FIELDS if k in live_spec} != desired["spec"]:
        return False
    want, have = desired["metadata"], _mapping(live.get("metadata"))
    return dict(_mapping(have.get("labels"))) == want["labels"] and dict(_mapping(have.get("annotations"))) == dict(
        want.get("annotations") or {}
    )


def _previous(previous: ChartSource | str | None) -> ChartSource | None:
    """``status.helmChart`` (``<namespace>/<name>``) or a ChartSource, as the HelmChart we made last."""
    if previous is None or isinstance(previous, ChartSource):
        return previous
    ns, sep, name = previous.partition("/")
    if not sep or not ns or not name:
        return None
    return ChartSource(HELMCHART, ns, name)


def stale_helmchart(hr: Mapping[str, Any], previous: ChartSource | str | None) -> ChartSource | None:
    """The HelmChart we made before that is to be deleted now, or None.

    ``previous`` is the one recorded in ``status.helmChart``. As Flux: it goes when the template now makes
    another one (the source's namespace changed), when the HelmRelease moved to ``chartRef``, or when the
    HelmRelease is being deleted; never while the HelmRelease is suspended. One deviation: a ``chartRef``
    naming that very HelmChart keeps it (Flux would delete the chart it is about to release).
    """
    old = _previous(previous)
    if old is None or _mapping(hr.get("spec")).get("suspend") is True:
        return None
    if _mapping(hr.get("metadata")).get("deletionTimestamp"):
        return old
    template, ref = _template(hr), _chart_ref(hr)
    if template is not None:
        current = ChartSource(HELMCHART, _template_namespace(hr, template), helmchart_name(hr))
        return None if current == old else old
    if ref is not None:
        referred = ChartSource(
            str(ref.get("kind")), str(ref.get("namespace") or hr["metadata"]["namespace"]), str(ref.get("name"))
        )
        return None if referred == old else old
    return old


__all__ = [
    "CHART_XOR_CHARTREF",
    "ChartSource",
    "chart_source",
    "cross_namespace",
    "desired_helmchart",
    "helmchart_name",
    "stale_helmchart",
]
