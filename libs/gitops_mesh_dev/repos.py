"""Dev tooling: git repositories built with the git CLI, a bare repo plus a work tree; commits, branches, tags, pushes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

AUTHOR = "Test Author"
EMAIL = "author@example.com"


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A predictable environment for git run by tests and benchmarks: no user config, fixed identity."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_NAME": AUTHOR,
        "GIT_AUTHOR_EMAIL": EMAIL,
        "GIT_COMMITTER_NAME": AUTHOR,
        "GIT_COMMITTER_EMAIL": EMAIL,
        "GIT_TERMINAL_PROMPT": "0",
    }
    env.update(extra or {})
    return env


def git(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, input: str | None = None) -> str:
    """Run git and return its stdout; raise with stderr on failure."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=git_env(env), input=input, capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


@dataclass(frozen=True)
class Signer:
    """An OpenPGP key in a GNUPGHOME that git may sign with."""

    gnupghome: Path
    fingerprint: str

    def env(self) -> dict[str, str]:
        return {"GNUPGHOME": str(self.gnupghome)}


class Repo:
    """A bare repository ``<root>/<name>.git`` (what servers serve) and a work tree that pushes to it."""

    def __init__(self, root: Path, name: str, branch: str = "master") -> None:
        self.name = name
        self.bare = root / f"{name}.git"
        self.work = root / "_work" / name
        git("init", "-q", "--bare", f"--initial-branch={branch}", str(self.bare))
        self.work.mkdir(parents=True)
        git("init", "-q", f"--initial-branch={branch}", str(self.work))
        self._git("remote", "add", "origin", str(self.bare))

    def _git(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        return git(*args, cwd=self.work, env=env)

    def write(self, files: Mapping[str, str | bytes | None]) -> None:
        """Create, overwrite (text or bytes) or, with None, delete files of the work tree."""
        for rel, content in files.items():
            path = self.work / rel
            if content is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)

    def commit(
        self,
        files: Mapping[str, str | bytes | None] | None = None,
        message: str = "change",
        *,
        signer: Signer | None = None,
    ) -> str:
        """Write ``files``, commit everything (signed with ``signer`` if given), return the commit hash."""
        self.write(files or {})
        self._git("add", "-A")
        sign = ["-c", f"user.signingkey={signer.fingerprint}", "commit", "-S"] if signer else ["commit"]
        self._git(*sign, "-q", "--allow-empty", "-m", message, env=signer.env() if signer else None)
        return self.head()

    def head(self) -> str:
        return self._git("rev-parse", "HEAD")

    def branch(self, name: str, start: str = "HEAD") -> None:
        """Create branch ``name`` at ``start`` and switch to it."""
        self._git("checkout", "-q", "-b", name, start)

    def switch(self, name: str) -> None:
        self._git("checkout", "-q", name)

    def tag(self, name: str, *, message: str | None = None, signer: Signer | None = None, at: str = "HEAD") -> str:
        """A lightweight tag, or annotated with ``message``, or signed with ``signer``; returns the tag's target."""
        if signer:
            self._git("tag", "-u", signer.fingerprint, "-m", message or name, name, at, env=signer.env())
        elif message:
            self._git("tag", "-a", "-m", message, name, at)
        else:
            self._git("tag", name, at)
        return self._git("rev-parse", f"refs/tags/{name}")

    def update_ref(self, ref: str, commit: str) -> None:
        """Create an arbitrary ref (e.g. ``refs/pull/1/head``) directly in the bare repository."""
        git("update-ref", ref, commit, cwd=self.bare)

    def add_submodule(self, path: str, url: str, commit: str) -> None:
        """Record a submodule (gitlink + .gitmodules) without cloning it."""
        modules = self.work / ".gitmodules"
        existing = modules.read_text() if modules.exists() else ""
        modules.write_text(existing + f'[submodule "{path}"]\n\tpath = {path}\n\turl = {url}\n')
        self._git("add", ".gitmodules")
        self._git("update-index", "--add", "--cacheinfo", f"160000,{commit},{path}")
        # an empty directory is an unpopulated submodule; a missing one would read as its deletion
        (self.work / path).mkdir(parents=True, exist_ok=True)

    def push(self) -> None:
        """Push every branch and tag to the bare repository."""
        self._git("push", "-q", "--force", "origin", "--all")
        self._git("push", "-q", "--force", "origin", "--tags")
