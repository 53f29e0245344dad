"""The digest of a staged artifact tree: what decides whether a generated artifact is new (blocking).

It covers what the packed artifact holds and nothing else — each directory and file by path, each file's
content (sha256) and whether it is executable (the only mode bit an artifact keeps) — so the same selected
content gives the same digest whatever the sources' other files, revisions or timestamps: an app team's
commit elsewhere in a monorepo leaves the infrastructure's artifact, its revision and its consumers alone.
Paths are length-prefixed, so no file name (newlines included) can make two trees hash alike.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from gitops_mesh.stoppable import Stop

_CHUNK = 1 << 20


def tree_digest(root: Path, stop: Stop | None = None) -> str:
    """``sha256:<hex>`` over the tree below ``root`` (root itself excluded), in a fixed walk order."""
    outer = hashlib.sha256()
    stack = [b""]
    base = os.fsencode(root)
    while stack:
        prefix = stack.pop()
        with os.scandir(os.path.join(base, prefix) if prefix else base) as it:
            entries = sorted(it, key=lambda e: e.name)
        subdirs = []
        for entry in entries:
            if stop is not None:
                stop.check()
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                _record(outer, b"d", rel, b"")
                subdirs.append(rel + b"/")
            elif entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                content = hashlib.sha256()
                with open(entry.path, "rb") as f:
                    while chunk := f.read(_CHUNK):
                        content.update(chunk)
                kind = b"x" if st.st_mode & 0o111 else b"f"
                _record(outer, kind, rel, content.digest())
        # Depth first, each directory's entries in byte order (pop takes the last pushed: push reversed).
        stack.extend(reversed(subdirs))
    return f"sha256:{outer.hexdigest()}"


def _record(h: hashlib._Hash, kind: bytes, rel: bytes, digest: bytes) -> None:
    h.update(kind + len(rel).to_bytes(4, "big") + rel + digest)
