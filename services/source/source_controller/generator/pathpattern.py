"""``spec.pathPattern``: directories of a source found by a pattern with ``{captures}``, one set of artifacts per match.

source-watcher's directory discovery: ``@<alias>/apps/{app}/envs/{env}`` matches every directory of that
shape in the alias's tree (a capture is one path segment); each match renders ``spec.artifacts`` with its
captures — names and labels with the values lowercased, ``copy`` paths with the values as found — so one
ExternalArtifact per directory appears, labelled ``app=<app>``, ``env=<env>``. The rules and messages are
Flux's: capture names ``[A-Za-z_][A-Za-z0-9_]*`` that are label keys, captured values that are label values
(after lowercasing), rendered names that are object names, no two directories rendering the same name.

The pattern becomes an RE2 expression (literal text escaped, each capture ``[^/]+``): linear-time matching
of tenant input, as every pattern of the generator.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

from gitops_mesh.stoppable import Stop
from source_controller.generator.globs import MAX_PATTERN_LENGTH

_CAPTURE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class PathPatternError(ValueError):
    """The pattern, a captured directory name or a rendered artifact is invalid (terminal, as in Flux)."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = 1 << 20
    return options


_OPTIONS = _options()


@dataclass(frozen=True, slots=True)
class PathPattern:
    """A parsed ``@<alias>/<pattern>``."""

    spec: str  # as written, for messages
    alias: str
    names: tuple[str, ...]
    _regex: Any

    def match(self, rel: str) -> dict[str, str] | None:
        """The captures when directory ``rel`` (relative to the alias's root) matches."""
        m = self._regex.fullmatch(rel)
        return None if m is None else {name: m.group(name) for name in self.names}


def _captures(spec: str, pattern: str) -> Iterator[tuple[str, str]]:
    """(literal text, capture name or "") pieces of ``pattern``, with Flux's checks on the braces."""
    seen: set[str] = set()
    i, text = 0, list[str]()
    while i < len(pattern):
        ch = pattern[i]
        if ch == "{":
            end = pattern.find("}", i + 1)
            if end < 0:
                raise PathPatternError(
                    f"pathPattern {spec!r}: invalid capture starting at offset {i}: missing closing brace"
                )
            name = pattern[i + 1 : end]
            if not name:
                raise PathPatternError(f"pathPattern {spec!r}: empty capture variable")
            if not _CAPTURE_NAME.fullmatch(name):
                raise PathPatternError(
                    f"pathPattern {spec!r}: capture variable {name!r} must be a valid capture name matching "
                    "[A-Za-z_][A-Za-z0-9_]*"
                )
            if name in seen:
                raise PathPatternError(f"pathPattern {spec!r}: duplicate capture variable {name!r}")
            if len(name) > 63 or not _LABEL_NAME.fullmatch(name):
                raise PathPatternError(
                    f"pathPattern {spec!r}: capture variable {name!r} is not a valid Kubernetes label key"
                )
            seen.add(name)
            yield "".join(text), name
            text = []
            i = end + 1
            continue
        if ch == "}":
            raise PathPatternError(f"pathPattern {spec!r}: invalid capture ending at offset {i}: missing opening brace")
        text.append(ch)
        i += 1
    yield "".join(text), ""


def _escape(text: str) -> str:
    return "".join(ch if ch.isascii() and ch.isalnum() else f"\\x{{{ord(ch):x}}}" for ch in text)


def parse_path_pattern(spec: str) -> PathPattern:
    """``@<alias>/<pattern>`` as a :class:`PathPattern`; PathPatternError names what is wrong."""
    if len(spec) > MAX_PATTERN_LENGTH:
        raise PathPatternError(f"pathPattern longer than {MAX_PATTERN_LENGTH} characters")
    head, sep, pattern = spec.partition("/")
    if not sep or not head.startswith("@") or len(head) < 2:
        raise PathPatternError(f"invalid pathPattern format: {spec}")
    regex, names = [], []
    for text, name in _captures(spec, pattern):
        regex.append(_escape(text))
        if name:
            regex.append(f"(?P<{name}>[^/]+)")
            names.append(name)
    try:
        compiled = re2.compile("".join(regex), _OPTIONS)
    except re2.error as e:
        raise PathPatternError(f"pathPattern {spec!r}: failed to compile path pattern: {e}") from None
    return PathPattern(spec, head[1:], tuple(names), compiled)


