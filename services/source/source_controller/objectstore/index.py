"""Bucket listing → etag index, pure: which keys go into the artifact, where each lands, and the revision.

The revision is Flux's (source-controller ``internal/index``): the keys sorted byte-wise, each written as
``<key> <etag>\\n``, hashed with SHA-256, ``sha256:<hex>``. The same listing gives the same revision as Flux,
so a Bucket moved between the two keeps its revision and its consumers are not woken for nothing.

Which keys count is Flux's too: "directory" placeholders (a key ending in ``/``) and the root
``.sourceignore`` are skipped, then the ignore rules (the root ``.sourceignore`` and ``spec.ignore``, no
default exclusions: Flux applies none to buckets). Keys are tenant data that become paths: a key that
would leave the artifact root (``..``, an absolute key), that has an empty or ``.`` segment, or that is
both a file and a directory is refused by name rather than written somewhere else or silently dropped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from source_controller.git.ignore import IGNORE_FILE, MAX_RULES, IgnoreFilter, IgnoreRulesRefused, parse_rules
from source_controller.objectstore.errors import BucketOperationFailed

#: Longest key accepted, and longest path segment (NAME_MAX on Linux): a longer one cannot be a file.
MAX_KEY_LENGTH = 1024
MAX_SEGMENT_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Listed:
    """One object of a listing: its key, its etag as Flux writes it in the index, its size in bytes."""

    key: str
    etag: str
    size: int


@dataclass(frozen=True, slots=True)
class Limits:
    """What a Bucket may hold: objects, bytes in all, bytes per object."""

    max_objects: int
    max_total_size: int
    max_object_size: int


def digest(index: Mapping[str, str]) -> str:
    """``sha256:<hex>`` of the index as Flux's Digester writes it (sorted ``key etag\\n`` lines)."""
    h = hashlib.sha256()
    # Go's sort.Strings orders by bytes; Python's str order is by code point, which is the same order
    # for UTF-8 encoded text, so sorting the encoded keys is both.
    for key in sorted(index, key=lambda k: k.encode("utf-8", "surrogateescape")):
        h.update(f"{key} {index[key]}\n".encode("utf-8", "surrogateescape"))
    return f"sha256:{h.hexdigest()}"


def ignore_filter(sourceignore: str | None, spec_ignore: str | None) -> IgnoreFilter:
    """The root .sourceignore then spec.ignore (which wins, coming last), under the GitRepository's caps."""
    rules = parse_rules(sourceignore or "", origin=IGNORE_FILE) + parse_rules(spec_ignore or "")
    if len(rules) > MAX_RULES:
        raise IgnoreRulesRefused(f"{len(rules)} ignore rules ({IGNORE_FILE} and spec.ignore), more than {MAX_RULES}")
    return IgnoreFilter(rules)


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a path inside the artifact, or None."""
    if len(key) > MAX_KEY_LENGTH:
        return f"is longer than {MAX_KEY_LENGTH} characters"
    if key.startswith("/"):
        return "is an absolute path"
    if "\0" in key or "\\" in key:
        return "contains a NUL or backslash character"
    for segment in key.split("/"):
        if segment == "..":
            return "escapes the artifact root ('..' segment)"
        if segment in ("", "."):
            return "has an empty or '.' path segment"
        if len(segment.encode("utf-8", "surrogateescape")) > MAX_SEGMENT_LENGTH:
            return f"has a path segment longer than {MAX_SEGMENT_LENGTH} bytes"
    return None


@dataclass
class Index:
    """The kept objects by key (etag, size) and the revision over them."""

    objects: dict[str, Listed] = field(default_factory=dict)

    @property
    def etags(self) -> dict[str, str]:
        return {key: o.etag for key, o in self.objects.items()}

    @property
    def revision(self) -> str:
        return digest(self.etags)

    @property
    def total_size(self) -> int:
        return sum(o.size for o in self.objects.values())

    def __len__(self) -> int:
        return len(self.objects)


def build_index(bucket: str, listing: Iterable[Listed], keep: IgnoreFilter, limits: Limits) -> Index:
    """The etag index of ``listing`` as Flux builds it, with keys checked and the Bucket's limits applied.

    Raises BucketOperationFailed naming the first key refused or the limit passed.
    """
    index = Index()
    total = 0
    for obj in listing:
        key = obj.key
        if key.endswith("/") or key == IGNORE_FILE:
            continue
        if len(key) > MAX_KEY_LENGTH:
            raise BucketOperationFailed(
                f"object key '{key[:200]}…' in bucket '{bucket}' is longer than {MAX_KEY_LENGTH} characters"
            )
        # Ignore rules first, as Flux: a tenant can leave out keys that could not be paths.
        if not keep.include(key):
            continue
        problem = key_problem(key)
        if problem is not None:
            raise BucketOperationFailed(f"object key '{key}' in bucket '{bucket}' {problem}")
        if obj.size > limits.max_object_size:
            raise BucketOperationFailed(
                f"object '{key}' in bucket '{bucket}' is {obj.size} bytes, larger than the "
                f"{limits.max_object_size} allowed (--max-bucket-object-size)"
            )
        index.objects[key] = obj
        total += obj.size
        if len(index.objects) > limits.max_objects:
            raise BucketOperationFailed(
                f"bucket '{bucket}' has more than {limits.max_objects} objects to fetch (--max-bucket-objects)"
            )
        if total > limits.max_total_size:
            raise BucketOperationFailed(
                f"objects to fetch from bucket '{bucket}' exceed {limits.max_total_size} bytes (--max-bucket-size)"
            )
    _refuse_file_directory_clash(bucket, index.objects)
    return index


def _refuse_file_directory_clash(bucket: str, objects: Mapping[str, Listed]) -> None:
    """A key that is also another key's directory (``a`` and ``a/b``) cannot be both on disk."""
    keys = set(objects)
    for key in objects:
        parts = key.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in keys:
                raise BucketOperationFailed(
                    f"object key '{parent}' in bucket '{bucket}' is also the directory of '{key}'"
                )
