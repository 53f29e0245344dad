"""Which checked-out paths go into the artifact: .sourceignore files, spec.ignore and Flux's default exclusions.

The rules are tenant input matched once per path inside the source-controller's pack thread, so matching is
linear time: pathspec turns each gitignore line into a regex (its parsing is kept), which is compiled with RE2
instead of Python's backtracking ``re`` (``**/a/**/a/**/a/**/a/**/a/**/a/**/b`` took seconds per path there).
Rules, their length and paths are capped; going over raises :class:`IgnoreRulesRefused`, the GitRepository's
error, never a silently shortened rule list. The filter stays a plain callable per path: each call costs at most
the number of rules times a linear-time match on capped input, so the pack loop's deadline can stop between
paths.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information
from pathspec.patterns.gitignore.basic import GitIgnoreBasicPattern

from gitops_mesh.errors import TransientError

IGNORE_FILE = ".sourceignore"
#: Always excluded (fluxcd/pkg sourceignore ExcludeVCS).
EXCLUDE_VCS = (".git/", ".gitignore", ".gitmodules", ".gitattributes")
#: Excluded unless the repository or the spec brings its own rules (ExcludeExt, ExcludeCI, ExcludeExtra).
EXCLUDE_EXT = ("*.jpg", "*.jpeg", "*.gif", "*.png", "*.wmv", "*.flv", "*.tar.gz", "*.zip")
EXCLUDE_CI = (
    ".github/",
    ".circleci/",
    ".travis.yml",
    ".gitlab-ci.yml",
    "appveyor.yml",
    ".drone.yml",
    "cloudbuild.yaml",
    "codeship-services.yml",
    "codeship-steps.yml",
)
EXCLUDE_EXTRA = ("**/.goreleaser.yml", "**/.sops.yaml", "**/.flux.yaml")
DEFAULT_EXCLUSIONS = EXCLUDE_EXT + EXCLUDE_CI + EXCLUDE_EXTRA

#: Bounds on tenant rules (real ignore files are tens of short lines) and on the paths matched against them.
MAX_RULE_LENGTH = 1024
MAX_RULES = 1000
MAX_RULES_TEXT = 1024 * 1024  # characters of one .sourceignore or spec.ignore, comments included
MAX_PATH_LENGTH = 4096  # Linux's PATH_MAX: a longer path cannot be checked out
MAX_PATH_DEPTH = 128


class IgnoreRulesRefused(TransientError):
    """The ignore rules (or a path matched against them) are over a limit or not a pattern RE2 can match.

    Transient, as Flux's archive failures are: a new commit can change the .sourceignore files.
    """

    reason = "ArchiveOperationFailed"


def _re2_options() -> Any:
    options = re2.Options()
    options.never_capture = True
    options.log_errors = False
    # RE2 falls back from its DFA to its (still linear) NFA past this; it bounds what a thousand rules can pin.
    options.max_mem = 256 * 1024
    return options


_OPTIONS = _re2_options()
_COMBINED_OPTIONS = _re2_options()
_COMBINED_OPTIONS.max_mem = 8 << 20  # one per directory with rules, for the filter's lifetime
_MAX_COMBINED = 16 * 1024


def re2_syntax(regex: str) -> str:
    """pathspec's regex (Python syntax) in RE2 syntax, meaning the same: every literal written as a code point.

    pathspec emits ``^ $ . + * ? (?: ) |`` and ``[^/]``-style classes, ``re.escape``d characters, and
    bracket expressions copied from the glob; RE2 reads ``[:alpha:]`` inside a class as a POSIX class and
    rejects some escapes Python accepts, so classes and escapes are rewritten, the rest is copied.
    """
    out: list[str] = []
    i, n = 0, len(regex)
    while i < n:
        c = regex[i]
        if c == "\\" and i + 1 < n:
            out.append(_code_point(regex[i + 1]))
            i += 2
        elif c == "[":
            i = _copy_class(regex, i + 1, out)
        else:
            # Non-ASCII as code points too, so the RE2 pattern is ASCII whatever a spec's JSON held.
            out.append(c if c.isascii() else _code_point(c))
            i += 1
    return "".join(out)


def _copy_class(regex: str, i: int, out: list[str]) -> int:
    """A Python bracket expression from just after ``[``, appended to ``out`` in RE2 syntax; the index past it.

    Read as Python's parser reads it: a ``]`` right after ``[`` or ``[^`` is a member, ``x-y`` is a range
    unless the ``-`` is followed by ``]``, and any other ``-`` is a member.
    """
    out.append("[")
    if regex.startswith("^", i):
        out.append("^")
        i += 1
    first = True
    while i < len(regex):
        if regex[i] == "]" and not first:
            out.append("]")
            return i + 1
        first = False
        lo, i = _class_member(regex, i)
        if regex.startswith("-", i) and i + 1 < len(regex) and regex[i + 1] != "]":
            hi, i = _class_member(regex, i + 1)
            out.append(f"{_code_point(lo)}-{_code_point(hi)}")
        else:
            out.append(_code_point(lo))
    raise IgnoreRulesRefused(f"unterminated character class in {regex!r}")


def _class_member(regex: str, i: int) -> tuple[str, int]:
    if regex[i] == "\\" and i + 1 < len(regex):
        return regex[i + 1], i + 2
    return regex[i], i + 1


def _code_point(c: str) -> str:
    if c.isascii() and c.isalnum():
        return c
    return f"\\x{{{ord(_valid_unicode(c)):x}}}"


def _valid_unicode(text: str) -> str:
    """``text`` with lone surrogates (a file name's bytes that are not UTF-8, as os.walk decodes them) as
    U+FFFD, one for one, on both sides of a match: RE2 reads UTF-8, and a ``?`` still takes one of them."""
    if text.isascii():
        return text
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


@dataclass(frozen=True)
class Rule:
    """One gitignore line and the directory it is relative to (``()`` for the root)."""

    domain: tuple[str, ...]
    #: pathspec's regex for the line, compiled with RE2
    regex: Any
    #: False for a ``!`` line (it re-includes)
    exclude: bool
    text: str

    def matches(self, parts: tuple[str, ...], is_dir: bool) -> bool:
        n = len(self.domain)
        if len(parts) <= n or parts[:n] != self.domain:
            return False
        rel = "/".join(parts[n:]) + ("/" if is_dir else "")
        return self.regex.search(_valid_unicode(rel)) is not None


def parse_rules(text: str, domain: tuple[str, ...] = (), *, origin: str = "spec.ignore") -> list[Rule]:
    """gitignore lines (comments and blank lines skipped) as rules relative to ``domain``.

    ``origin`` names where the text came from in errors. Raises IgnoreRulesRefused for text or a line over the
    limits, or a line RE2 cannot compile (an inverted range like ``[z-a]``, which Python's ``re`` refused too).
    """
    if len(text) > MAX_RULES_TEXT:
        raise IgnoreRulesRefused(f"{origin} has {len(text)} characters, more than the {MAX_RULES_TEXT} allowed")
    rules = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if len(line) > MAX_RULE_LENGTH:
            raise IgnoreRulesRefused(
                f"{origin}: a rule of {len(line)} characters is longer than {MAX_RULE_LENGTH}: {line[:80]!r}…"
            )
        try:
            regex, include = GitIgnoreBasicPattern.pattern_to_regex(line)
        except ValueError:
            continue  # "!" or "/" alone: git and Flux's matcher match nothing with them (pathspec raised)
        if include is None or regex is None:
            continue
        try:
            compiled = re2.compile(re2_syntax(regex), _OPTIONS)
        except re2.error as e:
            raise IgnoreRulesRefused(f"{origin}: rule {line!r} is not a valid pattern: {e}") from None
        rules.append(Rule(domain, compiled, bool(include), line))
    return rules


class _DomainGroup:
    """The rules of one directory: most paths match none of them, which one RE2 pass over all of them tells."""

    def __init__(self, domain: tuple[str, ...], rules: tuple[Rule, ...]) -> None:
        self.domain = domain
        self.members = [(i, rule) for i, rule in enumerate(rules) if rule.domain == domain]
        combined = "|".join(f"(?:{rule.regex.pattern})" for _, rule in self.members)
        self.any: Any = None
        # Past this size the union's DFA overflows and RE2's NFA over the whole union is slower than asking
        # the rules one by one (each of which is linear too).
        if len(combined) <= _MAX_COMBINED:
            try:
                self.any = re2.compile(combined, _COMBINED_OPTIONS)
            except re2.error:
                self.any = None

    def last_match(self, parts: tuple[str, ...], is_dir: bool) -> int:
        n = len(self.domain)
        if len(parts) <= n or parts[:n] != self.domain:
            return -1
        rel = _valid_unicode("/".join(parts[n:]) + ("/" if is_dir else ""))
        if self.any is not None and self.any.search(rel) is None:
            return -1
        for i, rule in reversed(self.members):
            if rule.regex.search(rel) is not None:
                return i
        return -1


class IgnoreFilter:
    """``include(relpath, is_dir)``: the last matching rule decides, and a rule matching a directory also
    matches everything under it (so ``/*`` then ``!/deploy`` keeps ``deploy/…``, as in Flux).

    Rules come in priority order: defaults, then .sourceignore files from the root down, then spec.ignore.
    When neither .sourceignore nor spec.ignore has a rule, Flux's default exclusions apply; otherwise only the
    VCS ones do.
    """

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)
        self._dir_cache: dict[tuple[str, ...], int] = {(): -1}
        self._groups = [_DomainGroup(domain, self.rules) for domain in dict.fromkeys(r.domain for r in self.rules)]

    def _last_match(self, parts: tuple[str, ...], is_dir: bool) -> int:
        """Index of the last rule matching ``parts`` itself (not through a parent), or -1."""
        return max((group.last_match(parts, is_dir) for group in self._groups), default=-1)

    def _dir_decision(self, parts: tuple[str, ...]) -> int:
        """Index of the deciding rule for a directory, counting matches on its parents."""
        # From the deepest known ancestor down, in a loop: a path may be MAX_PATH_DEPTH directories deep.
        known = len(parts)
        while parts[:known] not in self._dir_cache:
            known -= 1
        index = self._dir_cache[parts[:known]]
        for depth in range(known + 1, len(parts) + 1):
            index = max(index, self._last_match(parts[:depth], True))
            self._dir_cache[parts[:depth]] = index
        return index

    def include(self, relpath: str, is_dir: bool = False) -> bool:
        """Whether a path (relative to the checkout root, ``/``-separated) goes into the artifact.

        Raises IgnoreRulesRefused for a path longer than MAX_PATH_LENGTH.
        """
        if len(relpath) > MAX_PATH_LENGTH:
            raise IgnoreRulesRefused(
                f"path of {len(relpath)} characters is longer than {MAX_PATH_LENGTH}: {relpath[:80]!r}…"
            )
        parts = tuple(p for p in relpath.strip("/").split("/") if p and p != ".")
        if len(parts) > MAX_PATH_DEPTH:
            # Each new directory is matched against every rule once, so depth multiplies the work per path.
            raise IgnoreRulesRefused(
                f"path nested {len(parts)} directories deep, more than {MAX_PATH_DEPTH}: {relpath[:80]!r}…"
            )
        if not parts:
            return True
        if is_dir:
            index = self._dir_decision(parts)
        else:
            index = max(self._dir_decision(parts[:-1]), self._last_match(parts, False))
        return index < 0 or not self.rules[index].exclude

    def __call__(self, relpath: str, is_dir: bool = False) -> bool:
        return self.include(relpath, is_dir)

    def descend(self, relpath: str) -> bool:
        """Whether a walker must look inside a directory: it is included, or a later rule may re-include
        something below it."""
        if self.include(relpath, True):
            return True
        index = self._dir_decision(tuple(p for p in relpath.strip("/").split("/") if p))
        return any(not r.exclude for r in self.rules[index + 1 :])


def load_sourceignore(root: Path) -> list[Rule]:
    """Rules of every .sourceignore under ``root``, each relative to its directory, parents before children."""
    rules: list[Rule] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        if IGNORE_FILE in filenames:
            rel = Path(dirpath).relative_to(root)
            domain = tuple(p for p in rel.parts if p != ".")
            path = Path(dirpath) / IGNORE_FILE
            origin = (rel / IGNORE_FILE).as_posix()
            # Checked before reading: parse_rules would refuse it anyway, without the whole file in memory first.
            if path.stat().st_size > 4 * MAX_RULES_TEXT:
                raise IgnoreRulesRefused(f"{origin} is larger than {MAX_RULES_TEXT} characters")
            rules.extend(parse_rules(path.read_text(errors="replace"), domain, origin=origin))
    return rules


def build_filter(root: Path, spec_ignore: str | None = None) -> IgnoreFilter:
    """The artifact filter for a checkout at ``root`` with the object's spec.ignore."""
    return _with_defaults(load_sourceignore(root) + parse_rules(spec_ignore or ""))


def filter_from_files(sourceignores: Mapping[str, str], spec_ignore: str | None = None) -> IgnoreFilter:
    """The same filter from .sourceignore contents by path (``deploy/.sourceignore`` → text), no checkout."""
    rules: list[Rule] = []
    for path in sorted(sourceignores, key=lambda p: (p.count("/"), p)):
        domain = tuple(part for part in path.split("/")[:-1] if part and part != ".")
        rules.extend(parse_rules(sourceignores[path], domain, origin=path))
    return _with_defaults(rules + parse_rules(spec_ignore or ""))


_DEFAULT_RULES = parse_rules("\n".join(EXCLUDE_VCS + DEFAULT_EXCLUSIONS), origin="the default exclusions")
_VCS_RULES = _DEFAULT_RULES[: len(EXCLUDE_VCS)]


def _with_defaults(user: list[Rule]) -> IgnoreFilter:
    if len(user) > MAX_RULES:
        raise IgnoreRulesRefused(
            f"{len(user)} ignore rules (.sourceignore files and spec.ignore), more than {MAX_RULES}"
        )
    return IgnoreFilter((_VCS_RULES if user else _DEFAULT_RULES) + user)


def included_files(root: Path, keep: IgnoreFilter) -> Iterator[str]:
    """Relative paths of the regular files under ``root`` that ``keep`` lets through (symlinks skipped)."""
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        prefix = "" if rel == Path(".") else rel.as_posix() + "/"
        dirnames[:] = sorted(d for d in dirnames if keep.descend(prefix + d))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink() and keep.include(prefix + name):
                yield prefix + name
