"""Step 2 of a build: the real ``kustomize build`` on the work tree, its output parsed into objects.

kustomize runs as :mod:`gitops_mesh.kustomizecli` runs it: root-only loading, no plugins, Helm or exec
functions, git limited to ``https``/``ssh`` (none and an unreachable proxy with --no-remote-bases), a
private HOME/TMPDIR — here a temporary directory removed after the run, also when kustomize was killed.
Flux runs kustomize as a library with LoadRestrictionsNone over a file system confined to the artifact,
which lets an overlay load a file (not only a base directory) from outside its own directory. The CLI
cannot confine itself that way, so root-only is the safe choice: such overlays fail here with
kustomize's "is not in or below" message. References leaving the artifact and remote bases are checked
first (:mod:`.graph`); the environment is the second line of defence.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Final

import yaml

from gitops_mesh import commands, kustomizecli, tenant_yaml
from kustomize_controller.build import manifests
from kustomize_controller.build.errors import KustomizeFailed
from kustomize_controller.build.workdir import relative

#: How much of kustomize's stderr a message quotes.
DETAIL_CHARS: Final = 2000
#: The most of kustomize's output kept: as much as the manifests parser accepts (manifests.STREAM_LIMITS);
#: kustomize printing more is killed and the build fails (``kustomize build of '…' stopped: …``).
MAX_OUTPUT: Final = 64 << 20


def trim_detail(stderr: str, root: Path) -> str:
    """kustomize's complaint on one line, bounded, with the work tree's paths made artifact-relative."""
    return kustomizecli.trim_detail(stderr, root, DETAIL_CHARS)


async def kustomize_build(
    kustomize: Path | str,
    root: Path,
    directory: Path,
    *,
    timeout: float,
    no_remote_bases: bool = False,
    max_output: int = MAX_OUTPUT,
) -> bytes:
    """``kustomize build --load-restrictor LoadRestrictionsRootOnly directory``: its stdout, or KustomizeFailed."""
    where = relative(root, directory)
    with tempfile.TemporaryDirectory(prefix="kustomize-home-") as home:
        try:
            return await kustomizecli.build(
                kustomize,
                directory,
                cwd=root,
                home=Path(home),
                timeout=timeout,
                max_output=max_output,
                no_remote_bases=no_remote_bases,
            )
        except commands.CommandTimeout:
            raise KustomizeFailed(f"kustomize build of '{where}' timed out after {timeout:g}s") from None
        except commands.CommandNotStarted as e:
            raise KustomizeFailed(f"kustomize could not be run ({kustomize}): {e.strerror}") from e
        except commands.CommandFailed as e:
            detail = trim_detail(e.stderr.decode(errors="replace"), root) or f"exit status {e.returncode}"
            raise KustomizeFailed(f"kustomize build failed for '{where}': {detail}") from None
        except commands.OutputTooLarge as e:
            raise KustomizeFailed(f"kustomize build of '{where}' stopped: {e}") from None


def parse_objects(output: bytes | str) -> list[dict[str, Any]]:
    """kustomize's multi-document output as objects, each checked for apiVersion, kind and metadata.name."""
    try:
        documents = list(manifests.load_all(output))
    except yaml.YAMLError as e:
        raise KustomizeFailed(f"kustomize output is not YAML: {tenant_yaml.problem(e)}") from e
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
