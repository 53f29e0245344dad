"""What a HelmRelease points at — its chart, its values, its dependencies — and whether they let it proceed (pure)."""

from __future__ import annotations

from typing import Any

from gitops_mesh import dependencies
from gitops_mesh.errors import DependencyNotReady, InvalidSpec
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.watches import ref_key

API_VERSION = "helm.toolkit.fluxcd.io/v2"
KIND = "HelmRelease"
SOURCE_API = "source.toolkit.fluxcd.io/v1"

#: The HelmRelease cache's indexes: by the HelmChart followed, by the HelmReleases depended on.
CHART_INDEX = "chart"
DEPENDENCY_INDEX = "dependsOn"

Key = tuple[str, str]


def chart_key(obj: KubeObject) -> Key:
    """(namespace, name) of the HelmChart a HelmRelease releases: the one made from ``spec.chart`` (named
    ``<namespace>-<name>`` in the source's namespace) or the one ``spec.chartRef`` names."""
    spec = obj.get("spec") or {}
    ns = obj["metadata"]["namespace"]
    ref = spec.get("chartRef")
    if isinstance(ref, dict) and ref.get("name"):
        return str(ref.get("namespace") or ns), str(ref["name"])
    source = ((spec.get("chart") or {}).get("spec") or {}).get("sourceRef") or {}
    return str(source.get("namespace") or ns), f"{ns}-{obj['metadata']['name']}"


def chart_refs(obj: KubeObject) -> list[str]:
    """Index value: the HelmChart whose new artifact wakes this HelmRelease."""
    return [ref_key("HelmChart", *chart_key(obj))]


def values_refs(obj: KubeObject) -> list[str]:
    """Index values: the Secrets and ConfigMaps of ``spec.valuesFrom`` (labelled ones wake the release)."""
    ns = obj["metadata"]["namespace"]
    refs = []
    for source in (obj.get("spec") or {}).get("valuesFrom") or []:
        if isinstance(source, dict) and source.get("kind") in ("Secret", "ConfigMap") and source.get("name"):
            refs.append(ref_key(source["kind"], ns, source["name"]))
    return refs


def dependency_refs(obj: KubeObject) -> list[str]:
    """Index values: the HelmReleases this one waits for, so their `applied` wakes it."""
    return dependencies.dependency_refs(KIND, obj)


def check_cross_namespace(obj: KubeObject, *, allowed: bool) -> None:
    """--no-cross-namespace-refs: a chart source, chartRef or dependsOn in another namespace is refused."""
    if allowed:
        return
    ns = obj["metadata"]["namespace"]
    spec = obj.get("spec") or {}
    source = ((spec.get("chart") or {}).get("spec") or {}).get("sourceRef") or {}
    ref = spec.get("chartRef") or {}
    for what, other in (("chart source", source.get("namespace")), ("chartRef", ref.get("namespace"))):
        if other and other != ns:
            raise InvalidSpec(
                f"cannot access {what} in namespace '{other}': cross-namespace references are not allowed"
            )
    dependencies.refuse_cross_namespace(obj)


def check_dependencies(obj: KubeObject, lookup: dependencies.Lookup) -> None:
    """Flux's rule: each dependency exists and is Ready at its current generation; a cycle is terminal."""
    dependencies.check_dependencies(obj, lookup)


def chart_artifact(obj: KubeObject, chart: KubeObject | None) -> dict[str, Any]:
    """The HelmChart's artifact, or DependencyNotReady with Flux's wording (its ``isReady``) when there is none yet.

    As Flux, a HelmChart whose latest generation source-controller has not reconciled is not ready: its
    artifact is still the one of the spec we just replaced (the previous chart version), and releasing it
    with the new values would upgrade to the wrong chart and again once the new one arrives."""
    ns, name = chart_key(obj)
    if chart is None:
        raise DependencyNotReady(f"HelmChart '{ns}/{name}' is not ready: not found")
    status = chart.get("status") or {}
    if status.get("observedGeneration", 0) != c.generation_of(chart):
        why = "latest generation of object has not been reconciled"
        if c.is_false(chart, "Ready"):
            why = c.get_message(chart, "Ready")
        raise DependencyNotReady(f"HelmChart '{ns}/{name}' is not ready: {why}")
    if c.is_stalled(chart):
        raise DependencyNotReady(f"HelmChart '{ns}/{name}' is not ready: {c.get_message(chart, 'Stalled')}")
    artifact = status.get("artifact")
    if not artifact:
        raise DependencyNotReady(f"HelmChart '{ns}/{name}' is not ready: does not have an artifact")
    return dict(artifact)
