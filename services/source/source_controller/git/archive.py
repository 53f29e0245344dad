"""A fetched commit straight into an artifact: `git archive` streamed through the packer, no checkout.

Writing a checkout (and reading it back to pack it) is most of the cost of a big repository; the objects
fetched with ``checkout(..., worktree=False)`` already hold every file, so the tree is streamed out of
them and repacked with the artifact conventions. .sourceignore files are read from the commit itself.
The commit's .gitattributes are neutralised first (:mod:`.attributes`): the artifact holds the tree as
committed, the same as the checked-out route packs.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from gitops_mesh import commands
from gitops_mesh.artifacts.archive import Include, PackResult, PackStopped, Stop, pack_tar_stream
from source_controller.git import attributes
from source_controller.git.errors import GitOperationFailed, GitTimeout
from source_controller.git.ignore import IGNORE_FILE, IgnoreFilter, filter_from_files


def _env(home: str) -> dict[str, str]:
    # Local object reads only: no credentials, no user or system configuration.
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
    }


@contextmanager
def _git_errors(what: str) -> Iterator[None]:
    """A stopped or failed ``git`` command as the git adapter's errors, ``what`` naming it."""
    try:
        yield
    except commands.CommandTimeout as e:
        raise GitTimeout(f"{what} timed out after {e.timeout:g}s") from None
    except commands.CommandFailed as e:
        # one line, bounded, URL userinfo redacted: git's stderr goes into status and events
        raise GitOperationFailed(f"{what} failed: {commands.one_line(e.stderr.decode(errors='replace'))}") from None
    except commands.CommandError as e:
        raise GitOperationFailed(f"{what} failed: {e}") from None


def _git(repo: Path, args: list[str], env: Mapping[str, str], timeout: float) -> bytes:
    with (
        _git_errors(f"git {args[0]} of the fetched commit"),
        commands.stream(["git", *args], env=env, timeout=timeout, cwd=repo) as out,
    ):
        return out.read()


def sourceignore_filter(repo: Path, commit: str, spec_ignore: str | None, timeout: float = 60.0) -> IgnoreFilter:
    """The artifact filter from the commit's .sourceignore files and spec.ignore (blocking)."""
    with tempfile.TemporaryDirectory(prefix="git-home-") as home:
        env = _env(home)
        listing = _git(repo, ["ls-tree", "-r", "-z", "--name-only", commit], env, timeout)
        paths = [p.decode() for p in listing.split(b"\0") if p and p.rsplit(b"/", 1)[-1] == IGNORE_FILE.encode()]
        files = {
            p: _git(repo, ["cat-file", "blob", f"{commit}:{p}"], env, timeout).decode(errors="replace") for p in paths
        }
    return filter_from_files(files, spec_ignore)


def pack_commit(
    repo: Path,
    commit: str,
    dest: Path,
    keep: Include,
    timeout: float = 600.0,
    *,
    cancelled: threading.Event | None = None,
) -> PackResult:
    """Stream ``git archive <commit>`` through the artifact packer into ``dest`` (blocking, within ``timeout``).

    The deadline stops git and the packer's loop alike: ``keep`` (tenant patterns) runs once per path, and
    is not called again once the time is up; setting ``cancelled`` (a cancelled reconcile) stops it too.
    """
    argv = ["git", "archive", "--format=tar", commit]
    what = "git archive of the fetched commit"
    stop = Stop(timeout, cancelled=cancelled)
    attributes.neutralise(repo)
    with tempfile.TemporaryDirectory(prefix="git-home-") as home, _git_errors(what):
        try:
            # No output cap: the packer keeps nothing in memory, and the fetch had the repository size limit.
            with commands.stream(argv, env=_env(home), timeout=timeout, cwd=repo, max_output=None) as out:
                return pack_tar_stream(out, dest, include=keep, stop=stop)
        except commands.CommandError:
            dest.unlink(missing_ok=True)  # the packer finished, then git failed: not this commit's tree
            raise
        except PackStopped as e:
            if e.timed_out:
                raise GitTimeout(f"{what} timed out after {timeout:g}s") from None
            raise
