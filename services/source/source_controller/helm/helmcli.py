"""Running the real helm binary: a private HOME per call, a deadline, the process group killed on timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

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
        lines = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()]
        text = "; ".join(lines) or self.stdout.strip() or f"exit status {self.returncode}"
        return text if len(text) <= DETAIL_CHARS else "…" + text[-DETAIL_CHARS:]


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def helm_env(home: Path) -> dict[str, str]:
    """Only what helm needs: its XDG-style homes under ``home``, so no user's repositories or plugins leak in."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "HELM_REPOSITORY_CONFIG": str(home / "config" / "repositories.yaml"),
        "HELM_REPOSITORY_CACHE": str(home / "cache" / "repository"),
        "HELM_PLUGINS": str(home / "plugins"),
        "KUBECONFIG": os.devnull,
    }
    for key in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def make_home(tmp_dir: Path | None = None) -> Path:
    """A fresh private directory to be helm's home for one build (the caller removes it)."""
    home = Path(tempfile.mkdtemp(prefix="helm-home-", dir=tmp_dir))
    for sub in ("cache/repository", "config", "data", "plugins"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    return home


async def run_helm(
    helm: Path | str,
    args: Sequence[str],
    *,
    home: Path,
    timeout: float,
    cwd: Path | None = None,
    on_timeout: Callable[[str], TransientError],
) -> HelmResult:
    """Run ``helm args...``; a timeout or cancellation kills its whole process group."""
    proc = await asyncio.create_subprocess_exec(
        str(helm),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=helm_env(home),
        cwd=cwd,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await proc.communicate()
    except TimeoutError:
        _kill_group(proc)
        await proc.wait()
        raise on_timeout(f"helm {args[0]} timed out after {timeout:g}s") from None
    except BaseException:
        _kill_group(proc)
        with contextlib.suppress(ProcessLookupError):
            await proc.wait()
        raise
    return HelmResult(
        proc.returncode if proc.returncode is not None else -1,
        stdout.decode(errors="replace"),
        stderr.decode(errors="replace"),
    )
