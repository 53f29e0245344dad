"""dependsOn in the runtime: the keys, the index, cycles, and the ready check with a kind's own rule (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_mesh.dependencies import (
    check_dependencies,
    dependency_keys,
    dependency_refs,
    find_cycle,
    not_ready_at_generation,
    refuse_cross_namespace,
)
from gitops_mesh.errors import DependencyNotReady, InvalidSpec


def obj(name: str, *deps: str | tuple[str, str], ns: str = "apps", ready: bool = True, observed: int = 2) -> Any:
    """An object at generation 2 depending on ``deps`` (a name, or (namespace, name))."""
    return {
        "metadata": {"name": name, "namespace": ns, "generation": 2},
        "spec": {"dependsOn": [{"name": d} if isinstance(d, str) else {"namespace": d[0], "name": d[1]} for d in deps]},
        "status": {
            "observedGeneration": observed,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def lookup_in(*objs: Any) -> Any:
    by_key = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}
    return lambda ns, name: by_key.get((ns, name))


def test_keys_default_to_the_objects_namespace_and_index_by_kind() -> None:
    web = obj("web", "db", ("infra", "cache"))
    assert dependency_keys(web) == [("apps", "db"), ("infra", "cache")]
    assert dependency_refs("HelmRelease", web) == ["HelmRelease/apps/db", "HelmRelease/infra/cache"]
    assert dependency_keys({"metadata": {"name": "x", "namespace": "apps"}}) == []  # no spec at all


def test_ready_dependencies_let_the_object_proceed() -> None:
    db, cache, web = obj("db"), obj("cache", ns="infra"), obj("web", "db", ("infra", "cache"))
    check_dependencies(web, lookup_in(db, cache, web))


@pytest.mark.parametrize(
    ("deps", "message"),
    [
        ([], "dependency 'apps/db' not found"),
        ([obj("db", ready=False)], "dependency 'apps/db' is not ready"),
        ([obj("db", observed=1)], "dependency 'apps/db' is not ready"),  # a Ready of the previous spec
    ],
)
def test_missing_or_unready_dependency_is_a_wait(deps: list[Any], message: str) -> None:
    web = obj("web", "db")
    with pytest.raises(DependencyNotReady, match=f"^{message}$"):
        check_dependencies(web, lookup_in(web, *deps))


def test_the_first_dependency_in_spec_order_is_named() -> None:
    web = obj("web", "a", "b")
    with pytest.raises(DependencyNotReady, match="'apps/a' not found"):
        check_dependencies(web, lookup_in(web, obj("b", ready=False)))


def test_a_kinds_own_rule_decides_and_words_readiness() -> None:
    db, web = obj("db"), obj("web", "db")
    seen: list[str] = []

    def behind(dep: Any) -> str | None:
        seen.append(dep["metadata"]["name"])
        return not_ready_at_generation(dep) or "is not up to date with revision 'v2'"

    with pytest.raises(DependencyNotReady, match=r"^dependency 'apps/db' is not up to date with revision 'v2'$"):
        check_dependencies(web, lookup_in(db, web), not_ready=behind)
    assert seen == ["db"], "the rule is asked about each dependency found, not about the object itself"
    check_dependencies(obj("web", "db", ready=False), lookup_in(db), not_ready=lambda dep: None)


def test_cycle_is_found_as_a_path_back_to_the_start() -> None:
    a, b, c = obj("a", "c"), obj("b", "a"), obj("c", "b")
    assert find_cycle(("apps", "a"), lookup_in(a, b, c)) == [("apps", "a"), ("apps", "c"), ("apps", "b"), ("apps", "a")]
    assert find_cycle(("apps", "a"), lookup_in(a, b)) is None  # c is missing: a wait, not a cycle


def test_cycle_among_the_dependencies_stalls_the_object_too() -> None:
    """top can never get ready when what it waits for waits on itself: the cycle is named where it closes."""
    x, y, top = obj("x", "y"), obj("y", "x"), obj("top", "x")
    assert find_cycle(("apps", "top"), lookup_in(x, y, top)) == [("apps", "x"), ("apps", "y"), ("apps", "x")]
    with pytest.raises(InvalidSpec, match=r"^circular dependency: apps/x -> apps/y -> apps/x$"):
        check_dependencies(top, lookup_in(x, y, top))


def test_diamond_is_no_cycle() -> None:
    top, left, right, base = obj("top", "left", "right"), obj("left", "base"), obj("right", "base"), obj("base")
    assert find_cycle(("apps", "top"), lookup_in(top, left, right, base)) is None
    check_dependencies(top, lookup_in(top, left, right, base))


def test_cycle_is_terminal_and_named_before_any_wait() -> None:
    a, b = obj("a", "b", ready=False), obj("b", "a", ready=False)
    with pytest.raises(InvalidSpec, match=r"^circular dependency: apps/a -> apps/b -> apps/a$"):
        check_dependencies(a, lookup_in(a, b))
    with pytest.raises(InvalidSpec, match=r"^circular dependency: apps/s -> apps/s$"):
        check_dependencies(obj("s", "s"), lookup_in(obj("s", "s")))


def test_a_dependency_in_another_namespace_is_refused_when_asked() -> None:
    refuse_cross_namespace(obj("web", "db", ("apps", "cache")))  # the object's own namespace, named or not
    with pytest.raises(
        InvalidSpec, match=r"^cannot depend on 'infra/cache': cross-namespace references are not allowed$"
    ):
        refuse_cross_namespace(obj("web", "db", ("infra", "cache")))
