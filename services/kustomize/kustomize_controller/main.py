"""The `kustomize-controller` console script: source caches, the Kustomization runner, bus triggers."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp

from gitops_mesh.artifacts.extract import TreeCache
from gitops_mesh.bus.envelope import EventKind
from gitops_mesh.bus.topics import Topic
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.process import (
    ProcessContext,
    follow_labelled_references,
    kind_runner,
    own_cache,
    platform,
    run,
    run_with_bus,
)
from gitops_mesh.runner import retry_interval_of
from gitops_mesh.settings import tool_path
from gitops_mesh.watches import applied_revision, artifact_revision, new_revision
from kustomize_controller.build.workdir import UnsafeDirectory, private_directory
from kustomize_controller.kustomization import API_VERSION, KIND, KustomizationReconciler
from kustomize_controller.references import (
    DEPENDENCY_INDEX,
    SOURCE_API,
    SOURCE_INDEX,
    SOURCE_KINDS,
    config_refs,
    dependency_refs,
    source_refs,
)
from kustomize_controller.settings import KustomizeSettings, parse
from kustomize_controller.toolchain import Toolchain

CONTROLLER = "kustomize-controller"
log = get_logger(__name__)


@contextlib.asynccontextmanager
async def setup(ctx: ProcessContext[KustomizeSettings]) -> AsyncIterator[None]:
    s = ctx.settings
    kustomize = tool_path(s.kustomize_path, "KUSTOMIZE", "kustomize")
    if kustomize is None:
        raise SystemExit("kustomize-controller: no kustomize binary (--kustomize-path, $KUSTOMIZE or PATH)")
    try:
        cache_dir = private_directory(s.tree_cache_dir, prefix="kustomize-controller-")
    except (UnsafeDirectory, OSError) as e:
        raise SystemExit(f"kustomize-controller: --tree-cache-dir: {e}") from None
    cache_root = Path(tempfile.mkdtemp(prefix="trees-", dir=cache_dir))
    try:
        async with _serving(ctx, Path(kustomize), cache_root):
            yield
    finally:
        # Ours alone: the per-process directory, or our trees-* inside the operator's.
        shutil.rmtree(cache_root if s.tree_cache_dir else cache_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def _serving(ctx: ProcessContext[KustomizeSettings], kustomize: Path, cache_root: Path) -> AsyncIterator[None]:
    s = ctx.settings
    async with platform(ctx) as p, aiohttp.ClientSession() as http:
        tools = Toolchain(
            kustomize=kustomize,
            sops=_path(tool_path(s.sops_path, "SOPS", "sops")),
            kube=p.kube,
            no_remote_bases=s.no_remote_bases,
        )
        sources = {kind: p.caches.informer(SOURCE_API, kind) for kind in SOURCE_KINDS}
        kustomizations = own_cache(ctx, p, API_VERSION, KIND)
        reconciler = KustomizationReconciler(
            kube=p.kube,
            http=http,
            trees=TreeCache(cache_root, s.tree_cache_entries),
            tools=tools,
            settings=s,
            kustomizations=kustomizations,
            sources=sources,
        )
        runner = kind_runner(ctx, p, reconciler, retry_interval=retry_interval_of)
        # A source's new artifact and a dependency's new applied revision wake a Kustomization at once:
        # through the bus across processes, through the caches when Kafka is away.
        for source in sources.values():
            runner.watches.follow(
                source,
                index=SOURCE_INDEX,
                refs=source_refs,
                when=new_revision(artifact_revision),
                revision_of=artifact_revision,
                events=[EventKind.ARTIFACT_READY],
            )
        runner.watches.follow(
            kustomizations,
            index=DEPENDENCY_INDEX,
            refs=dependency_refs,
            when=new_revision(applied_revision),
            revision_of=applied_revision,
            events=[EventKind.APPLIED],
        )
        follow_labelled_references(p, runner, config_refs)
        async with run_with_bus(ctx, p, [runner], topics=[Topic.ARTIFACT_READY, Topic.APPLIED]):
            yield


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def main(argv: Sequence[str] | None = None) -> int:
    return run(CONTROLLER, parse(argv), setup)


if __name__ == "__main__":
    sys.exit(main())
