"""dependsOn, pure: which objects of its own kind an object waits for, and whether they let it proceed.

Flux's Kustomization and HelmRelease share the rule (each dependency exists and is Ready at its current
generation; a cycle through the object can never get ready, so it is terminal) and differ only in what
more a dependency must have done — a Kustomization also waits for one following the same source to have
applied the revision it is about to apply. That difference is the caller's ``not_ready``; the runner's
watches (``new_revision(applied_revision)`` over the dependency index) wake the object when it may pass.
"""

from __future__ import annotations

from collections.abc import Callable

from gitops_mesh.errors import DependencyNotReady, InvalidSpec
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.watches import is_ready_at_generation, ref_key

#: (namespace, name) of an object of the same kind.
Key = tuple[str, str]
#: The kind's cache lookup (``Informer.get``): the object, or None when it does not exist.
Lookup = Callable[[str, str], KubeObject | None]
#: Why an existing dependency does not let its dependant proceed yet — the words after
#: ``dependency '<namespace>/<name>' `` in the DependencyNotReady message — or None when it does.
NotReady = Callable[[KubeObject], str | None]


def dependency_keys(obj: KubeObject) -> list[Key]:
    """``spec.dependsOn`` as (namespace, name); a missing namespace is the object's own."""
    ns = obj["metadata"]["namespace"]
    return [(d.get("namespace") or ns, d["name"]) for d in (obj.get("spec") or {}).get("dependsOn") or []]


def dependency_refs(kind: str, obj: KubeObject) -> list[str]:
    """Index values (``Kind/namespace/name``): the objects ``obj`` waits for, so their news wakes it."""
    return [ref_key(kind, ns, name) for ns, name in dependency_keys(obj)]


def refuse_cross_namespace(obj: KubeObject) -> None:
    """Under --no-cross-namespace-refs: a dependency in another namespace is an invalid spec (Stalled)."""
    ns = obj["metadata"]["namespace"]
    for dep_ns, dep_name in dependency_keys(obj):
        if dep_ns != ns:
            raise InvalidSpec(f"cannot depend on '{dep_ns}/{dep_name}': cross-namespace references are not allowed")


def find_cycle(start: Key, lookup: Lookup) -> list[Key] | None:
    """A dependsOn cycle through ``start`` (as a path that returns to it), or None.

    Dependencies not in the cache end the walk there: a missing one is a wait, not a cycle."""
    path: list[Key] = []
    on_path: set[Key] = set()
    seen: set[Key] = set()

    def visit(key: Key) -> list[Key] | None:
        if key in on_path:
            return [*path[path.index(key) :], key]
        if key in seen:  # fully explored from here without meeting the path again
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


def not_ready_at_generation(dep: KubeObject) -> str | None:
    """The default readiness: Ready=True at the dependency's current generation (a stale Ready is not)."""
    return None if is_ready_at_generation(dep) else "is not ready"


def check_dependencies(obj: KubeObject, lookup: Lookup, *, not_ready: NotReady = not_ready_at_generation) -> None:
    """Flux's rule: each dependency exists and ``not_ready`` finds nothing missing; a cycle is terminal.

    Raises InvalidSpec naming the cycle (Stalled until the spec changes), else DependencyNotReady for the
    first dependency in ``spec.dependsOn`` order that is absent or not ready (a wait of
    --requeue-dependency, woken earlier by the dependency's news)."""
    key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
    cycle = find_cycle(key, lookup)
    if cycle:
        raise InvalidSpec("circular dependency: " + " -> ".join(f"{ns}/{name}" for ns, name in cycle))
    for dep_ns, dep_name in dependency_keys(obj):
        dep = lookup(dep_ns, dep_name)
        if dep is None:
            raise DependencyNotReady(f"dependency '{dep_ns}/{dep_name}' not found")
        why = not_ready(dep)
        if why is not None:
            raise DependencyNotReady(f"dependency '{dep_ns}/{dep_name}' {why}")
