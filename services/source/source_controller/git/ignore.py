"""Which checked-out paths go into the artifact: .sourceignore files, spec.ignore and Flux's default exclusions."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pathspec.patterns.gitignore.basic import GitIgnoreBasicPattern

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


@dataclass(frozen=True)
class Rule:
    """One gitignore line and the directory it is relative to (``()`` for the root)."""

    domain: tuple[str, ...]
    pattern: GitIgnoreBasicPattern
    text: str

    @property
    def exclude(self) -> bool:
        return bool(self.pattern.include)

    def matches(self, parts: tuple[str, ...], is_dir: bool) -> bool:
        n = len(self.domain)
        if len(parts) <= n or parts[:n] != self.domain:
            return False
        rel = "/".join(parts[n:])
        return self.pattern.match_file(rel + "/" if is_dir else rel) is not None


def parse_rules(text: str, domain: tuple[str, ...] = ()) -> list[Rule]:
    """gitignore lines (comments and blank lines skipped) as rules relative to ``domain``."""
    rules = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        pattern = GitIgnoreBasicPattern(line)
        if pattern.include is not None:
            rules.append(Rule(domain, pattern, line))
    return rules


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

    def _last_match(self, parts: tuple[str, ...], is_dir: bool) -> int:
        """Index of the last rule matching ``parts`` itself (not through a parent), or -1."""
        for i in range(len(self.rules) - 1, -1, -1):
            if self.rules[i].matches(parts, is_dir):
                return i
        return -1

    def _dir_decision(self, parts: tuple[str, ...]) -> int:
        """Index of the deciding rule for a directory, counting matches on its parents."""
        cached = self._dir_cache.get(parts)
        if cached is not None:
            return cached
        index = max(self._dir_decision(parts[:-1]), self._last_match(parts, True))
        self._dir_cache[parts] = index
        return index

    def include(self, relpath: str, is_dir: bool = False) -> bool:
        """Whether a path (relative to the checkout root, ``/``-separated) goes into the artifact."""
        parts = tuple(p for p in relpath.strip("/").split("/") if p and p != ".")
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
            text = (Path(dirpath) / IGNORE_FILE).read_text(errors="replace")
            rules.extend(parse_rules(text, domain))
    return rules


def build_filter(root: Path, spec_ignore: str | None = None) -> IgnoreFilter:
    """The artifact filter for a checkout at ``root`` with the object's spec.ignore."""
    return _with_defaults(load_sourceignore(root) + parse_rules(spec_ignore or ""))


def filter_from_files(sourceignores: Mapping[str, str], spec_ignore: str | None = None) -> IgnoreFilter:
    """The same filter from .sourceignore contents by path (``deploy/.sourceignore`` → text), no checkout."""
    rules: list[Rule] = []
    for path in sorted(sourceignores, key=lambda p: (p.count("/"), p)):
        domain = tuple(part for part in path.split("/")[:-1] if part and part != ".")
        rules.extend(parse_rules(sourceignores[path], domain))
    return _with_defaults(rules + parse_rules(spec_ignore or ""))


def _with_defaults(user: list[Rule]) -> IgnoreFilter:
    defaults = EXCLUDE_VCS if user else EXCLUDE_VCS + DEFAULT_EXCLUSIONS
    return IgnoreFilter(parse_rules("\n".join(defaults)) + user)


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
