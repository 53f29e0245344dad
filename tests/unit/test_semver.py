"""Masterminds/semver v3 range semantics and strict tag parsing, by table and by property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_mesh.semver import (
    InvalidConstraint,
    InvalidVersion,
    Version,
    best_match,
    parse_constraint,
    parse_version,
)

# (constraint, version, matches) — cases from Masterminds/semver's documented behaviour
TABLE = [
    (">=1.0.0 <2.0.0", "1.0.0", True),
    (">=1.0.0 <2.0.0", "1.9.9", True),
    (">=1.0.0 <2.0.0", "2.0.0", False),
    (">=1.0.0, <2.0.0", "1.5.0", True),
    (">= 1.0.0 < 2.0.0", "0.9.0", False),
    ("^1.2", "1.2.0", True),
    ("^1.2", "1.9.0", True),
    ("^1.2", "2.0.0", False),
    ("^1.2", "1.1.9", False),
    ("^1.2.3", "1.2.3", True),
    ("^0.2.3", "0.2.9", True),
    ("^0.2.3", "0.3.0", False),
    ("^0.0.3", "0.0.3", True),
    ("^0.0.3", "0.0.4", False),
    ("^0.0", "0.0.9", True),
    ("^0.0", "0.1.0", False),
    ("^0", "0.9.9", True),
    ("^0", "1.0.0", False),
    ("^*", "5.0.0", True),
    ("~1.2.3", "1.2.3", True),
    ("~1.2.3", "1.2.9", True),
    ("~1.2.3", "1.3.0", False),
    ("~1.2.3", "1.2.2", False),
    ("~1.2", "1.2.5", True),
    ("~1.2", "1.3.0", False),
    ("~1", "1.9.0", True),
    ("~1", "2.0.0", False),
    ("~>1.2", "1.2.5", True),
    ("~0.0.0", "3.1.0", True),
    ("~1.x", "1.9.0", True),
    ("1.x", "1.4.2", True),
    ("1.x", "2.0.0", False),
    ("1.2.x", "1.2.9", True),
    ("1.2.x", "1.3.0", False),
    ("1.2.*", "1.2.1", True),
    ("*", "0.0.1", True),
    ("*", "10.2.3", True),
    ("x", "3.0.0", True),
    ("1.2.3", "1.2.3", True),
    ("=1.2.3", "1.2.4", False),
    ("v1.2.3", "1.2.3", True),
    ("!=1.2.3", "1.2.4", True),
    ("!=1.2.3", "1.2.3", False),
    ("!=1.x", "1.2.0", False),
    ("!=1.x", "2.0.0", True),
    (">1.2", "1.2.9", False),
    (">1.2", "1.3.0", True),
    (">1", "1.9.0", False),
    (">1", "2.0.0", True),
    ("<=1.2", "1.2.9", True),
    ("<=1.2", "1.3.0", False),
    ("<2", "1.99.99", True),
    ("=>1.0", "1.0.0", True),
    ("=<1.0.0", "1.0.0", True),
    ("1.2 - 1.4.5", "1.4.5", True),
    ("1.2 - 1.4.5", "1.4.6", False),
    ("1.2 - 1.4.5", "1.2.0", True),
    ("<1.0.0 || >=2.0.0", "1.5.0", False),
    ("<1.0.0 || >=2.0.0", "2.1.0", True),
    ("^1.0 || ^3.0", "3.4.0", True),
    # prereleases only match constraints that carry a prerelease themselves
    (">=1.0.0", "1.2.0-rc.1", False),
    ("*", "1.0.0-alpha", False),
    ("^1.2", "1.3.0-beta", False),
    (">=1.2.0-0", "1.3.0-beta", True),
    (">=1.2.0-alpha", "1.2.0-beta", True),
    (">=1.2.0-beta", "1.2.0-alpha", False),
    ("<1.2.0-rc.2", "1.2.0-rc.10", False),
    # the prerelease question is the whole && group's (Masterminds v3.5, Flux's): one bound naming one is enough
    (">=1.0.0-0, <2.0.0", "1.2.0-rc.1", True),
    (">=1.0.0-0 <2.0.0", "2.0.0-rc.1", True),
    (">=1.0.0-0 <2.0.0 || >=3.0.0", "3.1.0-rc.1", False),
    ("!=1.2.3", "1.2.4-beta", False),
    # build metadata does not take part in comparisons
    ("=1.2.3", "1.2.3+build.5", True),
    (">1.2.3", "1.2.3+build.5", False),
]


@pytest.mark.parametrize(("constraint", "version", "matches"), TABLE)
def test_constraint_table(constraint: str, version: str, matches: bool) -> None:
    assert parse_constraint(constraint).check(parse_version(version)) is matches


@pytest.mark.parametrize("text", ["", "   ", ">= nonsense", "1.2.3.4", "~>", "1.0 ||", "latest", ">=1.0 <2.0 foo"])
def test_bad_constraints(text: str) -> None:
    with pytest.raises(InvalidConstraint):
        parse_constraint(text)


@pytest.mark.parametrize("tag", ["1.0", "v1", "1.02.3", "1.0.0-01", "release-1.0.0", "1.0.0-", "1.0.0+", "V1.0.0"])
def test_tags_are_parsed_strictly(tag: str) -> None:
    with pytest.raises(InvalidVersion):
        parse_version(tag)


def test_prerelease_ordering_follows_semver() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
               "1.0.0-rc.1", "1.0.0"]  # fmt: skip
    versions = [parse_version(v) for v in ordered]
    shuffled = list(reversed(versions))
    assert sorted(shuffled) == versions


def test_best_match_picks_highest_and_skips_non_versions() -> None:
    tags = ["v1.0.0", "v1.2.0", "1.10.0", "v2.0.0", "latest", "v1.11.0-rc.1", "v1.3"]
    assert best_match(parse_constraint("^1.0"), tags) == "1.10.0"
    assert best_match(parse_constraint(">=3"), tags) is None
    # equal versions (build metadata differs): the greatest tag name wins, deterministically
    assert best_match(parse_constraint("1.0.x"), ["v1.0.1+a", "v1.0.1+b", "v1.0.0"]) == "v1.0.1+b"


versions = st.builds(
    Version,
    st.integers(0, 30),
    st.integers(0, 30),
    st.integers(0, 30),
    st.lists(st.one_of(st.integers(0, 20).map(str), st.sampled_from(["alpha", "beta", "rc"])), max_size=2).map(tuple),
)


@given(versions)
def test_version_string_round_trips(v: Version) -> None:
    assert parse_version(str(v)) == v
    assert parse_version("v" + str(v)) == v


@given(versions.filter(lambda v: not v.pre), st.integers(0, 5), st.integers(0, 5), st.integers(0, 5))
def test_caret_and_tilde_are_their_explicit_ranges(v: Version, major: int, minor: int, patch: int) -> None:
    base = f"{major}.{minor}.{patch}"
    if major > 0:
        upper = f"{major + 1}.0.0"
    elif minor > 0:
        upper = f"0.{minor + 1}.0"
    else:
        upper = f"0.0.{patch + 1}"
    assert parse_constraint(f"^{base}").check(v) == parse_constraint(f">={base} <{upper}").check(v)
    if base != "0.0.0":  # Masterminds reads ~0.0.0 as "any version"
        assert parse_constraint(f"~{base}").check(v) == parse_constraint(f">={base} <{major}.{minor + 1}.0").check(v)


@given(st.lists(versions, min_size=1, max_size=12), st.sampled_from(["*", ">=1.0.0", "^2", "~0.3", "<5.0.0 || 7.x"]))
def test_best_match_is_the_maximum_of_the_satisfying_tags(vs: list[Version], text: str) -> None:
    constraint = parse_constraint(text)
    tags = [f"v{v}" for v in vs]
    satisfying = [v for v in vs if constraint.check(v)]
    best = best_match(constraint, tags)
    if not satisfying:
        assert best is None
    else:
        assert best is not None
        assert parse_version(best) == max(satisfying)
