"""Pure ref logic: spec.ref precedence, ls-remote parsing, resolution to a commit, Flux revision strings."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gitops_mesh.semver import InvalidConstraint, best_match, parse_constraint
from source_controller.git.errors import InvalidRef, RefNotFound

DEFAULT_BRANCH = "master"
PEELED_SUFFIX = "^{}"
_HASH = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
# git-check-ref-format: no control chars, space, ~ ^ : ? * [ \, no "..", "@{", "//", no component starting
# with "." or ending with ".lock", not ending with "/" or "."
_BAD_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|(?:^|/)\.|\.lock(?:/|$)|[/.]$|^/")


class RefKind(StrEnum):
    """Which spec.ref field decided what to check out."""

    BRANCH = "branch"
    TAG = "tag"
    SEMVER = "semver"
    NAME = "name"
    COMMIT = "commit"


@dataclass(frozen=True)
class GitRef:
    """spec.ref of a GitRepository; several fields may be set, the strongest wins (see ``choose``)."""

    branch: str | None = None
    tag: str | None = None
    semver: str | None = None
    name: str | None = None
    commit: str | None = None

    @classmethod
    def from_spec(cls, ref: Mapping[str, Any] | None) -> GitRef:
        """Read spec.ref as the API server stores it (camelCase keys, absent or empty fields unset)."""
        ref = ref or {}

        def field(key: str) -> str | None:
            value = ref.get(key)
            return str(value) if value else None

        return cls(field("branch"), field("tag"), field("semver"), field("name"), field("commit"))


@dataclass(frozen=True)
class RefChoice:
    """The one ref to follow, after precedence: commit > name > semver > tag > branch (> master)."""

    kind: RefKind
    value: str
    #: for a commit: the branch it was given with (its revision then reads ``<branch>@sha1:<commit>``)
    branch: str | None = None

    @property
    def full_name(self) -> str | None:
        """The ref to ask the remote for, when there is one before resolution (not for semver or bare commits)."""
        match self.kind:
            case RefKind.BRANCH:
                return f"refs/heads/{self.value}"
            case RefKind.TAG:
                return f"refs/tags/{self.value}"
            case RefKind.NAME:
                return self.value
            case RefKind.COMMIT:
                return f"refs/heads/{self.branch}" if self.branch else None
            case _:
                return None


def valid_ref_name(name: str) -> bool:
    """A loose git-check-ref-format: rejects what git would refuse or misread as an option or a range."""
    return bool(name) and not name.startswith("-") and _BAD_REF.search(name) is None


def choose(ref: GitRef | None) -> RefChoice:
    """Apply Flux's precedence to spec.ref and validate the winning field; the default is branch ``master``."""
    ref = ref or GitRef()
    if ref.commit:
        commit = ref.commit.lower()
        if not _HASH.match(commit):
            raise InvalidRef(f"spec.ref.commit {ref.commit!r} is not a full 40-character (or 64 for SHA-256) hash")
        if ref.branch and not valid_ref_name(ref.branch):
            raise InvalidRef(f"spec.ref.branch {ref.branch!r} is not a valid branch name")
        return RefChoice(RefKind.COMMIT, commit, ref.branch)
    if ref.name:
        if not valid_ref_name(ref.name):
            raise InvalidRef(f"spec.ref.name {ref.name!r} is not a valid git reference (e.g. refs/heads/main)")
        return RefChoice(RefKind.NAME, ref.name)
    if ref.semver:
        try:
            parse_constraint(ref.semver)
        except InvalidConstraint as e:
            raise InvalidRef(f"spec.ref.semver {ref.semver!r} is not a valid semver range: {e}") from e
        return RefChoice(RefKind.SEMVER, ref.semver)
    if ref.tag:
        if not valid_ref_name(ref.tag):
            raise InvalidRef(f"spec.ref.tag {ref.tag!r} is not a valid tag name")
        return RefChoice(RefKind.TAG, ref.tag)
    branch = ref.branch or DEFAULT_BRANCH
    if not valid_ref_name(branch):
        raise InvalidRef(f"spec.ref.branch {branch!r} is not a valid branch name")
    return RefChoice(RefKind.BRANCH, branch)


def ls_remote_patterns(choice: RefChoice) -> list[str]:
    """What to ask ``git ls-remote`` for (it matches patterns on the tail; ``select`` filters exactly)."""
    if choice.kind is RefKind.SEMVER:
        return ["refs/tags/*"]
    name = choice.full_name
    # an exact pattern hides the peeled line of an annotated tag: ask for it explicitly
    return [name, name + PEELED_SUFFIX] if name else []


