"""Hostile postBuild input (issue #11 item 2): globs that made Python's backtracking ``re`` hold the interpreter,
the RE2 translation proved against a brute-force reference, the size caps, and stopping a running build."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kustomize_controller.build.envsubst import (
    DEFAULT_LIMITS,
    LimitExceeded,
    OutputBudget,
    compile_glob,
    expand,
)
from kustomize_controller.build.errors import SubstitutionFailed
from kustomize_controller.build.substitute import MAX_BUILD_OUTPUT, substitute_in_thread, substitute_objects

# A regression must fail the test, not hang the suite: generous, never a timing assertion.
GUARD_SECONDS = 60


def run_guarded(code: str) -> Any:
    """``code`` in a fresh interpreter (a stuck one is killed at the guard); what it printed, as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=GUARD_SECONDS, check=True
    )
    return json.loads(done.stdout)


def test_the_reported_hostile_trims_finish_and_are_right() -> None:
    # ${v##*a*a*a*a*a*a*a*a*b} with 50 x "a" held the interpreter 14 s per call with re; a longer value and one
    # more star put every call past the guard.
    results = run_guarded(
        """
        import json
        from kustomize_controller.build.envsubst import expand
        star = "*a" * 9 + "*b"
        values = {"v": "a" * 64, "w": "a" * 63 + "b"}
        print(json.dumps([expand("${%s%s%s}" % (name, op, star), values.get) for op in ("#", "##", "%", "%%") for name in values]))
        """
    )
    a64 = "a" * 64
    # No "b" in v: nothing matches, nothing is trimmed. w is all a's then a b: the prefix trims take all of it;
    # the suffix trims match the reversed glob "b*a*a*…*a*" (nine a's) against the reversed value "baaa…", the
    # shortest being "b" and nine a's, the longest all of it.
    assert results == [a64, "", a64, "", a64, "a" * 54, a64, ""]


def test_hostile_nested_and_long_globs_finish_in_linear_time() -> None:
    results = run_guarded(
        """
        import json, random
        from kustomize_controller.build.envsubst import expand
        random.seed(7)
        values = {"v": "".join(random.choice("ab") for _ in range(65536)), "p": "a/" * 30000}
        glob = "*a" + "?" * 200 + "*a" + "[ab]" * 10 + "x"   # 245 characters: makes RE2 leave its DFA cache
        out = [expand("${v##" + glob + "}", values.get) == values["v"],
               expand("${p%%/*}|${p##*/}|${p#*a/a}", values.get)]
        print(json.dumps(out))
        """
    )
    assert results == [True, "a||" + ("a/" * 30000)[len("a/a") :]]


# A brute-force model of fluxcd/pkg envsubst's trims: its fork of path.Match (where * and ? cross "/") tried on
# every candidate prefix from the whole value down to one character, exactly as Flux's loops do.


class BadPattern(Exception):
    pass


def ref_match(pattern: str, name: str) -> bool:
    if not pattern:
        return not name
    c = pattern[0]
    if c == "*":
        return any(ref_match(pattern[1:], name[k:]) for k in range(len(name) + 1))
    if not name:
        return False
    if c == "?":
        return ref_match(pattern[1:], name[1:])
    if c == "[":
        matched, rest = ref_class(pattern[1:], name[0])
        return matched and ref_match(rest, name[1:])
    if c == "\\":
        if len(pattern) < 2:
            raise BadPattern
        return pattern[1] == name[0] and ref_match(pattern[2:], name[1:])
    return c == name[0] and ref_match(pattern[1:], name[1:])


def ref_class_char(p: str) -> tuple[str, str]:
    if not p or p[0] in "-]":
        raise BadPattern
    if p[0] == "\\":
        if len(p) < 2:
            raise BadPattern
        return p[1], p[2:]
    return p[0], p[1:]


def ref_class(p: str, ch: str) -> tuple[bool, str]:
    negated = p.startswith("^")
    if negated:
        p = p[1:]
    matched, ranges = False, 0
    while not (p.startswith("]") and ranges):
        lo, p = ref_class_char(p)
        hi = lo
        if p.startswith("-"):
            hi, p = ref_class_char(p[1:])
        matched = matched or lo <= ch <= hi
        ranges += 1
    return matched != negated, p[1:]


def ref_trim_prefix(s: str, pattern: str, *, longest: bool) -> str:
    found = 0
    for end in range(len(s), 0, -1):
        try:
            if ref_match(pattern, s[:end]):
                found = end
                if longest:
                    break
        except BadPattern:
            return s
    return s[found:]


def ref_trim_suffix(s: str, pattern: str, *, longest: bool) -> str:
    return ref_trim_prefix(s[::-1], pattern[::-1], longest=longest)[::-1]


TOKENS = ["a", "b", "/", ".", "*", "**", "?", "[ab]", "[^a]", "[a-b]", "[z-a]", "[^z-a]", "\\*", "\\a", "[", "\\", "]"]
TOKENS += ["[a-]", "[]", "-", "[\\]]", "[*]", "[^]"]
patterns = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6).map("".join)
values = st.text(alphabet="ab/.*]", max_size=9)