def match_directories(root: Path, pattern: PathPattern, stop: Stop | None = None) -> list[tuple[str, dict[str, str]]]:
    """Every directory below ``root`` the pattern matches, with its captures, in WalkDir's order (blocking)."""
    found: list[tuple[str, dict[str, str]]] = []
    stack: list[tuple[str, Iterator[os.DirEntry[str]]]] = [("", iter(_dirs(root)))]
    while stack:
        prefix, it = stack[-1]
        entry = next(it, None)
        if entry is None:
            stack.pop()
            continue
        if stop is not None:
            stop.check()
        rel = prefix + entry.name
        captures = pattern.match(rel)
        if captures is not None:
            found.append((rel, captures))
        stack.append((rel + "/", iter(_dirs(Path(entry.path)))))
    return found


def _dirs(path: Path) -> list[os.DirEntry[str]]:
    with os.scandir(path) as it:
        return sorted((e for e in it if e.is_dir(follow_symlinks=False)), key=lambda e: e.name)


def render(template: str, data: Mapping[str, str]) -> str:
    """``template`` with each ``{name}`` replaced by ``data[name]`` (Flux's renderTemplateString)."""
    out, i = [], 0
    while i < len(template):
        ch = template[i]
        if ch == "{":
            end = template.find("}", i + 1)
            if end < 0:
                raise PathPatternError(
                    f"invalid template {template!r}: capture starting at offset {i} is missing closing brace"
                )
            name = template[i + 1 : end]
            if not name:
                raise PathPatternError(f"invalid template {template!r}: empty capture variable")
            if not _CAPTURE_NAME.fullmatch(name):
                raise PathPatternError(
                    f"invalid template {template!r}: capture variable {name!r} must be a valid capture name "
                    "matching [A-Za-z_][A-Za-z0-9_]*"
                )
            if name not in data:
                raise PathPatternError(
                    f"invalid template {template!r}: capture variable {name!r} is not defined by pathPattern"
                )
            out.append(data[name])
            i = end + 1
            continue
        if ch == "}":
            raise PathPatternError(
                f"invalid template {template!r}: capture ending at offset {i} is missing opening brace"
            )
        out.append(ch)
        i += 1
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Rendered:
    """One artifact template (``template``: its index in spec.artifacts) rendered for one matched directory."""

    template: int
    name: str
    labels: dict[str, str]
    copy: list[dict[str, Any]]


def expand(
    pattern: PathPattern, artifacts: list[Mapping[str, Any]], matches: list[tuple[str, dict[str, str]]]
) -> list[Rendered]:
    """Each matched directory renders every artifact template: names and labels lowercased, paths as found."""
    out: list[Rendered] = []
    seen: dict[str, str] = {}
    for rel, raw in matches:
        normalized = {k: v.lower() for k, v in raw.items()}
        for key, value in normalized.items():
            if len(value) > 63 or not _LABEL_NAME.fullmatch(value):
                raise PathPatternError(
                    f"pathPattern {pattern.spec!r}: captured value {value!r} for variable {key!r} is not a valid "
                    "Kubernetes label value: at most 63 characters, alphanumeric at both ends, '-', '_' or '.' between"
                )
        for index, art in enumerate(artifacts):
            template = str(art.get("name") or "")
            try:
                name = render(template, normalized)
                copy = [
                    {**op, "from": render(str(op.get("from") or ""), raw), "to": render(str(op.get("to") or ""), raw)}
                    for op in art.get("copy") or []
                ]
            except PathPatternError as e:
                raise PathPatternError(
                    f"pathPattern {pattern.spec!r}: failed to render artifact {template} for match {rel}: {e}"
                ) from None
            if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
                raise PathPatternError(
                    f"pathPattern {pattern.spec!r}: rendered artifact name {name!r} is not a valid Kubernetes object name"
                )
            if name in seen:
                raise PathPatternError(
                    f"pathPattern {pattern.spec!r}: directories {seen[name]!r} and {rel!r} both resolve to "
                    f"artifact name {name!r}"
                )
            seen[name] = rel
            out.append(Rendered(index, name, dict(normalized), copy))
    return out
