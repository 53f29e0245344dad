"""What a Kustomization points at — its source and its dependencies — and whether they let it proceed (pure)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gitops_mesh.errors import DependencyNotReady, InvalidSpec
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.watches import is_ready_at_generation, ref_key

SOURCE_API = "source.toolkit.fluxcd.io/v1"
KIND = "Kustomization"
SOURCE_KINDS = ("GitRepository", "OCIRepository", "Bucket")

#: (kind, namespace, name) of a source; (namespace, name) of a Kustomization
SourceKey = tuple[str, str, str]
Key = tuple[str, str]
Lookup = Callable[[str, str], KubeObject | None]


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


def dependency_keys(obj: KubeObject) -> list[Key]:
    ns = obj["metadata"]["namespace"]
    return [(d.get("namespace") or ns, d["name"]) for d in obj["spec"].get("dependsOn") or []]


def dependency_refs(obj: KubeObject) -> list[str]:
    """Index values: the Kustomizations this one waits for, so their `applied` can wake it."""
    return [ref_key(KIND, ns, name) for ns, name in dependency_keys(obj)]


def check_cross_namespace(obj: KubeObject, *, allowed: bool) -> None:
    """--no-cross-namespace-refs: a sourceRef or dependsOn into another namespace is refused (terminal)."""
    if allowed:
        return
    ns = obj["metadata"]["namespace"]
    _, src_ns, src_name = source_key(obj)
    if src_ns != ns:
        raise InvalidSpec(f"cannot access source '{src_ns}/{src_name}': cross-namespace references are not allowed")
    for dep_ns, dep_name in dependency_keys(obj):
        if dep_ns != ns:
            raise InvalidSpec(f"cannot depend on '{dep_ns}/{dep_name}': cross-namespace references are not allowed")


def source_artifact(obj: KubeObject, source: KubeObject | None) -> dict[str, Any]:
    """The source's artifact, or DependencyNotReady with Flux's wording when there is none yet."""
    kind, ns, name = source_key(obj)
    if source is None:
        raise DependencyNotReady(f"Source '{kind}/{ns}/{name}' not found")
    artifact = (source.get("status") or {}).get("artifact")
    if not artifact:
        raise DependencyNotReady(f"Source artifact not found for '{kind}/{ns}/{name}'")
    return dict(artifact)


def find_cycle(start: Key, lookup: Lookup) -> list[Key] | None:
    """A dependsOn cycle through ``start`` (as a path that returns to it), or None."""
    path: list[Key] = []
    on_path: set[Key] = set()
    seen: set[Key] = set()

    def visit(key: Key) -> list[Key] | None:
        if key in on_path:
            return [*path[path.index(key) :], key]
        if key in seen:
            return None
        seen.add(key)
        obj = lookup(*key)
        if obj is None:
            return None
        path.append(key)
        on_path.add(key)
        for dep in dependency_keys(obj):
            found = visit(dep)
            if found:
                return found
        path.pop()
        on_path.discard(key)
        return None

    return visit(start)


def check_dependencies(obj: KubeObject, lookup: Lookup, revision: str) -> None:
    """Flux's rule: each dependency exists, is Ready at its current generation and, when it follows the same
    source, has applied the source's revision we are about to apply. A cycle is a terminal error."""
    key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
    cycle = find_cycle(key, lookup)
    if cycle:
        chain = " -> ".join(f"{ns}/{name}" for ns, name in cycle)
        raise InvalidSpec(f"circular dependency: {chain}")
    for dep_ns, dep_name in dependency_keys(obj):
        dep = lookup(dep_ns, dep_name)
        if dep is None:
            raise DependencyNotReady(f"dependency '{dep_ns}/{dep_name}' not found")
        if not is_ready_at_generation(dep):
            raise DependencyNotReady(f"dependency '{dep_ns}/{dep_name}' is not ready")
        if source_key(dep) == source_key(obj) and dep["status"].get("lastAppliedRevision") != revision:
            raise DependencyNotReady(f"dependency '{dep_ns}/{dep_name}' is not up to date with revision '{revision}'")
