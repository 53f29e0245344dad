"""Sources and dependsOn: when a Kustomization may proceed (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_mesh.dependencies import find_cycle
from gitops_mesh.errors import DependencyNotReady, InvalidSpec
from kustomize_controller.references import (
    check_cross_namespace,
    check_dependencies,
    config_refs,
    dependency_refs,
    source_artifact,
    source_refs,
)

REV = "main@sha1:" + "a" * 40


def ks(
    name: str, *deps: str, ns: str = "apps", ready: bool = True, applied: str = REV, src: str = "repo"
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns, "generation": 2},
        "spec": {
            "sourceRef": {"kind": "GitRepository", "name": src},
            "dependsOn": [{"name": d} for d in deps],
        },
        "status": {
            "observedGeneration": 2,
            "lastAppliedRevision": applied,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": "x", "message": ""}],
        },
    }


def lookup_in(*objs: dict[str, Any]) -> Any:
    by_key = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}
    return lambda ns, name: by_key.get((ns, name))


def test_indexes() -> None:
    obj = ks("b", "a")
    obj["spec"]["dependsOn"].append({"name": "c", "namespace": "infra"})
    assert source_refs(obj) == ["GitRepository/apps/repo"]
    assert dependency_refs(obj) == ["Kustomization/apps/a", "Kustomization/infra/c"]


def test_ready_dependency_at_our_revision_lets_us_proceed() -> None:
    a, b = ks("a"), ks("b", "a")
    check_dependencies(b, lookup_in(a, b), REV)


@pytest.mark.parametrize(
    ("dep", "message"),
    [
        (None, "dependency 'apps/a' not found"),
        (ks("a", ready=False), "dependency 'apps/a' is not ready"),
        (ks("a", applied="main@sha1:" + "b" * 40), "not up to date"),
    ],
)
def test_dependency_not_ready(dep: dict[str, Any] | None, message: str) -> None:
    b = ks("b", "a")
    objs = [b] if dep is None else [dep, b]
    with pytest.raises(DependencyNotReady, match=message):
        check_dependencies(b, lookup_in(*objs), REV)


def test_other_source_revision_does_not_matter() -> None:
    a, b = ks("a", applied="other@sha1:" + "c" * 40, src="infra"), ks("b", "a")
    check_dependencies(b, lookup_in(a, b), REV)


def test_stale_generation_is_not_ready() -> None:
    a, b = ks("a"), ks("b", "a")
    a["metadata"]["generation"] = 3
    with pytest.raises(DependencyNotReady):
        check_dependencies(b, lookup_in(a, b), REV)


def test_cycle_is_terminal_and_named() -> None:
    a, b, c = ks("a", "c"), ks("b", "a"), ks("c", "b")
    assert find_cycle(("apps", "a"), lookup_in(a, b, c)) == [("apps", "a"), ("apps", "c"), ("apps", "b"), ("apps", "a")]
    with pytest.raises(InvalidSpec, match="circular dependency: apps/b -> apps/a -> apps/c -> apps/b"):
        check_dependencies(b, lookup_in(a, b, c), REV)


def test_self_dependency_is_a_cycle() -> None:
    a = ks("a", "a")
    with pytest.raises(InvalidSpec, match="circular"):
        check_dependencies(a, lookup_in(a), REV)


def test_cross_namespace_refs() -> None:
    obj = ks("b")
    obj["spec"]["sourceRef"]["namespace"] = "flux-system"
    check_cross_namespace(obj, allowed=True)
    with pytest.raises(InvalidSpec, match="cross-namespace"):
        check_cross_namespace(obj, allowed=False)


def test_source_artifact() -> None:
    obj = ks("b")
    with pytest.raises(DependencyNotReady, match="not found"):
        source_artifact(obj, None)
    with pytest.raises(DependencyNotReady, match="artifact not found"):
        source_artifact(obj, {"status": {}})
    assert source_artifact(obj, {"status": {"artifact": {"revision": REV}}}) == {"revision": REV}


def test_config_refs_name_what_a_build_reads() -> None:
    obj = ks("app")
    obj["spec"]["decryption"] = {"provider": "sops", "secretRef": {"name": "age"}}
    obj["spec"]["postBuild"] = {
        "substituteFrom": [{"kind": "ConfigMap", "name": "vars"}, {"kind": "Secret", "name": "s", "optional": True}]
    }
    assert config_refs(obj) == ["Secret/apps/age", "ConfigMap/apps/vars", "Secret/apps/s"]
    assert config_refs(ks("plain")) == []
