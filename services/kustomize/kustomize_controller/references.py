"""What a Kustomization points at — its source and its dependencies — and whether they let it proceed (pure)."""

from __future__ import annotations

from typing import Any

from gitops_mesh import dependencies
from gitops_mesh.errors import DependencyNotReady, InvalidSpec
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.watches import ref_key

SOURCE_API = "source.toolkit.fluxcd.io/v1"
KIND = "Kustomization"
SOURCE_KINDS = ("GitRepository", "OCIRepository", "Bucket", "ExternalArtifact")

#: (kind, namespace, name) of a source
SourceKey = tuple[str, str, str]


def source_key(obj: KubeObject) -> SourceKey:
    ref = obj["spec"]["sourceRef"]
    return ref["kind"], ref.get("namespace") or obj["metadata"]["namespace"], ref["name"]


#: The Kustomization cache's indexes: by the source followed, by the Kustomizations depended on.
SOURCE_INDEX = "source"
DEPENDENCY_INDEX = "dependsOn"


def source_refs(obj: KubeObject) -> list[str]:
    """Index values: the source a Kustomization follows, as ``Kind/namespace/name``."""
    return [ref_key(*source_key(obj))]


def config_refs(obj: KubeObject) -> list[str]:
    """Index values: the Secrets and ConfigMaps a build reads (decryption keys, postBuild.substituteFrom)."""
    ns = obj["metadata"]["namespace"]
    spec = obj.get("spec") or {}
    refs = []
    decryption_secret = ((spec.get("decryption") or {}).get("secretRef") or {}).get("name")
    if decryption_secret:
        refs.append(ref_key("Secret", ns, decryption_secret))
    for source in (spec.get("postBuild") or {}).get("substituteFrom") or []:
        if source.get("kind") in ("Secret", "ConfigMap") and source.get("name"):
            refs.append(ref_key(source["kind"], ns, source["name"]))
    return refs


def dependency_refs(obj: KubeObject) -> list[str]:
    """Index values: the Kustomizations this one waits for, so their `applied` can wake it."""
    return dependencies.dependency_refs(KIND, obj)


def check_cross_namespace(obj: KubeObject, *, allowed: bool) -> None:
    """--no-cross-namespace-refs: a sourceRef or dependsOn into another namespace is refused (terminal)."""
    if allowed:
        return
    ns = obj["metadata"]["namespace"]
    _, src_ns, src_name = source_key(obj)
    if src_ns != ns:
        raise InvalidSpec(f"cannot access source '{src_ns}/{src_name}': cross-namespace references are not allowed")
    dependencies.refuse_cross_namespace(obj)


def source_artifact(obj: KubeObject, source: KubeObject | None) -> dict[str, Any]:
    """The source's artifact, or DependencyNotReady with Flux's wording when there is none yet."""
    kind, ns, name = source_key(obj)
    if source is None:
        raise DependencyNotReady(f"Source '{kind}/{ns}/{name}' not found")
    artifact = (source.get("status") or {}).get("artifact")
    if not artifact:
        raise DependencyNotReady(f"Source artifact not found for '{kind}/{ns}/{name}'")
    return dict(artifact)


def check_dependencies(obj: KubeObject, lookup: dependencies.Lookup, revision: str) -> None:
    """Flux's rule: each dependency exists, is Ready at its current generation and, when it follows the same
    source, has applied the source's revision we are about to apply. A cycle is a terminal error."""

    def not_ready(dep: KubeObject) -> str | None:
        why = dependencies.not_ready_at_generation(dep)
        if why is not None or source_key(dep) != source_key(obj):
            return why
        # One on the same source that has not applied this revision yet would have us apply against its
        # previous state (Flux's "revision is not up to date").
        if (dep.get("status") or {}).get("lastAppliedRevision") != revision:
            return f"is not up to date with revision '{revision}'"
        return None

    dependencies.check_dependencies(obj, lookup, not_ready=not_ready)
