"""envsubst: the grammar and functions of fluxcd/pkg envsubst, escapes, strict mode (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kustomize_controller.build.envsubst import (
    SubstitutionSyntaxError,
    UnsetVariable,
    expand,
    glob_regex,
)

VARS = {
    "var01": "abcdEFGH28ij",
    "upper": "ABCDEFGH28IJ",
    "path_name": "/home/bozo/ideas/thoughts.for.today",
    "var": "abc",
    "default_var": "foo",
    "stringZ": "abcABC123ABCabc",
    "filename": "bash.string.txt",
    "slashed": "foo/bar/baz",
    "dotted": "foo.bar",
    "rel": "path/to/file",
    "abs": "/path/to/file",
    "empty": "",
    "neg": "-2",
}


@pytest.mark.parametrize(
    ("template", "want"),
    [
        ("abcdEFGH28ij", "abcdEFGH28ij"),
        ("${var01}", "abcdEFGH28ij"),
        ("${#var01}", "12"),
        ("${var01^}", "AbcdEFGH28ij"),
        ("${var01^^}", "ABCDEFGH28IJ"),
        ("${upper,}", "aBCDEFGH28IJ"),
        ("${upper,,}", "abcdefgh28ij"),
        ("${path_name:11}", "ideas/thoughts.for.today"),
        ("${path_name:11:5}", "ideas"),
        # ":-" is the default operator, never a negative offset (bash needs "${v: -5}" too).
        ("${path_name:-5}", "/home/bozo/ideas/thoughts.for.today"),
        ("${var:0:2}", "ab"),
        ("${var:${neg}}", "bc"),
        ("${var:1:100}", "bc"),
        ("${path_name:100}", ""),
        ("${path_name:x}", "/home/bozo/ideas/thoughts.for.today"),
        ("${var=xyz}", "abc"),
        ("${unset=xyz}", "xyz"),
        ("${unset:=xyz}", "xyz"),
        ("${unset:-xyz}", "xyz"),
        ("${empty:=xyz}", "xyz"),
        ("${empty=xyz}", "xyz"),
        ("${unset:=}", ""),
        ("something ${unset=${default_var}}", "something foo"),
        ("foo: ${unset=${default_var}-suffix}", "foo: foo-suffix"),
        ("foo: ${unset=prefix${default_var}-suffix}", "foo: prefixfoo-suffix"),
        ("${unset=${var01^^}}", "ABCDEFGH28IJ"),
        ("${stringZ/%abc/XYZ}", "abcABC123ABCXYZ"),
        ("${stringZ/#abc/XYZ}", "XYZABC123ABCabc"),
        ("${stringZ//abc/xyz}", "xyzABC123ABCxyz"),
        ("${stringZ/abc/xyz}", "xyzABC123ABCabc"),
        ("${stringZ/abc/}", "ABC123ABCabc"),
        ("${dotted/./}", "foobar"),
        (r"${slashed/\//-}", "foo-bar/baz"),
        (r"${slashed//\//-}", "foo-bar-baz"),
        ("${filename#*.}", "string.txt"),
        ("${filename##*.}", "txt"),
        ("${filename%.*}", "bash.string"),
        ("${filename%%.*}", "bash"),
        ("${rel#*/}", "to/file"),
        ("${abs#*/}", "path/to/file"),
        ("${rel##*/}", "file"),
        ("${abs##*/}", "file"),
        ("${filename#x*}", "bash.string.txt"),
        ("${filename#[ab]as?}", ".string.txt"),
    ],
)
def test_functions_as_flux(template: str, want: str) -> None:
    assert expand(template, VARS.get) == want


@pytest.mark.parametrize(
    ("template", "want"),
    [
        ("$${var01}", "${var01}"),
        ("some text ${var01}$${var$${var01}$var01${var01}", "some text abcdEFGH28ij${var${var01}$var01abcdEFGH28ij"),
        ("something $${unset=${default_var}}", "something ${unset=foo}"),
        ("\\\\something ${unset=${default_var}}", "\\\\something foo"),
        ("$var01 and $ alone", "$var01 and $ alone"),
        ("cost: 5$", "cost: 5$"),
        ("pid $$", "pid $"),
        ("$$$${var01}", "$${var01}"),
        ("$$${var01}", "$abcdEFGH28ij"),
    ],
)
def test_dollar_escapes(template: str, want: str) -> None:
    assert expand(template, VARS.get) == want


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("${var01", "missing closing brace"),
        ("${var01-default}", "missing closing brace"),
        ("${}", "unable to parse variable name"),
        ("${-x}", "unable to parse variable name"),
        ("${unset:=abc", "unable to parse substitution within function"),
        ("${var01:}", "unable to parse substitution within function"),
        ("${var01:1x${var}}", "bad substitution"),
        ("${#}", "bad substitution"),
        ("${var01^^x}", "bad substitution"),
        ("${stringZ/abc}", "bad substitution"),
    ],
)
def test_syntax_errors(template: str, problem: str) -> None:
    with pytest.raises(SubstitutionSyntaxError, match=problem):
        expand(template, VARS.get)


def test_unset_is_empty_unless_strict() -> None:
    assert expand("a${unset}b", VARS.get) == "ab"
    with pytest.raises(UnsetVariable, match="variable not set \\(strict mode\\): 'unset'"):
        expand("a${unset}b", VARS.get, strict=True)
    with pytest.raises(UnsetVariable):
        expand("${unset^^}", VARS.get, strict=True)


def test_strict_accepts_defaults_and_set_empty_values() -> None:
    assert expand("${unset:=d}${unset=e}${unset:-f}", VARS.get, strict=True) == "def"
    assert expand("[${empty}]", VARS.get, strict=True) == "[]"
    # The default's own expansions are evaluated first, so an unset one fails even when unused.
    with pytest.raises(UnsetVariable, match="'other'"):
        expand("${var:=${other}}", VARS.get, strict=True)


def test_unicode_names_and_values() -> None:
    assert expand("${naïve}/${ключ:=значение}", {"naïve": "ü"}.get) == "ü/значение"


def test_bad_glob_leaves_the_value() -> None:
    assert expand("${filename#[}", VARS.get) == "bash.string.txt"
    with pytest.raises(ValueError, match="bad pattern"):
        glob_regex("[")
    with pytest.raises(ValueError, match="bad pattern"):
        glob_regex("abc\\")


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("*", "a/b", True),
        ("a?c", "a/c", True),
        ("[a-c]x", "bx", True),
        ("[^a-c]x", "dx", True),
        ("[^a-c]x", "ax", False),
        ("[z-a]", "q", False),
        ("\\*", "*", True),
        ("\\*", "a", False),
        ("a.c", "abc", False),
    ],
)
def test_glob(pattern: str, text: str, matches: bool) -> None:
    assert bool(glob_regex(pattern).fullmatch(text)) is matches


@given(st.text().filter(lambda s: "$" not in s))
def test_text_without_dollar_is_unchanged(text: str) -> None:
    assert expand(text, VARS.get) == text


@given(st.text(alphabet=st.characters(blacklist_characters="${}\\"), min_size=1))
def test_variable_value_is_inserted_verbatim(value: str) -> None:
    assert expand("<${v}>", {"v": value}.get) == f"<{value}>"
