"""Semantic versions (pure, shared): strict tag versions and Masterminds/semver v3 ranges, for tags and chart versions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import total_ordering

_NUM = r"0|[1-9][0-9]*"
_IDENT = r"[0-9A-Za-z-]+"
_STRICT = re.compile(
    rf"^v?(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?(?:\+(?P<build>{_IDENT}(?:\.{_IDENT})*))?$"
)
_PART = r"[0-9]+|[xX*]"
_LOOSE = (
    rf"v?(?:{_PART})(?:\.(?:{_PART}))?(?:\.(?:{_PART}))?"
    rf"(?:-{_IDENT}(?:\.{_IDENT})*)?(?:\+{_IDENT}(?:\.{_IDENT})*)?"
)
_LOOSE_PARTS = re.compile(
    rf"^v?(?P<major>{_PART})(?:\.(?P<minor>{_PART}))?(?:\.(?P<patch>{_PART}))?"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?(?:\+(?P<build>{_IDENT}(?:\.{_IDENT})*))?$"
)
# Operators, longest first so that ">=" is not read as ">" followed by "=1.0".
_OP = r"!=|>=|=>|<=|=<|~>|\^|~|>|<|="
_ONE = rf"(?P<op>{_OP})?\s*(?P<ver>{_LOOSE})"
_ONE_RE = re.compile(_ONE)
_ONE_NOGROUP = rf"(?:{_OP})?\s*{_LOOSE}"
_SEGMENT = re.compile(rf"^\s*{_ONE_NOGROUP}(?:(?:\s*,\s*|\s+){_ONE_NOGROUP})*\s*$")
_HYPHEN = re.compile(rf"\s*({_LOOSE})\s+-\s+({_LOOSE})\s*")


class InvalidVersion(ValueError):
    """A string is not a version (strict for tags, loose inside constraints)."""


class InvalidConstraint(ValueError):
    """A semver range does not parse."""


def _pre_key(pre: tuple[str, ...]) -> tuple[tuple[int, int, str], ...]:
    # numeric identifiers sort before alphanumeric ones and compare as numbers (semver 2.0 §11)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre)


@total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A semantic version; build metadata is kept for display but ignored when comparing."""

    major: int
    minor: int
    patch: int
    pre: tuple[str, ...] = ()
    build: str = ""
    original: str = field(default="", compare=False)

    @property
    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        # a release (no prerelease) sorts after all its prereleases
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, _pre_key(self.pre))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key == other._key

    def __lt__(self, other: Version) -> bool:
        return self._key < other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __str__(self) -> str:
        s = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            s += "-" + ".".join(self.pre)
        if self.build:
            s += "+" + self.build
        return s


def parse_version(text: str) -> Version:
    """Parse a tag as Flux does: strict ``X.Y.Z[-pre][+build]``, with an optional leading ``v``."""
    m = _STRICT.match(text)
    if m is None:
        raise InvalidVersion(f"{text!r} is not a semantic version")
    pre = tuple(m["pre"].split(".")) if m["pre"] else ()
    if any(p.isdigit() and len(p) > 1 and p.startswith("0") for p in pre):
        raise InvalidVersion(f"{text!r}: numeric prerelease identifiers must not have leading zeros")
    return Version(int(m["major"]), int(m["minor"]), int(m["patch"]), pre, m["build"] or "", text)


def _is_x(part: str | None) -> bool:
    return part is None or part in ("x", "X", "*")


@dataclass(frozen=True)
class _Bound:
    op: str
    con: Version
    dirty: bool  # some part was a wildcard or missing
    minor_dirty: bool  # the minor (and so the patch) was a wildcard or missing
    patch_dirty: bool  # only the patch was a wildcard or missing
    major_dirty: bool  # the whole version was a wildcard

    def check(self, v: Version) -> bool:
        return _CHECKS[self.op](self, v)


def _tilde(c: _Bound, v: Version) -> bool:
    if v < c.con:
        return False
    if c.con.major == c.con.minor == c.con.patch == 0 and not c.minor_dirty and not c.patch_dirty:
        return True
    if v.major != c.con.major:
        return False
    return v.minor == c.con.minor or c.minor_dirty


def _equal(c: _Bound, v: Version) -> bool:
    return _tilde(c, v) if c.dirty else v == c.con


def _not_equal(c: _Bound, v: Version) -> bool:
    if c.dirty:
        if c.con.major != v.major:
            return True
        if c.minor_dirty:
            return False
        if c.con.minor != v.minor:
            return True
        if c.patch_dirty:
            # same major.minor: only a differing prerelease tells them apart
            return bool(v.pre or c.con.pre) and v.pre != c.con.pre
        if c.con.patch != v.patch:
            return True
    return v != c.con


