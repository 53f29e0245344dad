"""Step 2 of a build: the real ``kustomize build`` on the work tree, its output parsed into objects.

kustomize runs with the root-only load restrictor and no plugins (its default); Flux runs kustomize as a
library with LoadRestrictionsNone over a file system confined to the artifact, which lets an overlay
load a file (not only a base directory) from outside its own directory. The CLI cannot confine itself
that way, so root-only is the safe choice: such overlays fail here with kustomize's "is not in or below"
message. References leaving the artifact and remote bases are checked first (:mod:`.graph`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from kustomize_controller.build import manifests
from kustomize_controller.build.errors import KustomizeFailed
from kustomize_controller.build.workdir import relative

#: How much of kustomize's stderr a message quotes.
DETAIL_CHARS: Final = 2000


@dataclass(frozen=True, slots=True)
class ProcessResult:
    returncode: int
    stdout: bytes
    stderr: bytes


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def run_process(
    argv: Sequence[str], *, env: dict[str, str], timeout: float, stdin: bytes | None = None, cwd: Path | None = None
) -> ProcessResult:
    """Run ``argv`` in its own process group; a timeout (TimeoutError) or cancellation kills the whole group."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await proc.communicate(stdin)
    except BaseException:
        _kill_group(proc)
        with contextlib.suppress(ProcessLookupError):
            await proc.wait()
        raise
    return ProcessResult(proc.returncode if proc.returncode is not None else -1, stdout, stderr)


def kustomize_env(home: Path) -> dict[str, str]:
    """Only what kustomize needs: PATH (git, for remote bases), a private HOME, proxies."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "XDG_CONFIG_HOME": str(home)}
    for key in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        if key in os.environ:
            env[key] = os.environ[key]
    # git asks no questions and reads no user or system config when fetching remote bases.
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull})
    return env


def trim_detail(stderr: str, root: Path) -> str:
    """kustomize's complaint on one line, bounded, with the work tree's paths made artifact-relative."""
    text = stderr.replace(str(root) + "/", "").replace(str(root), ".")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = "; ".join(line.removeprefix("Error: ") for line in lines)
    return detail if len(detail) <= DETAIL_CHARS else detail[:DETAIL_CHARS] + "…"


async def kustomize_build(kustomize: Path | str, root: Path, directory: Path, *, timeout: float) -> bytes:
    """``kustomize build --load-restrictor LoadRestrictionsRootOnly directory``: its stdout, or KustomizeFailed."""
    where = relative(root, directory)
    with tempfile.TemporaryDirectory(prefix="kustomize-home-") as home:
        argv = [str(kustomize), "build", "--load-restrictor", "LoadRestrictionsRootOnly", str(directory)]
        try:
            result = await run_process(argv, env=kustomize_env(Path(home)), timeout=timeout, cwd=root)
        except TimeoutError:
            raise KustomizeFailed(f"kustomize build of '{where}' timed out after {timeout:g}s") from None
        except OSError as e:
            raise KustomizeFailed(f"kustomize could not be run ({kustomize}): {e.strerror or e}") from e
    if result.returncode != 0:
        detail = trim_detail(result.stderr.decode(errors="replace"), root) or f"exit status {result.returncode}"
        raise KustomizeFailed(f"kustomize build failed for '{where}': {detail}")
    return result.stdout


def parse_objects(output: bytes | str) -> list[dict[str, Any]]:
    """kustomize's multi-document output as objects, each checked for apiVersion, kind and metadata.name."""
    try:
        documents = list(manifests.load_all(output))
    except yaml.YAMLError as e:
        raise KustomizeFailed(f"kustomize output is not YAML: {manifests.yaml_problem(e)}") from e
    objects: list[dict[str, Any]] = []
    for doc in documents:
        if doc is None:
            continue
        if not isinstance(doc, dict) or not _identified(doc):
            raise KustomizeFailed(f"failed to decode Kubernetes apiVersion, kind and name from: {_snippet(doc)}")
        objects.append(doc)
    return objects


def _identified(obj: dict[str, Any]) -> bool:
    metadata = obj.get("metadata")
    return (
        isinstance(obj.get("apiVersion"), str)
        and bool(obj["apiVersion"])
        and isinstance(obj.get("kind"), str)
        and bool(obj["kind"])
        and isinstance(metadata, dict)
        and isinstance(metadata.get("name"), str)
        and bool(metadata["name"])
    )


def _snippet(doc: Any) -> str:
    text = manifests.dump(doc).strip().replace("\n", " ")
    return text if len(text) <= 200 else text[:200] + "…"
