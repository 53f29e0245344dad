"""Adapters layer, beside helmcli: running the real ``kustomize build`` on gitops_mesh.commands, locked down.

Used by kustomize-controller (a Kustomization's build) and helm-controller (post-renderers). Both run
kustomize with the root-only load restrictor and no plugins, Helm or exec functions (its defaults, spelled
out; Flux too disables all but the builtin plugins), and an environment that is the second line of
defence behind each caller's own checks of what a kustomization refers to:

* git (kustomize clones remote bases with it, submodules included) may only speak the protocols of
  :data:`GIT_PROTOCOLS` — ``https`` and ``ssh``, never ``file``, ``ext`` or plain ``git``/``http`` —
  and none at all without remote bases. Flux sets no such limit (its image has git and ssh), so a
  ``git::file:///`` base cloned any repository of its host; we refuse that in every mode.
* without remote bases, kustomize's HTTP client is pointed at a proxy that cannot be reached: a URL a
  caller's check missed fails instead of fetching (Go sends loopback addresses past any proxy, so the
  caller's check stays the guarantee for those).
* HOME, XDG_CONFIG_HOME and TMPDIR (where kustomize clones) are the caller's private directory, which it
  removes after the run, also when kustomize was killed; git reads no user or system config.

Errors are ``commands``' own (``CommandTimeout``, ``CommandNotStarted``, ``CommandFailed``,
``OutputTooLarge``): each caller words them for its object's status.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from gitops_mesh import commands

#: git's protocol allow-list for remote bases (GIT_ALLOW_PROTOCOL; submodules included).
GIT_PROTOCOLS: Final = "https:ssh"
#: Without remote bases: no protocol name git knows, so git refuses every transport.
NO_GIT_PROTOCOLS: Final = "none"
#: A proxy nothing listens on (port 0 cannot be connected to): an HTTP fetch fails at once.
UNREACHABLE_PROXY: Final = "http://127.0.0.1:0"


def kustomize_env(home: Path, *, no_remote_bases: bool) -> dict[str, str]:
    """Only what kustomize needs: PATH (git, for remote bases), a private HOME and TMPDIR, proxies."""
    env = commands.program_env(home)
    if no_remote_bases:
        # NO_PROXY would let a listed host past the unreachable proxy.
        for name in commands.PROXY_VARIABLES:
            env.pop(name, None)
        env |= dict.fromkeys(("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"), UNREACHABLE_PROXY)
    # git asks no questions, reads no user or system config and speaks only the allowed protocols.
    return env | {
        "XDG_CONFIG_HOME": str(home),
        "TMPDIR": str(home),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ALLOW_PROTOCOL": NO_GIT_PROTOCOLS if no_remote_bases else GIT_PROTOCOLS,
    }


def build_argv(kustomize: Path | str, directory: Path) -> list[str]:
    """``kustomize build`` of ``directory``: root-only loading, no Helm, no plugins, no exec functions."""
    return [
        str(kustomize),
        "build",
        "--load-restrictor",
        "LoadRestrictionsRootOnly",
        "--enable-helm=false",
        "--enable-alpha-plugins=false",
        "--enable-exec=false",
        str(directory),
    ]


async def build(
    kustomize: Path | str,
    directory: Path,
    *,
    cwd: Path,
    home: Path,
    timeout: float,
    max_output: int,
    no_remote_bases: bool,
) -> bytes:
    """kustomize's output for ``directory``, run in ``cwd`` with ``home`` as its private directory.

    kustomize printing more than ``max_output`` is killed (its process group), as on timeout or cancel."""
    argv = build_argv(kustomize, directory)
    env = kustomize_env(home, no_remote_bases=no_remote_bases)
    done = await commands.run(argv, env=env, timeout=timeout, cwd=cwd, max_output=max_output)
    return done.stdout


def trim_detail(stderr: str, root: Path, limit: int) -> str:
    """kustomize's complaint on one line of at most ``limit`` characters, ``root``'s paths made relative
    (the work directory is ours and random: the object's author knows the paths of their own tree)."""
    text = stderr.replace(str(root) + "/", "").replace(str(root), ".")
    lines = (line.strip().removeprefix("Error: ") for line in text.splitlines())
    return commands.one_line("\n".join(lines), limit, keep="first")