@dataclass(frozen=True)
class RemoteRef:
    """One advertised ref: the object it points at, and the commit under it for an annotated tag."""

    name: str
    target: str
    peeled: str | None = None

    @property
    def commit(self) -> str:
        return self.peeled or self.target


def parse_ls_remote(text: str) -> dict[str, RemoteRef]:
    """Parse ``git ls-remote`` output (``<hash>\\t<ref>`` lines, ``^{}`` lines for peeled tags)."""
    targets: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in text.splitlines():
        sha, sep, name = line.partition("\t")
        if not sep or not _HASH.match(sha.strip()):
            continue
        name = name.strip()
        if name.endswith(PEELED_SUFFIX):
            peeled[name.removesuffix(PEELED_SUFFIX)] = sha.strip()
        else:
            targets[name] = sha.strip()
    return {n: RemoteRef(n, t, peeled.get(n)) for n, t in targets.items()}


def hash_type(commit: str) -> str:
    """The algorithm prefix of a revision: ``sha1`` for 40 hex digits, ``sha256`` for 64."""
    return "sha256" if len(commit) == 64 else "sha1"


def revision(ref_name: str | None, commit: str, *, absolute: bool = False) -> str:
    """Flux's revision string: ``main@sha1:<hash>``, ``v1.0.0@sha1:…``, ``sha1:…``; ``absolute`` keeps ``refs/…``."""
    digest = f"{hash_type(commit)}:{commit}"
    if not ref_name:
        return digest
    if absolute:
        return f"{ref_name}@{digest}"
    parts = ref_name.split("/", 2)
    return f"{parts[2]}@{digest}" if len(parts) == 3 else digest


@dataclass(frozen=True)
class Resolved:
    """Where spec.ref points on the remote right now; ``revision`` is what the artifact would carry."""

    revision: str
    commit: str
    #: the full ref followed (``refs/heads/main``, ``refs/tags/v1.2.0``), None for a bare commit
    ref_name: str | None
    #: the object the ref points at: the tag object for an annotated tag, else the commit
    target: str | None = None


def revision_for(choice: RefChoice, ref_name: str | None, commit: str) -> str:
    """The revision of ``commit`` reached through ``ref_name`` under ``choice`` (spec.ref.name keeps ``refs/…``)."""
    return revision(ref_name, commit, absolute=choice.kind is RefKind.NAME)


def select(choice: RefChoice, refs: Mapping[str, RemoteRef], *, url: str) -> Resolved:
    """Pick the ref ``choice`` means from an ls-remote listing; ``url`` (credential-free) is only for messages."""
    if choice.kind is RefKind.COMMIT:
        ref_name = choice.full_name
        return Resolved(revision_for(choice, ref_name, choice.value), choice.value, ref_name, choice.value)
    if choice.kind is RefKind.SEMVER:
        best = best_match(parse_constraint(choice.value), tags_of(refs))
        if best is None:
            raise RefNotFound(f"no tag in {url} matches semver range '{choice.value}'")
        found = refs[f"refs/tags/{best}"]
    else:
        name = choice.full_name
        assert name is not None
        if name not in refs:
            raise RefNotFound(_not_found(choice, url))
        found = refs[name]
    return Resolved(revision_for(choice, found.name, found.commit), found.commit, found.name, found.target)


def _not_found(choice: RefChoice, url: str) -> str:
    match choice.kind:
        case RefKind.BRANCH:
            return f"branch '{choice.value}' not found in {url}"
        case RefKind.TAG:
            return f"tag '{choice.value}' not found in {url}"
        case _:
            return f"ref '{choice.value}' not found in {url}"


def not_found_message(choice: RefChoice, url: str) -> str:
    """The message for a ref that vanished (or never existed) between listing and fetching."""
    if choice.kind is RefKind.COMMIT:
        where = f" (on branch '{choice.branch}')" if choice.branch else ""
        return (
            f"commit '{choice.value}'{where} not found in {url}, or the server does not allow fetching a commit "
            "by hash (set spec.ref.branch to a branch containing it)"
        )
    return _not_found(choice, url)


def tags_of(refs: Iterable[str]) -> list[str]:
    """Tag names (without ``refs/tags/``) in a list of ref names."""
    return [n.removeprefix("refs/tags/") for n in refs if n.startswith("refs/tags/")]
