"""The post-renderer helm runs (``python -P -m helm_controller.postrender``): kustomize over the rendered manifests.

Where it sits: helm 4 starts this as the command of our postrenderer/v1 plugin (written per call by
:mod:`.actions` from :mod:`.post_renderers`), with the rendered manifests on stdin and HELM_PLUGIN_DIR
naming the plugin's private directory. It reads ``request.json`` there, runs the real kustomize once per
step — each a fresh directory holding the previous output as its only resource and the step's
kustomization — and prints the result. Helm keeps a plugin's stderr to itself, so a failure is also
written to ``error.txt`` for the controller to quote.

Why a module of the controller run by its own interpreter (not a console script): helm passes its
environment on, whose PATH need not find our scripts; ``sys.executable`` always has our packages.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import orjson
import yaml

from gitops_mesh import commands, kustomizecli, tenant_yaml
from helm_controller.post_renderers import (
    ERROR_FILE,
    INPUT_FILE,
    MAX_MANIFEST_BYTES,
    REQUEST_FILE,
    Strategy,
)

#: How much of kustomize's complaint is kept.
DETAIL_CHARS: Final = 1000
HOOK_ANNOTATION: Final = "helm.sh/hook"
_SEPARATOR: Final = re.compile(rb"^---[ \t]*\r?$", re.MULTILINE)


class PostRenderFailed(Exception):
    """kustomize refused, timed out or printed too much; the message is for the HelmRelease's status."""


def split_documents(stream: bytes) -> list[bytes]:
    """The YAML documents of ``stream`` as written (``---`` lines apart), empty ones dropped."""
    return [doc for doc in _SEPARATOR.split(stream) if doc.strip()]


def is_hook(document: bytes) -> bool:
    """A document helm treats as a hook: it carries the ``helm.sh/hook`` annotation."""
    obj = tenant_yaml.load(document, what="a rendered manifest")
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return isinstance(annotations, dict) and HOOK_ANNOTATION in annotations


def join_documents(documents: list[bytes]) -> bytes:
    return b"\n---\n".join(doc.strip(b"\n") for doc in documents) + b"\n"


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


async def render(manifests: bytes, request: dict[str, Any], *, work: Path) -> bytes:
    """The post-rendered manifests under the request's strategy (see :mod:`.post_renderers`)."""
    kustomize = str(request["kustomize"])
    kustomizations = list(request["kustomizations"])
    deadline = float(request["deadline"])
    strategy = Strategy(request.get("strategy") or Strategy.COMBINED)
    if strategy is Strategy.COMBINED:
        return await run_steps(manifests, kustomizations, kustomize=kustomize, work=work, deadline=deadline)
    try:
        documents = [(doc, is_hook(doc)) for doc in split_documents(manifests)]
    except yaml.YAMLError as e:
        raise PostRenderFailed(f"rendered manifests: {tenant_yaml.problem(e)}") from None
    hooks = [doc for doc, hook in documents if hook]
    templates = [doc for doc, hook in documents if not hook]
    out = []
    if templates:
        out.append(
            await run_steps(
                join_documents(templates), kustomizations, kustomize=kustomize, work=work, deadline=deadline
            )
        )
    if hooks and strategy is Strategy.SEPARATE:
        out.append(
            await run_steps(join_documents(hooks), kustomizations, kustomize=kustomize, work=work, deadline=deadline)
        )
    elif hooks:
        out.append(join_documents(hooks))  # nohooks: hooks go back to helm as they came
    return join_documents(out)


def read_manifests() -> bytes:
    manifests = sys.stdin.buffer.read(MAX_MANIFEST_BYTES + 1)
    if len(manifests) > MAX_MANIFEST_BYTES:
        raise PostRenderFailed(f"rendered manifests are larger than {MAX_MANIFEST_BYTES} bytes")
    return manifests


def main() -> int:
    plugin_dir = Path(os.environ["HELM_PLUGIN_DIR"])
    try:
        request = orjson.loads((plugin_dir / REQUEST_FILE).read_bytes())
        manifests = read_manifests()
        work = Path(tempfile.mkdtemp(prefix="run-", dir=plugin_dir))
        out = asyncio.run(render(manifests, request, work=work))
    except PostRenderFailed as e:
        (plugin_dir / ERROR_FILE).write_text(str(e))
        print(e, file=sys.stderr)
        return 1
    sys.stdout.buffer.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
