"""Talking to a remote with the git CLI: resolve spec.ref cheaply (ls-remote), shallow-fetch and check out."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gitops_mesh.errors import InvalidSpec
from source_controller.git.auth import GitAuth, GitEnv, git_environment
from source_controller.git.errors import RefNotFound, RepositoryTooLarge, SparseCheckoutMissing
from source_controller.git.gitcli import Deadline, GitResult, classify, run
from source_controller.git.objects import Signature, TagObject, parse_commit, parse_tag
from source_controller.git.refs import (
    GitRef,
    RefChoice,
    RefKind,
    Resolved,
    choose,
    ls_remote_patterns,
    not_found_message,
    parse_ls_remote,
    revision_for,
    select,
)

DEFAULT_TIMEOUT = 60.0
#: Default cap on fetched objects and on the checked-out tree.
DEFAULT_MAX_SIZE = 1 << 30
#: How often the size of a running fetch is checked.
SIZE_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Commit:
    """The checked-out commit: what the artifact is built from and what status and events report."""

    hash: str
    revision: str
    #: the full ref it came through (``refs/heads/main``), None for a bare commit
    ref_name: str | None
    message: str
    author: Signature
    committer: Signature
    #: the armored signature of the commit, when signed
    signature: str | None
    #: the annotated tag the ref pointed at, for tag / semver / ``refs/tags/…`` refs
    tag: TagObject | None = None
    #: the lightweight tag name, when the tag ref pointed straight at the commit
    tag_name: str | None = None


def _format_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def tree_size(path: Path) -> int:
    """Bytes in regular files under ``path`` (symlinks not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:  # a temp pack renamed while we look
                continue
            total += st.st_size
    return total


def _size_monitor(path: Path, limit: int, url: str) -> Callable[[], Awaitable[None]]:
    async def watch() -> None:
        while True:
            await asyncio.sleep(SIZE_POLL_SECONDS)
            size = await asyncio.to_thread(tree_size, path)
            if size > limit:
                raise RepositoryTooLarge(
                    f"{url} is larger than the size limit of {_format_size(limit)} (over {_format_size(size)} "
                    "fetched); use spec.sparseCheckout or a smaller repository, or raise the limit"
                )

    return watch


async def _git(
    genv: GitEnv,
    args: Sequence[str],
    *,
    deadline: Deadline,
    action: str,
    cwd: Path | None = None,
    monitor: Callable[[], Awaitable[None]] | None = None,
) -> GitResult:
    done = await run(
        ["git", *args],
        env=genv.env,
        timeout=deadline.remaining(),
        scrub=genv.scrub,
        cwd=cwd,
        monitor=monitor,
        timeout_message=f"{action} {genv.url} timed out after {deadline.seconds:g}s (spec.timeout)",
    )
    if done.returncode != 0:
        raise classify(done.stderr, url=genv.url, action=action, has_credentials=genv.has_credentials)
    return done


async def _ls_remote(genv: GitEnv, choice: RefChoice, deadline: Deadline) -> Resolved:
    patterns = ls_remote_patterns(choice)
    done = await _git(genv, ["ls-remote", "--", genv.url, *patterns], deadline=deadline, action="listing refs of")
    return select(choice, parse_ls_remote(done.stdout.decode(errors="replace")), url=genv.url)


async def resolve(
    url: str, ref: GitRef | None = None, auth: GitAuth | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Resolved:
    """Where spec.ref points now, without fetching: one ``git ls-remote`` (none for a commit ref).

    The caller compares ``revision`` with the stored artifact's and skips ``checkout`` when they are equal.
    """
    choice = choose(ref)
    with git_environment(url, auth, connect_timeout=timeout) as genv:
        if choice.kind is RefKind.COMMIT:
            return select(choice, {}, url=genv.url)
        return await _ls_remote(genv, choice, Deadline(timeout))


def sparse_directories(directories: Sequence[str]) -> tuple[str, ...]:
    """spec.sparseCheckout as paths inside the repository, or InvalidSpec before anything is touched.

    A leading ``/`` or ``./`` means the repository's root, as in Flux (which resolves each entry with
    securejoin inside the checkout). A ``..`` component is refused: nothing outside the repository can be
    asked for, and whether such a path "exists" must not depend on the controller's own file system.
    """
    paths = []
    for directory in directories:
        parts = [p for p in directory.split("/") if p not in ("", ".")]
        if ".." in parts or "\0" in directory or not parts:
            why = "'..' is not allowed" if ".." in parts else "not a directory of the repository"
            raise InvalidSpec(f"spec.sparseCheckout: invalid directory {directory!r}: {why}")
        paths.append("/".join(parts))
    return tuple(paths)


def _sparse_pattern(path: str) -> str:
    escaped = "".join("\\" + c if c in "\\*?[]!# " else c for c in path)
    return f"/{escaped}/"


async def checkout(
    url: str,
    ref: GitRef | None,
    auth: GitAuth | None,
    dest: Path,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    recurse_submodules: bool = False,
    sparse: Sequence[str] = (),
    max_size: int = DEFAULT_MAX_SIZE,
    resolved: Resolved | None = None,
    worktree: bool = True,
) -> Commit:
    """Fetch exactly the commit spec.ref points at (``--depth 1``, that ref only, ``--no-tags``) into ``dest``.

    With ``worktree=False`` only the objects are fetched (no files written; see :mod:`.archive`), which
    sparse checkout and submodules cannot use.

    ``dest`` must be missing or empty. ``resolved`` (from ``resolve``) saves the second listing for semver.
    The fetch is aborted when the objects grow past ``max_size`` bytes, the checkout is refused when the
    commit's tree (within ``sparse``) is larger; every command shares ``timeout``.
    """
    choice = choose(ref)
    paths = sparse_directories(sparse)
    deadline = Deadline(timeout)
    _prepare_dest(dest)
    with git_environment(url, auth, connect_timeout=timeout) as genv:
        await _git(genv, ["init", "-q", str(dest)], deadline=deadline, action="initialising a repository for")
        fetch_ref = choice.full_name
        if choice.kind is RefKind.SEMVER:
            fetch_ref = (resolved or await _ls_remote(genv, choice, deadline)).ref_name
        elif choice.kind is RefKind.COMMIT:
            fetch_ref = choice.value
        assert fetch_ref is not None
        monitor = _size_monitor(dest / ".git", max_size, genv.url)
        fetch = ["fetch", "--quiet", "--no-tags", "--recurse-submodules=no", "--depth=1", "--", genv.url]
        try:
            await _git(genv, [*fetch, fetch_ref], deadline=deadline, action="fetching", cwd=dest, monitor=monitor)
        except RefNotFound as e:
            if choice.kind is not RefKind.COMMIT or not choice.branch:
                raise RefNotFound(not_found_message(choice, genv.url)) from e
            # the server refuses wants by hash: fetch the branch's history and look for the commit in it
            unshallow = [a for a in fetch if a != "--depth=1"]
            await _git(
                genv,
                [*unshallow, f"refs/heads/{choice.branch}"],
                deadline=deadline,
                action="fetching",
                cwd=dest,
                monitor=monitor,
            )
        commit_hash, target = await _fetched(genv, dest, choice, deadline)
        tag, tag_name = await _tag_of(genv, dest, choice, fetch_ref, commit_hash, target, deadline)
        listed = await _check_tree_size(genv, dest, commit_hash, paths, max_size, deadline)
        # From the commit's tree, not the checkout: a symlink checked out under one directory must not make
        # "exists" a question about the controller's file system (Flux resolves with securejoin).
        missing = [d for d, p in zip(sparse, paths, strict=True) if not _in_tree(p, listed)]
        if missing:
            raise SparseCheckoutMissing(
                f"sparse checkout dir '{missing[0]}' does not exist in commit {commit_hash} of {genv.url}"
            )
        if not worktree and (sparse or recurse_submodules):
            raise ValueError("sparse checkout and submodules need a work tree")
        if paths:
            patterns = [_sparse_pattern(p) for p in paths]
            await _git(
                genv,
                ["sparse-checkout", "set", "--no-cone", "--", *patterns],
                deadline=deadline,
                action="configuring sparse checkout for",
                cwd=dest,
            )
        if worktree:
            await _git(
                genv,
                ["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit_hash],
                deadline=deadline,
                action="checking out",
                cwd=dest,
            )
        if recurse_submodules:
            await _git(
                genv,
                ["submodule", "update", "--init", "--recursive", "--depth", "1", "--quiet"],
                deadline=deadline,
                action="fetching submodules of",
                cwd=dest,
                monitor=_size_monitor(dest, max_size, genv.url),
            )
        raw = await _git(genv, ["cat-file", "commit", commit_hash], deadline=deadline, action="reading", cwd=dest)
        parsed = parse_commit(raw.stdout.decode(errors="replace"))
    ref_name = fetch_ref if choice.kind is not RefKind.COMMIT else choice.full_name
    return Commit(
        hash=commit_hash,
        revision=revision_for(choice, ref_name, commit_hash),
        ref_name=ref_name,
        message=parsed.message,
        author=parsed.author,
        committer=parsed.committer,
        signature=parsed.signature,
        tag=tag,
        tag_name=tag_name,
    )


def _prepare_dest(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise ValueError(f"checkout destination {dest} is not empty")


def _in_tree(path: str, listed: Sequence[str]) -> bool:
    """Whether the commit holds ``path`` or anything under it (``listed``: ls-tree -r limited to the paths)."""
    return any(name == path or name.startswith(path + "/") for name in listed)


async def _rev_parse(genv: GitEnv, dest: Path, spec: str, deadline: Deadline) -> str | None:
    done = await run(
        ["git", "rev-parse", "--verify", "--quiet", spec],
        env=genv.env,
        timeout=deadline.remaining(),
        scrub=genv.scrub,
        cwd=dest,
    )
    return done.stdout.decode().strip() if done.returncode == 0 else None


async def _fetched(genv: GitEnv, dest: Path, choice: RefChoice, deadline: Deadline) -> tuple[str, str]:
    """The commit and the object the fetched ref pointed at."""
    if choice.kind is RefKind.COMMIT:
        commit = await _rev_parse(genv, dest, f"{choice.value}^{{commit}}", deadline)
        if commit is None:
            raise RefNotFound(not_found_message(choice, genv.url))
        return commit, commit
    target = await _rev_parse(genv, dest, "FETCH_HEAD", deadline)
    commit = await _rev_parse(genv, dest, "FETCH_HEAD^{commit}", deadline)
    if target is None or commit is None:
        raise RefNotFound(not_found_message(choice, genv.url))
    return commit, target


async def _tag_of(
    genv: GitEnv, dest: Path, choice: RefChoice, fetch_ref: str, commit: str, target: str, deadline: Deadline
) -> tuple[TagObject | None, str | None]:
    if not fetch_ref.startswith("refs/tags/"):
        return None, None
    name = fetch_ref.removeprefix("refs/tags/")
    if target == commit:
        return None, name
    raw = await _git(genv, ["cat-file", "tag", target], deadline=deadline, action="reading tag of", cwd=dest)
    return parse_tag(raw.stdout.decode(errors="replace"), target), name


async def _check_tree_size(
    genv: GitEnv, dest: Path, commit: str, sparse: Sequence[str], limit: int, deadline: Deadline
) -> list[str]:
    """Refuse a checkout whose files would exceed the limit, before writing them (compressible blobs).

    Returns the paths listed (every entry of the tree, or of the ``sparse`` directories).
    """
    paths = ["--", *sparse] if sparse else []
    # literal pathspecs: a sparse directory named ':(glob)**' or '*' is that name, not a pattern
    done = await _git(
        genv,
        ["--literal-pathspecs", "ls-tree", "-r", "-l", "-z", commit, *paths],
        deadline=deadline,
        action="listing the tree of",
        cwd=dest,
    )
    total = 0
    listed: list[str] = []
    for entry in done.stdout.split(b"\0"):
        meta, tab, name = entry.partition(b"\t")
        if tab and sparse:  # only then needed: a whole monorepo's names are not worth keeping
            listed.append(name.decode(errors="surrogateescape"))
        fields = meta.split(None, 4)
        if len(fields) >= 4 and fields[1] == b"blob" and fields[3].isdigit():
            total += int(fields[3])
            if total > limit:
                raise RepositoryTooLarge(
                    f"commit {commit} of {genv.url} checks out to more than the size limit of "
                    f"{_format_size(limit)}; use spec.sparseCheckout or a smaller repository, or raise the limit"
                )
    return listed
