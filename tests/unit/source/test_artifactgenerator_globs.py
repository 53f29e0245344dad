"""The generator's tenant globs: Go's path.Match and doublestar dialects, refused malformed patterns, linear time."""

from __future__ import annotations

import time

import pytest

from source_controller.generator.globs import BadPattern, compile_glob, has_glob


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*.yaml", "a.yaml", True),
        ("*.yaml", ".hidden.yaml", True),  # Go's * matches a leading dot
        ("*.yaml", "dir/a.yaml", False),
        ("deploy/**", "deploy/app.yaml", True),
        ("deploy/**", "deploy/sub/app.yaml", False),  # ** is one segment in Go's dialect, as in Flux
        ("deploy/?.yaml", "deploy/a.yaml", True),
        ("deploy/?.yaml", "deploy/ab.yaml", False),
        ("*.[ch]", "main.c", True),
        ("*.[a-c]", "main.d", False),
        ("[^a]*", "bcd", True),
        ("[^a]*", "abc", False),
        ("[]a]", "]", True),
        ("\\*.md", "*.md", True),
        ("\\*.md", "a.md", False),
        ("{a,b}", "{a,b}", True),  # braces are literal in Go's dialect
    ],
)
def test_go_path_match_dialect(pattern: str, path: str, matches: bool) -> None:
    assert compile_glob(pattern, doublestar=False).match(path) is matches


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("**/*.tgz", "chart.tgz", True),
        ("**/*.tgz", "releases/v1/chart.tgz", True),
        ("releases/**/*.tgz", "releases/chart.tgz", True),
        ("releases/**/*.tgz", "releases/a/b/chart.tgz", True),
        ("releases/**/*.tgz", "other/chart.tgz", False),
        ("testdata/**", "testdata", True),
        ("testdata/**", "testdata/x/y", True),
        ("testdata/**", "testdatax", False),
        ("**/testdata/**", "a/b/testdata/c.yaml", True),
        ("*.md", "docs/readme.md", False),  # the basename rule is the caller's (excluded())
        ("{dev,prod}/*.yaml", "prod/app.yaml", True),
        ("{dev,prod}/*.yaml", "test/app.yaml", False),
        ("a{b,{c,d}}e", "ade", True),
        ("[!a]*", "b", True),
        ("[!a]*", "a", False),
        ("x**y", "xay", True),  # ** inside a segment is a plain *
        ("x**y", "xa/y", False),
    ],
)
def test_doublestar_dialect(pattern: str, path: str, matches: bool) -> None:
    assert compile_glob(pattern, doublestar=True).match(path) is matches


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("[abc", "unclosed '['"),
        ("a\\", "trailing backslash"),
        ("[z-a]", "reversed"),
        ("[/]", "'/'"),
        ("[+-0]", "'/'"),  # a range spanning '/' could match across segments
        ("{a,b", "unclosed '{'"),
        ("{" * 20 + "a" + "}" * 20, "nested deeper"),
        ("a" * 2000, "longer than"),
    ],
)
def test_malformed_patterns_are_refused_with_the_reason(pattern: str, problem: str) -> None:
    with pytest.raises(BadPattern, match=problem.replace("[", r"\[").replace("{", r"\{")):
        compile_glob(pattern, doublestar=True)


def test_hostile_patterns_match_in_linear_time() -> None:
    # A backtracking matcher takes exponential time on nested stars against a near-miss.
    stars = compile_glob("*a" * 40 + "*b", doublestar=False)
    globstars = compile_glob("**/a/**/a/**/a/**/a/**/a/**/a/**/b", doublestar=True)
    started = time.perf_counter()
    assert not stars.match("a" * 4000)
    assert not globstars.match("/".join(["a"] * 2000))
    assert time.perf_counter() - started < 0.5


def test_glob_characters_are_flux_s() -> None:
    assert has_glob("deploy/*.yaml")
    assert has_glob("deploy/[ab]")
    assert not has_glob("deploy/{a,b}")  # Flux's containsGlobChars has no braces: a literal path
    assert not has_glob("deploy/app/")
