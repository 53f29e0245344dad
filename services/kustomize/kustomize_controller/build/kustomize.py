"""Step 2 of a build: the real ``kustomize build`` on the work tree, its output parsed into objects.

kustomize runs with the root-only load restrictor and no plugins, Helm or exec functions (its defaults,
spelled out; Flux too disables all but the builtin plugins). Flux runs kustomize as a library with
LoadRestrictionsNone over a file system confined to the artifact, which lets an overlay load a file (not
only a base directory) from outside its own directory. The CLI cannot confine itself that way, so
root-only is the safe choice: such overlays fail here with kustomize's "is not in or below" message.
References leaving the artifact and remote bases are checked first (:mod:`.graph`).

The environment is the second line of defence:

* git (kustomize clones remote bases with it, submodules included) may only speak the protocols of
  :data:`GIT_PROTOCOLS` — ``https`` and ``ssh``, never ``file``, ``ext`` or plain ``git``/``http`` —
  and none at all when remote bases are disabled. Flux sets no such limit (its image has git and ssh),
  so a ``git::file:///`` base cloned any repository of its host; we refuse that in every mode.
* with remote bases disabled, kustomize's HTTP client is pointed at a proxy that cannot be reached:
  a URL the check missed fails instead of fetching (Go sends loopback addresses past any proxy, so the
  check in :mod:`.graph` stays the guarantee for those).
* HOME, XDG_CONFIG_HOME and TMPDIR (where kustomize clones) are one private directory removed after
  the run, also when kustomize was killed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Final

import yaml

from gitops_mesh import commands, tenant_yaml
from kustomize_controller.build import manifests
from kustomize_controller.build.errors import KustomizeFailed
from kustomize_controller.build.workdir import relative

#: How much of kustomize's stderr a message quotes.
DETAIL_CHARS: Final = 2000
#: The most of kustomize's output kept: as much as the manifests parser accepts (manifests.STREAM_LIMITS);
#: kustomize printing more is killed and the build fails (``kustomize build of '…' stopped: …``).
MAX_OUTPUT: Final = 64 << 20
#: git's protocol allow-list for remote bases (GIT_ALLOW_PROTOCOL; submodules included).
GIT_PROTOCOLS: Final = "https:ssh"
#: With remote bases disabled: no protocol name git knows, so git refuses every transport.
NO_GIT_PROTOCOLS: Final = "none"
#: A proxy nothing listens on (port 0 cannot be connected to): an HTTP fetch fails at once.
UNREACHABLE_PROXY: Final = "http://127.0.0.1:0"


def kustomize_env(home: Path, *, no_remote_bases: bool = False) -> dict[str, str]:
    """Only what kustomize needs: PATH (git, for remote bases), a private HOME and TMPDIR, proxies."""
    env = commands.program_env(home)
    if no_remote_bases:
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


def trim_detail(stderr: str, root: Path) -> str:
    """kustomize's complaint on one line, bounded, with the work tree's paths made artifact-relative."""
    text = stderr.replace(str(root) + "/", "").replace(str(root), ".")
    lines = (line.strip().removeprefix("Error: ") for line in text.splitlines())
    return commands.one_line("\n".join(lines), DETAIL_CHARS, keep="first")


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
        argv = [
            str(kustomize),
            "build",
            "--load-restrictor",
            "LoadRestrictionsRootOnly",
            "--enable-helm=false",
            "--enable-alpha-plugins=false",
            "--enable-exec=false",
            str(directory),
        ]
        env = kustomize_env(Path(home), no_remote_bases=no_remote_bases)
        try:
            done = await commands.run(argv, env=env, timeout=timeout, cwd=root, max_output=max_output)
        except commands.CommandTimeout:
            raise KustomizeFailed(f"kustomize build of '{where}' timed out after {timeout:g}s") from None
        except commands.CommandNotStarted as e:
            raise KustomizeFailed(f"kustomize could not be run ({kustomize}): {e.strerror}") from e
        except commands.CommandFailed as e:
            detail = trim_detail(e.stderr.decode(errors="replace"), root) or f"exit status {e.returncode}"
            raise KustomizeFailed(f"kustomize build failed for '{where}': {detail}") from None
        except commands.OutputTooLarge as e:
            raise KustomizeFailed(f"kustomize build of '{where}' stopped: {e}") from None
    return done.stdout


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
