"""A fetched commit straight into an artifact: `git archive` streamed through the packer, no checkout.

Writing a checkout (and reading it back to pack it) is most of the cost of a big repository; the objects
fetched with ``checkout(..., worktree=False)`` already hold every file, so the tree is streamed out of
them and repacked with the artifact conventions. .sourceignore files are read from the commit itself.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from gitops_mesh.artifacts.archive import PackResult, pack_tar_stream
from source_controller.git.errors import GitOperationFailed
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


def _git(repo: Path, args: list[str], env: Mapping[str, str], timeout: float) -> bytes:
    done = subprocess.run(["git", *args], cwd=repo, env=dict(env), capture_output=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise GitOperationFailed(
            f"git {args[0]} of the fetched commit failed: {done.stderr.decode(errors='replace').strip()}"
        )
    return done.stdout


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


def pack_commit(repo: Path, commit: str, dest: Path, keep: IgnoreFilter, timeout: float = 600.0) -> PackResult:
    """Stream ``git archive <commit>`` through the artifact packer into ``dest`` (blocking)."""
    with tempfile.TemporaryDirectory(prefix="git-home-") as home:
        proc = subprocess.Popen(
            ["git", "archive", "--format=tar", commit],
            cwd=repo,
            env=_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdout is not None  # a pipe
        assert proc.stderr is not None  # a pipe
        try:
            result = pack_tar_stream(proc.stdout, dest, include=keep)
        finally:
            proc.stdout.close()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            err = proc.stderr.read().decode(errors="replace").strip()
            proc.stderr.close()
        if proc.returncode != 0:
            dest.unlink(missing_ok=True)
            raise GitOperationFailed(f"git archive of the fetched commit failed: {err}")
        return result
