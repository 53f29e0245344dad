"""The build's private copy of a shared source tree: files hard-linked (or copied), writes always replace."""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import shutil
import stat
import tempfile
from pathlib import Path

from kustomize_controller.build.errors import PathNotFound

#: kustomize's konfig.RecognizedKustomizationFileNames, in its order.
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

#: link(2) failures that mean "copy instead", not "the tree is broken".
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES}


def secure_join(root: Path, path: str) -> Path:
    """``path`` inside ``root`` the way filepath-securejoin clamps it: ``..`` never climbs above the root.

    Absolute paths are taken as relative to the root, as Flux does with spec.path.
    """
    # normpath of an absolute path drops every ".." that would climb above "/" (it may keep a leading "//").
    clean = posixpath.normpath("/" + path.replace("\\", "/"))
    parts = [p for p in clean.split("/") if p]
    return root.joinpath(*parts) if parts else root


def relative(root: Path, path: Path) -> str:
    """``path`` as the artifact-relative name users see in messages (``.`` for the root)."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return str(path)
    return rel.as_posix() if rel.parts else "."


def find_kustomization(directory: Path) -> Path | None:
    """The kustomization file of ``directory``, in kustomize's order of names, if it has one."""
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file() and not candidate.is_symlink():
            return candidate
    return None


class UnsafeDirectory(Exception):
    """A directory meant for this process's private data is not private (another user could swap its trees)."""


def private_directory(configured: str, *, prefix: str) -> Path:
    """A directory only this user can enter, resolved: a fresh ``mkdtemp`` (0700) when ``configured`` is empty.

    A configured path is created 0700, or, when it exists, must be a real directory (not a symlink)
    owned by this process's user with no group or other access; UnsafeDirectory says why not. A fixed
    shared path (``/tmp/kustomize-controller``) let another local user create it first and swap unpacked
    trees after their digests were checked.
    """
    if not configured:
        return Path(tempfile.mkdtemp(prefix=prefix)).resolve()
    path = Path(configured)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # an existing one is checked below like a new one
        path.mkdir(mode=0o700)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeDirectory(f"{configured} is a symbolic link, not a directory of our own")
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeDirectory(f"{configured} is not a directory")
    if info.st_uid != os.geteuid():
        raise UnsafeDirectory(f"{configured} is owned by uid {info.st_uid}, not by this process's uid {os.geteuid()}")
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise UnsafeDirectory(f"{configured} is open to group or others (mode {mode:04o}); make it 0700")
    return path.resolve()


def make_workdir(parent: Path | None = None) -> Path:
    """A fresh private directory for one build (the caller removes it); resolved, so kustomize's paths match it."""
    return Path(tempfile.mkdtemp(prefix="kustomization-", dir=parent)).resolve()


def materialize(tree: Path, dest: Path) -> None:
    """Give ``dest`` every directory and regular file of ``tree``, as hard links where the filesystem allows.

    The tree is shared by every build of its revision and must never change: a hard link shares the
    inode, so nothing may write through one. Every write into ``dest`` goes through :func:`replace_file`,
    which swaps in a new inode. Symlinks are not followed or reproduced (artifacts carry none).
    """
    linking = True
    for current, dirs, files in os.walk(tree):
        src_dir = Path(current)
        dst_dir = dest / src_dir.relative_to(tree)
        dst_dir.mkdir(mode=0o750, exist_ok=True)
        dirs[:] = [d for d in dirs if not (src_dir / d).is_symlink()]
        for name in files:
            src = src_dir / name
            if src.is_symlink() or not src.is_file():
                continue
            dst = dst_dir / name
            if linking:
                try:
                    os.link(src, dst)
                    continue
                except OSError as e:
                    if e.errno not in _NO_LINK:
                        raise
                    linking = False
            shutil.copy2(src, dst)


def replace_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``path`` as a new inode (never through a hard link into the shared tree)."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_dir(root: Path, spec_path: str) -> Path:
    """The directory spec.path names inside ``root``; PathNotFound unless it is a directory."""
    directory = secure_join(root, spec_path or "")
    if not directory.is_dir():
        raise PathNotFound(f"kustomization path not found: '{relative(root, directory)}' is not a directory")
    return directory
