"""Tenant glob patterns, matched in linear time: each pattern is translated to an RE2 expression, never a backtracking regex.

Two dialects, as source-watcher uses them:

* ``path`` — Go's ``path.Match`` (what ``fs.Glob`` uses for ``copy.from`` with the Overwrite and Merge
  strategies): ``*`` is any run of characters but ``/``, ``?`` one such character, ``[...]`` a class
  (``^`` negates), ``\\`` escapes. ``**`` is just ``*`` twice: one path segment, as in Flux.
* ``doublestar`` — bmatcuk/doublestar v4 (``copy.from`` with Extract, and every ``exclude``): the same, plus
  ``**`` as a whole segment for any number of segments (none included), ``{a,b}`` alternatives and ``!``
  as a class negation too.

Patterns are tenant input matched against every path of a source: RE2 compiles each once with a memory
cap and matches in time linear in the path, where Python's ``re`` can take exponential time on nested
stars. A malformed pattern is :class:`BadPattern`, worded for the status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

#: ``copy.from``, ``to`` and each exclude are at most 1024 characters in the CRD; the same bound here.
MAX_PATTERN_LENGTH = 1024
#: ``{a,{b,c}}``: deeper nesting than this is no real pattern.
MAX_BRACE_DEPTH = 8
#: Characters that make a ``copy.from`` a glob (Flux's containsGlobChars; ``{`` is not among them).
GLOB_CHARS = frozenset("*?[]")


class BadPattern(ValueError):
    """The pattern cannot be parsed (or is over a limit); the message names it."""


def _options() -> Any:
    options = re2.Options()
    options.never_capture = True
    options.log_errors = False
    options.max_mem = 1 << 20
    return options


_OPTIONS = _options()


def has_glob(pattern: str) -> bool:
    """Whether ``copy.from``'s path is a glob (Flux: any of ``* ? [ ]``), else a literal file or directory."""
    return any(ch in GLOB_CHARS for ch in pattern)


def _literal(ch: str) -> str:
    return ch if ch.isascii() and ch.isalnum() else f"\\x{{{ord(ch):x}}}"


class _Translator:
    """One pattern to RE2 syntax; ``doublestar`` switches on ``**`` segments, braces and ``!`` negation."""

    def __init__(self, pattern: str, *, doublestar: bool) -> None:
        self.p = pattern
        self.doublestar = doublestar
        self.i = 0

    def fail(self, why: str) -> BadPattern:
        return BadPattern(f"invalid glob pattern {self.p!r}: {why}")

    def translate(self, depth: int = 0, stop: str = "") -> str:
        out: list[str] = []
        p = self.p
        while self.i < len(p):
            ch = p[self.i]
            if stop and ch in stop:
                return "".join(out)
            if ch == "/" and self.doublestar and self._trailing_globstar(stop):
                # "x/**": "x" itself, or anything below it (doublestar's rule).
                self.i += 3
                out.append("(?:/(?s:.*))?")
                continue
            if ch == "*":
                run = self.i
                while self.i < len(p) and p[self.i] == "*":
                    self.i += 1
                whole = (run == 0 or p[run - 1] == "/") and (self.i == len(p) or p[self.i] in "/" + stop)
                if self.doublestar and self.i - run == 2 and whole:
                    out.append(self._globstar())
                else:
                    out.append("[^/]*")
                continue
            self.i += 1
            if ch == "?":
                out.append("[^/]")
            elif ch == "[":
                out.append(self._klass())
            elif ch == "\\":
                if self.i >= len(p):
                    raise self.fail("a trailing backslash")
                out.append(_literal(p[self.i]))
                self.i += 1
            elif ch == "{" and self.doublestar:
                out.append(self._braces(depth + 1))
            else:
                out.append(_literal(ch))
        if depth:
            raise self.fail("an unclosed '{'")
        return "".join(out)

    def _trailing_globstar(self, stop: str) -> bool:
        """At ``/**`` that ends the pattern (or the alternative)."""
        p, i = self.p, self.i
        return p[i + 1 : i + 3] == "**" and (i + 3 == len(p) or p[i + 3] in stop)

    def _globstar(self) -> str:
        """``**`` as a whole segment: ``**/`` is any number of ``segment/`` prefixes; a lone ``**`` anything."""
        if self.i < len(self.p) and self.p[self.i] == "/":
            self.i += 1
            return "(?:[^/]*/)*"
        return "(?s:.*)"

    def _klass(self) -> str:
        p = self.p
        negate = self.i < len(p) and (p[self.i] == "^" or (self.doublestar and p[self.i] == "!"))
        if negate:
            self.i += 1
        items: list[str] = []
        first = True
        while True:
            if self.i >= len(p):
                raise self.fail("an unclosed '['")
            ch = p[self.i]
            if ch == "]" and not first:
                self.i += 1
                break
            first = False
            lo = self._class_char()
            hi = lo
            if self.i + 1 < len(p) and p[self.i] == "-" and p[self.i + 1] != "]":
                self.i += 1
                hi = self._class_char()
                if hi < lo:
                    raise self.fail(f"the range {lo}-{hi} is reversed")
            if lo <= "/" <= hi:
                raise self.fail("'/' cannot be matched by a character class")
            items.append(_literal(lo) if lo == hi else f"{_literal(lo)}-{_literal(hi)}")
        body = "".join(items)
        return f"[^/{body}]" if negate else f"[{body}]"

    def _class_char(self) -> str:
        p = self.p
        ch = p[self.i]
        self.i += 1
        if ch == "\\":
            if self.i >= len(p):
                raise self.fail("a trailing backslash")
            ch = p[self.i]
            self.i += 1
        return ch

    def _braces(self, depth: int) -> str:
        if depth > MAX_BRACE_DEPTH:
            raise self.fail(f"braces nested deeper than {MAX_BRACE_DEPTH}")
        alternatives: list[str] = []
        while True:
            alternatives.append(self.translate(depth, stop=",}"))
            if self.i >= len(self.p):
                raise self.fail("an unclosed '{'")
            sep = self.p[self.i]
            self.i += 1
            if sep == "}":
                return "(?:" + "|".join(alternatives) + ")"


@dataclass(frozen=True, slots=True)
class Glob:
    """A compiled pattern; :meth:`match` is a full match against a ``/``-separated relative path."""

    pattern: str
    doublestar: bool
    _regex: Any

    def match(self, path: str) -> bool:
        return self._regex.fullmatch(path) is not None


def compile_glob(pattern: str, *, doublestar: bool) -> Glob:
    """Compile ``pattern`` in the dialect asked for; BadPattern when malformed or over a limit."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise BadPattern(f"glob pattern longer than {MAX_PATTERN_LENGTH} characters")
    if "\0" in pattern:
        raise BadPattern("glob pattern holds a NUL character")
    regex = _Translator(pattern, doublestar=doublestar).translate()
    try:
        compiled = re2.compile(regex, _OPTIONS)
    except re2.error as e:
        raise BadPattern(f"invalid glob pattern {pattern!r}: too complex to match ({e})") from None
    return Glob(pattern, doublestar, compiled)
