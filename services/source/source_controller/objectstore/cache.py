"""A Bucket's downloaded objects kept between artifacts, so a rebuild fetches only what changed.

One file per (key, etag) under ``<storage>/bucket/<ns>/<name>/.cache/``, named by a hash of both: an
object fetched once is not fetched again while the listing shows the same etag. Hidden, so the artifact
server never serves it and storage GC (regular files only) never takes it; the Bucket's finalizer removes
the whole object directory, cache included. It holds at most the current index's objects (pruned before
each rebuild), and the index is held to the Bucket's size limits, so the cache is capped by them too.
Files are hard-linked into the tree that is packed, which costs no copy and no extra space.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

CACHE_DIR = ".cache"
_PART = ".part-"


def entry_name(key: str, etag: str) -> str:
    return hashlib.sha256(f"{key}\0{etag}".encode("utf-8", "surrogateescape")).hexdigest()


class ObjectCache:
    """The cache directory of one Bucket (blocking methods: call them in a thread)."""

    def __init__(self, object_dir: Path) -> None:
        self.directory = object_dir / CACHE_DIR

    def path(self, key: str, etag: str) -> Path:
        return self.directory / entry_name(key, etag)

    def has(self, key: str, etag: str) -> bool:
        return self.path(key, etag).is_file()

    def names(self) -> set[str]:
        """The entries present (one directory read, not one stat per object)."""
        try:
            return set(os.listdir(self.directory))
        except FileNotFoundError:
            return set()

    def ensure(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def part(self) -> Path:
        """A fresh temporary path inside the cache for a download in progress."""
        return self.directory / f"{_PART}{uuid.uuid4().hex}"

    def commit(self, part: Path, key: str, etag: str) -> Path:
        final = self.path(key, etag)
        os.replace(part, final)
        return final

    def prune(self, keep: Iterable[tuple[str, str]]) -> int:
        """Remove every entry (and leftover partial download) not in ``keep``; how many were removed."""
        wanted = {entry_name(key, etag) for key, etag in keep}
        removed = 0
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry.name not in wanted:
                try:
                    os.unlink(entry.path)
                    removed += 1
                except (FileNotFoundError, IsADirectoryError):
                    continue
        return removed


def link_tree(cache: ObjectCache, objects: Mapping[str, str], work: Path) -> None:
    """Hard-link each ``key → etag`` entry of the cache to ``work/<key>`` (keys already checked as paths)."""
    made: set[Path] = set()
    for key, etag in objects.items():
        dest = work.joinpath(*key.split("/"))
        parent = dest.parent
        if parent not in made:
            parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            made.add(parent)
        os.link(cache.path(key, etag), dest)
