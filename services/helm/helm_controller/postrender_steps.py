"""The kustomize half of the post-renderer: each step a ``kustomize build`` over the previous output.

Where it sits: :mod:`helm_controller.postrender` (the plugin's entry) imports this only when a HelmRelease has
postRenderers or commonMetadata; the origin labels alone need no kustomize, and not importing asyncio and the
command runner keeps the plugin that every install and upgrade runs at about a third of its start-up CPU.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import orjson

from gitops_mesh import commands, kustomizecli
from helm_controller.post_renderers import INPUT_FILE, MAX_MANIFEST_BYTES, PostRenderFailed

#: How much of kustomize's complaint is kept.
DETAIL_CHARS: Final = 1000


async def kustomize_build(kustomize: str, directory: Path, *, deadline: float) -> bytes:
    """``kustomize build`` of ``directory`` as :mod:`gitops_mesh.kustomizecli` runs it, remote bases refused:
    the manifests helm rendered and the step's kustomization are all it may read."""
    timeout = deadline - time.time()
    if timeout <= 0:
        raise PostRenderFailed("post-render deadline passed before kustomize ran")
    home = directory / "home"
    home.mkdir(mode=0o700)
    try:
        return await kustomizecli.build(
            kustomize,
            directory,
            cwd=directory,
            home=home,
            timeout=timeout,
            max_output=MAX_MANIFEST_BYTES,
            no_remote_bases=True,
        )
    except commands.CommandTimeout:
        raise PostRenderFailed(f"kustomize timed out after {timeout:.0f}s") from None
    except commands.CommandNotStarted as e:
        raise PostRenderFailed(f"kustomize could not be run ({kustomize}): {e.strerror}") from None
    except commands.CommandFailed as e:
        detail = kustomizecli.trim_detail(e.stderr.decode(errors="replace"), directory, DETAIL_CHARS)
        raise PostRenderFailed(f"kustomize: {detail or f'exit status {e.returncode}'}") from None
    except commands.OutputTooLarge as e:
        raise PostRenderFailed(f"kustomize stopped: {e}") from None


async def run_steps(
    manifests: bytes, kustomizations: list[dict[str, Any]], *, kustomize: str, work: Path, deadline: float
) -> bytes:
    """Each kustomization over the previous output, in order."""
    for kustomization in kustomizations:
        step = Path(tempfile.mkdtemp(prefix="step-", dir=work))
        (step / INPUT_FILE).write_bytes(manifests)
        (step / "kustomization.yaml").write_bytes(orjson.dumps(kustomization))  # JSON is YAML
        manifests = await kustomize_build(kustomize, step, deadline=deadline)
    return manifests


def run(
    manifests: bytes, kustomizations: list[dict[str, Any]], *, kustomize: str, work: Path, deadline: float
) -> bytes:
    return asyncio.run(run_steps(manifests, kustomizations, kustomize=kustomize, work=work, deadline=deadline))
