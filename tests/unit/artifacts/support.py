"""Helpers for the artifact tests: trees on disk, and hand-made (possibly hostile) tarballs."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path


def write_tree(root: Path, files: dict[str, bytes], *, executable: frozenset[str] = frozenset()) -> Path:
    """Create ``files`` (relative path -> content) under ``root``; names in ``executable`` get mode 0755."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(0o755 if rel in executable else 0o644)
    return root


def snapshot(root: Path) -> dict[str, tuple[str, bytes, int]]:
    """Every entry under ``root``: relative path -> (kind, content, permission bits)."""
    found: dict[str, tuple[str, bytes, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path).encode(), 0)
            elif path.is_dir():
                found[rel] = ("dir", b"", st.st_mode & 0o777)
            else:
                found[rel] = ("file", path.read_bytes(), st.st_mode & 0o777)
    return found


def tar_member(
    name: str,
    data: bytes = b"",
    *,
    type: bytes = tarfile.REGTYPE,
    linkname: str = "",
    mode: int = 0o644,
    size: int | None = None,
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = type
    info.linkname = linkname
    info.mode = mode
    info.size = len(data) if size is None else size
    return info, data


def make_tar_gz(path: Path, members: list[tuple[tarfile.TarInfo, bytes]], *, format: int = tarfile.PAX_FORMAT) -> Path:
    """Write a tar.gz with exactly these members, bypassing every safety check tarfile would apply."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=format) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    path.write_bytes(gzip.compress(raw.getvalue(), mtime=0))
    return path
