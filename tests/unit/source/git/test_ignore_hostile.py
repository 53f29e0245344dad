"""Hostile ignore rules (issue #11 item 2): a pattern that made pathspec's ``re`` take seconds per path, the RE2
translation checked against pathspec's own regexes, and the caps, each refused as the GitRepository's error."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pathspec.patterns.gitignore.basic import GitIgnoreBasicPattern

from source_controller.git.ignore import (
    MAX_PATH_DEPTH,
    MAX_PATH_LENGTH,
    MAX_RULE_LENGTH,
    MAX_RULES,
    MAX_RULES_TEXT,
    IgnoreRulesRefused,
    build_filter,
    filter_from_files,
    parse_rules,
)

# A regression must fail the test, not hang the suite: generous, never a timing assertion.
GUARD_SECONDS = 60
HOSTILE = "**/a/**/a/**/a/**/a/**/a/**/a/**/b"


def test_the_reported_hostile_pattern_is_linear_per_path() -> None:
    # With re, one 201-character path took minutes (40 components: a second; it grows with the sixth power).
    code = f"""
        import json
        from source_controller.git.ignore import filter_from_files
        keep = filter_from_files({{".sourceignore": {HOSTILE!r}}}, {HOSTILE!r})
        paths = ["a/" * 100 + "c", "a/" * 6 + "b", "a/x/a/a/a/a/a/y/b/file", "a/" * 100 + "b", "b", "a/b"]
        print(json.dumps([keep(p) for p in paths] + [keep("a/" * 100 + "q", True)]))
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=GUARD_SECONDS, check=True
    )
    assert json.loads(done.stdout) == [True, False, False, False, True, True, True]


TOKENS = ["a", "b", "/", "*", "**", "?", "!", "[ab]", "[!a]", "[^b]", "[]a]", "[a-]", "[-b]", "[a-b-]", "\\*", "\\["]
TOKENS += ["[", "]", "[[:alpha:]]", "[\\]]", "é", " ", "\\ ", "#", ".", "-", "[a-c-e]", "[/]", "\\\\"]
lines = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6).map("".join)
paths = st.lists(
    st.sampled_from(["a", "b", "ab", "é", "[", "]", "*", " ", "-", ".x", "#"]), min_size=1, max_size=4
).map("/".join)


@settings(max_examples=800, deadline=None)
@given(lines, st.lists(paths, min_size=1, max_size=5), st.booleans())
def test_re2_matches_what_pathspecs_regex_matches(line: str, candidates: list[str], is_dir: bool) -> None:
    """Where Python's ``re`` accepts pathspec's regex, RE2 gets one that matches exactly the same paths."""
    try:
        regex, include = GitIgnoreBasicPattern.pattern_to_regex(line)
    except ValueError:  # "!" or "/" alone: no rule, as in git
        assert parse_rules(line) == []
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "possible nested set": Python reads "[[:" literally, and so do we
            python = re.compile(regex) if regex is not None else None
    except re.error:
        with pytest.raises(IgnoreRulesRefused, match="is not a valid pattern"):
            parse_rules(line)
        return
    rules = parse_rules(line)
    if python is None or include is None or line.startswith("#") or not line.strip():
        assert rules == []
        return
    (rule,) = rules
    for path in candidates:
        parts = tuple(path.split("/"))
        target = path + "/" if is_dir else path
        assert rule.matches(parts, is_dir) is (python.search(target) is not None), (line, regex, target)


def test_an_inverted_range_is_refused_not_a_crash() -> None:
    # pathspec compiled it with re at construction and raised re.error out of the reconcile.
    with pytest.raises(IgnoreRulesRefused, match=r"spec.ignore: rule '\[z-a\]' is not a valid pattern") as refused:
        filter_from_files({}, "ok/\n[z-a]\n")
    assert refused.value.reason == "ArchiveOperationFailed"


def test_a_long_rule_is_refused_naming_its_file() -> None:
    with pytest.raises(IgnoreRulesRefused, match=rf"deploy/.sourceignore: a rule of {MAX_RULE_LENGTH + 1} characters"):
        filter_from_files({"deploy/.sourceignore": "a" * (MAX_RULE_LENGTH + 1)})


def test_too_many_rules_are_refused_not_truncated() -> None:
    enough = "\n".join(f"file{i}" for i in range(MAX_RULES))
    assert not filter_from_files({}, enough)("file999")
    with pytest.raises(IgnoreRulesRefused, match=f"more than {MAX_RULES}"):
        filter_from_files({".sourceignore": "one-more"}, enough)


def test_a_huge_ignore_text_is_refused() -> None:
    comments = "#" * (MAX_RULES_TEXT + 1)
    with pytest.raises(IgnoreRulesRefused, match=f"spec.ignore has {MAX_RULES_TEXT + 1} characters"):
        filter_from_files({}, comments)


def test_a_huge_sourceignore_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".sourceignore").write_text("#" * (4 * MAX_RULES_TEXT + 1))
    with pytest.raises(IgnoreRulesRefused, match=r"sub/\.sourceignore is larger than"):
        build_filter(tmp_path)


def test_a_path_over_path_max_is_refused() -> None:
    keep = filter_from_files({}, HOSTILE)
    assert keep("d/" * (MAX_PATH_DEPTH - 1) + "f" * (MAX_PATH_LENGTH - 2 * MAX_PATH_DEPTH + 1))
    with pytest.raises(IgnoreRulesRefused, match=f"path of {MAX_PATH_LENGTH + 1} characters"):
        keep("d" * (MAX_PATH_LENGTH + 1))
    with pytest.raises(IgnoreRulesRefused, match=f"path nested {MAX_PATH_DEPTH + 1} directories deep"):
        keep("d/" * MAX_PATH_DEPTH + "f", False)


def test_a_name_that_is_not_utf8_is_matched_not_crashed_on() -> None:
    # os.walk gives such names as lone surrogates; each is matched as one undecodable character (U+FFFD).
    keep = filter_from_files({}, "*.bin\nraw?/\nname\udcff")
    assert not keep("x\udcff.bin")
    assert not keep("raw\udcfe/inside")
    assert keep("rawxx/inside")
    assert not keep("name\udcfe")
