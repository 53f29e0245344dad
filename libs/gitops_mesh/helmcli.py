"""Adapters layer, beside kube: running the real helm binary on gitops_mesh.commands, a private HOME, a deadline."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gitops_mesh import commands
from gitops_mesh.errors import TransientError

#: helm dependency build / package of a big chart with remote dependencies.
DEFAULT_HELM_TIMEOUT: Final = 300.0
#: How much of helm's stderr an error quotes.
DETAIL_CHARS: Final = 600


@dataclass(frozen=True, slots=True)
class HelmResult:
    returncode: int
    stdout: str
    stderr: str

    def detail(self) -> str:
        """helm's complaint, one line, bounded (helm prints "Error: ..." last)."""
        return (
            commands.one_line(self.stderr, DETAIL_CHARS)
            or commands.one_line(self.stdout, DETAIL_CHARS)
            or f"exit status {self.returncode}"
        )


def helm_env(home: Path, *, kube_cache: Path | None = None) -> dict[str, str]:
    """Only what helm needs: its XDG-style homes under ``home``, so no user's repositories or plugins leak in.

    ``kube_cache``: client-go's discovery and HTTP cache (KUBECACHEDIR) shared by the calls of one process; without
    it each call fetches discovery again and writes a hundred cache files into its own home.
    """
    env = commands.program_env(home) | {
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "HELM_REPOSITORY_CONFIG": str(home / "config" / "repositories.yaml"),
        "HELM_REPOSITORY_CACHE": str(home / "cache" / "repository"),
        "HELM_PLUGINS": str(home / "plugins"),
        "KUBECONFIG": os.devnull,
    }
    if kube_cache is not None:
        env["KUBECACHEDIR"] = str(kube_cache)
    return env


async def run_helm(
    helm: Path | str,
    args: Sequence[str],
    *,
    home: Path,
    timeout: float,
    cwd: Path | None = None,
    on_stopped: Callable[[str], TransientError],
    kube_cache: Path | None = None,
) -> HelmResult:
    """Run ``helm args...`` to its end, whatever its exit status; the caller judges that.

    A timeout (or cancellation) kills helm's whole process group. Helm stopped before its end — timed out,
    not startable, printing without end — is reported as ``on_stopped``'s error (the caller's reason).
    """
    try:
        done = await commands.run(
            [str(helm), *args], env=helm_env(home, kube_cache=kube_cache), timeout=timeout, cwd=cwd, check=False
        )
    except commands.CommandTimeout:
        raise on_stopped(f"helm {args[0]} timed out after {timeout:g}s") from None
    except commands.CommandError as e:
        raise on_stopped(f"helm {args[0]}: {e}") from None
    return HelmResult(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))