@settings(max_examples=800, deadline=None)
@given(values, patterns)
def test_trims_match_flux_on_every_small_input(value: str, pattern: str) -> None:
    got = expand(f"${{v#{pattern}}}|${{v##{pattern}}}|${{v%{pattern}}}|${{v%%{pattern}}}", {"v": value}.get)
    want = [
        ref_trim_prefix(value, pattern, longest=False),
        ref_trim_prefix(value, pattern, longest=True),
        ref_trim_suffix(value, pattern, longest=False),
        ref_trim_suffix(value, pattern, longest=True),
    ]
    assert got == "|".join(want)


@settings(max_examples=800, deadline=None)
@given(values, patterns)
def test_glob_matches_as_flux_path_match(value: str, pattern: str) -> None:
    try:
        want = ref_match(pattern, value)
    except BadPattern:
        want = False
    try:
        got = compile_glob(pattern).fullmatch(value)
    except ValueError:
        got = False  # refused up front: such a glob never matches in Flux either
    assert got is want


def test_a_glob_over_the_cap_is_refused() -> None:
    long_glob = "*" + "a" * DEFAULT_LIMITS.max_pattern
    with pytest.raises(LimitExceeded, match="pattern of 257 characters is longer than 256"):
        expand("${v##" + long_glob + "}", {"v": "abc"}.get)


def test_a_value_over_the_cap_is_refused_for_a_trim_but_inserted_as_is() -> None:
    big = "a" * (DEFAULT_LIMITS.max_subject + 1)
    with pytest.raises(LimitExceeded, match="value of 65537 characters is too long to match a pattern"):
        expand("${v%%a}", {"v": big}.get)
    assert expand("${v}", {"v": big}.get) == big


def test_nesting_over_the_cap_is_refused_not_a_recursion_error() -> None:
    deep = "${a:=" * 10_000 + "x" + "}" * 10_000
    unset: dict[str, str] = {}
    with pytest.raises(LimitExceeded, match="nested more than 32 deep"):
        expand(deep, unset.get)
    ok = "${a:=" * DEFAULT_LIMITS.max_depth + "x" + "}" * DEFAULT_LIMITS.max_depth
    assert expand(ok, unset.get) == "x"


def test_a_replacement_bomb_is_refused_before_it_is_built() -> None:
    # 64 Ki copies of a 64 Ki value would be 4 Gi characters.
    with pytest.raises(LimitExceeded, match="expansions produce more than 8388608 characters"):
        expand("${v//a/${v}}", {"v": "a" * 65536}.get)
    with pytest.raises(LimitExceeded, match="produce more than"):
        expand("${v}" * 200, {"v": "a" * 65536}.get)


def test_a_budget_is_shared_across_calls() -> None:
    budget = OutputBudget(10, "in this build")
    assert expand("${v}", {"v": "12345"}.get, budget=budget) == "12345"
    with pytest.raises(LimitExceeded, match="expansions in this build produce more than 10 characters"):
        expand("${v}${v}", {"v": "12345"}.get, budget=budget)


def test_a_huge_substring_offset_leaves_the_value_as_go_atoi_would() -> None:
    # Go's strconv.Atoi fails on out-of-range numbers (Flux then returns the value); Python's int() raised.
    assert expand("${v:" + "9" * 5000 + "}", {"v": "abc"}.get) == "abc"
    assert expand("${v:1:" + "9" * 30 + "}|${v:99999999999999999999}|${v:1:2}", {"v": "abc"}.get) == "abc|abc|bc"


def test_lone_surrogates_in_a_value_are_matched_not_crashed_on() -> None:
    assert expand("${v#?}|${v%%b*}", {"v": "\ud800ab"}.get) == "ab|\ud800a"


def cm(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "apps"}, "data": data}


def test_limits_fail_the_build_as_a_substitution_failure_naming_the_object() -> None:
    with pytest.raises(SubstitutionFailed, match=r"for 'ConfigMap/apps/long'.*pattern of 300 characters"):
        substitute_objects([cm("ok", {"k": "v"}), cm("long", {"k": "${v#" + "a" * 300 + "}"})], {"v": "abc"})


def test_the_build_wide_output_budget() -> None:
    value = "a" * (1024 * 1024)
    objects = [cm(f"c{i}", {"k": "${v}"}) for i in range(MAX_BUILD_OUTPUT // len(value) + 1)]
    with pytest.raises(SubstitutionFailed, match="expansions in this build produce more than 67108864 characters"):
        substitute_objects(objects, {"v": value})


async def test_a_timed_out_substitution_stops_its_thread() -> None:
    random.seed(7)
    value = "".join(random.choice("ab") for _ in range(DEFAULT_LIMITS.max_subject))
    glob = "*a" + "?" * 200 + "*a" + "[ab]" * 10 + "x"
    # ~0.1 s per object: the whole list is minutes of work, each step of which is short.
    objects = [cm(f"c{i}", {"k": "${v##" + glob + "}"}) for i in range(900)]
    threads = threading.active_count()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await substitute_in_thread(objects, {"v": value})
    # substitute_in_thread returns only once its thread has stopped, so this is how long the thread ran on.
    assert time.monotonic() - started < GUARD_SECONDS / 2
    assert threading.active_count() <= threads + 1  # the executor's idle worker may stay; the work does not


async def test_substitute_in_thread_returns_the_substituted_objects() -> None:
    out = await substitute_in_thread([cm("a", {"k": "${v%.*}"})], {"v": "file.tar.gz"})
    assert out[0]["data"] == {"k": "file.tar"}