def _greater(c: _Bound, v: Version) -> bool:
    if not c.dirty or c.major_dirty:
        return v > c.con
    if v.major != c.con.major:
        return v.major > c.con.major
    if c.minor_dirty:
        return False
    return v.minor > c.con.minor


def _less_equal(c: _Bound, v: Version) -> bool:
    if not c.dirty:
        return v <= c.con
    if v.major > c.con.major:
        return False
    return not (v.major == c.con.major and v.minor > c.con.minor and not c.minor_dirty)


def _caret(c: _Bound, v: Version) -> bool:
    if c.major_dirty:
        return True
    if v < c.con:
        return False
    if c.con.major > 0 or c.minor_dirty:
        return v.major == c.con.major
    if v.major > 0:
        return False
    if c.con.minor > 0 or c.patch_dirty:
        return v.minor == c.con.minor
    if v.minor > 0:
        return False
    return v.patch == c.con.patch


_CHECKS: dict[str, Callable[[_Bound, Version], bool]] = {
    "": _equal,
    "=": _equal,
    "!=": _not_equal,
    ">": _greater,
    "<": lambda c, v: v < c.con,
    ">=": lambda c, v: v >= c.con,
    "=>": lambda c, v: v >= c.con,
    "<=": _less_equal,
    "=<": _less_equal,
    "~": _tilde,
    "~>": _tilde,
    "^": _caret,
}


def _bound(op: str, text: str) -> _Bound:
    m = _LOOSE_PARTS.match(text)
    if m is None:  # pragma: no cover - the segment regex already validated it
        raise InvalidConstraint(f"improper constraint: {op}{text}")
    major, minor, patch = m["major"], m["minor"], m["patch"]
    pre = tuple(m["pre"].split(".")) if m["pre"] else ()
    major_dirty = _is_x(major)
    minor_dirty = not major_dirty and _is_x(minor)
    patch_dirty = not major_dirty and not minor_dirty and _is_x(patch)
    con = Version(
        0 if major_dirty else int(major),
        0 if major_dirty or minor_dirty else int(minor),
        0 if major_dirty or minor_dirty or patch_dirty else int(patch),
        pre,
    )
    dirty = major_dirty or minor_dirty or patch_dirty
    return _Bound(op, con, dirty, minor_dirty, patch_dirty, major_dirty)


@dataclass(frozen=True)
class Constraint:
    """A parsed range: alternatives (``||``) of conjunctions (space or comma separated)."""

    text: str
    alternatives: tuple[tuple[_Bound, ...], ...]

    def check(self, version: Version) -> bool:
        return any(_group_admits(conj, version) for conj in self.alternatives)


def _group_admits(conj: tuple[_Bound, ...], version: Version) -> bool:
    """One ``&&`` group (Masterminds v3.5, which Flux uses): a prerelease is considered only when some bound of
    the group names a prerelease itself (``>=1.0.0-0, <2.0.0`` admits ``1.2.0-rc.1``), then every bound checks."""
    if version.pre and not any(b.con.pre for b in conj):
        return False
    return all(b.check(version) for b in conj)


def parse_constraint(text: str) -> Constraint:
    """Parse a Masterminds/semver v3 range: ``>=1.0.0 <2.0.0``, ``^1.2``, ``~1.2.3``, ``1.x``, ``*``, ``1 - 2``, ``||``."""
    rewritten = _HYPHEN.sub(lambda m: f" >= {m[1]}, <= {m[2]} ", text)
    alternatives: list[tuple[_Bound, ...]] = []
    for segment in rewritten.split("||"):
        if not _SEGMENT.match(segment):
            raise InvalidConstraint(f"improper constraint: {segment.strip() or text!r}")
        alternatives.append(tuple(_bound(m["op"] or "", m["ver"]) for m in _ONE_RE.finditer(segment)))
    return Constraint(text, tuple(alternatives))


def best_match(constraint: Constraint, tags: Iterable[str]) -> str | None:
    """The tag with the highest version satisfying the range; ties (build metadata) go to the greatest name."""
    best: tuple[Version, str] | None = None
    for tag in tags:
        try:
            v = parse_version(tag)
        except InvalidVersion:
            continue
        if constraint.check(v) and (best is None or (v, tag) > best):
            best = (v, tag)
    return None if best is None else best[1]
