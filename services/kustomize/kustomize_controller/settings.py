"""kustomize-controller's flags: the shared ones plus Flux's build and apply flags."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gitops_mesh.settings import Settings, parse_as


@dataclass(frozen=True, slots=True)
class KustomizeSettings(Settings):
    no_remote_bases: bool = False
    kustomize_path: str = ""
    sops_path: str = ""
    #: unpacked source trees kept, one per artifact digest
    tree_cache_entries: int = 32
    #: empty: a fresh private directory per process (workdir.private_directory)
    tree_cache_dir: str = ""
    artifact_max_size: int = 100 << 20
    #: how often a health check in progress is looked at again
    health_poll: float = 2.0


_HELP = {
    "no_remote_bases": "refuse kustomize remote bases (resources by URL)",
    "kustomize_path": "the kustomize binary (default: $KUSTOMIZE, else `kustomize` on PATH)",
    "sops_path": "the sops binary for decryption (default: $SOPS, else `sops` on PATH)",
    "tree_cache_entries": "unpacked artifacts kept in the tree cache",
    "tree_cache_dir": (
        "directory of the tree cache (default: a fresh private directory per process); created 0700, or an"
        " existing directory of ours, not a symlink, without group or other access"
    ),
    "artifact_max_size": "largest artifact fetched, in bytes",
    "health_poll": "interval between looks at a health check in progress",
}


def parse(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> KustomizeSettings:
    return parse_as(KustomizeSettings(), argv, prog="kustomize-controller", help=_HELP, env=env)
