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

#: The HelmRelease cache's indexes: by the chart source followed, by the HelmReleases depended on.
CHART_INDEX = "chart"
DEPENDENCY_INDEX = "dependsOn"
#: Flux's Ready reason while the chart's source has no artifact to release (its isSourceReady).
SOURCE_NOT_READY = "SourceNotReady"
#: ... and when it cannot be read at all (its getSource error).
ARTIFACT_FAILED = "ArtifactFailed"
_PLURALS = {"HelmChart": "helmcharts", "OCIRepository": "ocirepositories", "ExternalArtifact": "externalartifacts"}

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


def chart_source_key(obj: KubeObject) -> tuple[str, str, str]:
    """(kind, namespace, name) of the object whose artifact is the chart: :func:`chart_key`'s HelmChart, or
    the OCIRepository or ExternalArtifact ``spec.chartRef`` names."""
    ref = (obj.get("spec") or {}).get("chartRef")
    kind = ref.get("kind") if isinstance(ref, dict) and ref.get("name") else None
    return (kind if isinstance(kind, str) and kind else "HelmChart", *chart_key(obj))


def chart_refs(obj: KubeObject) -> list[str]:
    """Index value: the chart source whose new artifact wakes this HelmRelease."""
    return [ref_key(*chart_source_key(obj))]


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


def chart_artifact(obj: KubeObject, source: KubeObject | None) -> dict[str, Any]:
    """The chart source's artifact, or DependencyNotReady (Flux's SourceNotReady, its ``isSourceReady``
    wording) when there is none yet; the HelmRelease waits for the source's `artifact-ready`.

    As Flux, a HelmChart or OCIRepository whose latest generation source-controller has not reconciled is
    not ready: its artifact is still the one of the spec just replaced (the previous chart version), and
    releasing it with the new values would upgrade to the wrong chart and again once the new one arrives.
    An ExternalArtifact has no generation to wait for (its producer writes its status): its artifact is
    enough, as in Flux."""
    kind, ns, name = chart_source_key(obj)

    def not_ready(why: str) -> DependencyNotReady:
        return DependencyNotReady(f"{kind} '{ns}/{name}' is not ready: {why}", reason=SOURCE_NOT_READY)

    if source is None:
        # Flux's getSource error: ArtifactFailed, with the apiserver's NotFound wording.
        raise DependencyNotReady(
            f'could not get Source object: {_PLURALS.get(kind, kind.lower())}.source.toolkit.fluxcd.io "{name}" '
            "not found",
            reason=ARTIFACT_FAILED,
        )
    status = source.get("status") or {}
    if kind != "ExternalArtifact":
        if status.get("observedGeneration", 0) != c.generation_of(source):
            why = "latest generation of object has not been reconciled"
            if c.is_false(source, "Ready"):
                why = c.get_message(source, "Ready")
            raise not_ready(why)
        if c.is_stalled(source):
            raise not_ready(c.get_message(source, "Stalled"))
    artifact = status.get("artifact")
    if not artifact:
        raise not_ready("does not have an artifact")
    return dict(artifact)
