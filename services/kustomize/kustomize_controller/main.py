"""The `kustomize-controller` console script: source caches, the Kustomization runner, bus triggers."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import cast

import aiohttp

from gitops_mesh.artifacts.extract import TreeCache
from gitops_mesh.bus.consumer import Consumer
from gitops_mesh.bus.topics import Topic, Topics
from gitops_mesh.kube.informer import Informer
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.process import ProcessContext, kind_runner, platform, run, run_runners, stop_runners
from gitops_mesh.settings import tool_path
from kustomize_controller.engine import Engine
from kustomize_controller.kustomization import KustomizationReconciler
from kustomize_controller.references import SOURCE_API, SOURCE_KINDS, dependency_index, source_index
from kustomize_controller.settings import KustomizeSettings, parse
from kustomize_controller.triggers import Triggers

CONTROLLER = "kustomize-controller"
log = get_logger(__name__)


@contextlib.asynccontextmanager
async def setup(ctx: ProcessContext) -> AsyncIterator[None]:
    s = cast(KustomizeSettings, ctx.settings)
    kustomize = tool_path(s.kustomize_path, "KUSTOMIZE", "kustomize")
    if kustomize is None:
        raise SystemExit("kustomize-controller: no kustomize binary (--kustomize-path, $KUSTOMIZE or PATH)")
    namespace = None if s.watch_all_namespaces else (s.watch_namespace or None)
    cache_root = Path(tempfile.mkdtemp(prefix="trees-", dir=_ensure(s.tree_cache_dir)))
    async with platform(ctx) as p, aiohttp.ClientSession() as http:
        engine = Engine(
            kustomize=Path(kustomize),
            sops=_path(tool_path(s.sops_path, "SOPS", "sops")),
            kube=p.kube,
            no_remote_bases=s.no_remote_bases,
        )
        sources = {kind: Informer(p.kube, SOURCE_API, kind, namespace=namespace) for kind in SOURCE_KINDS}
        reconciler = KustomizationReconciler(
            kube=p.kube,
            http=http,
            trees=TreeCache(cache_root, s.tree_cache_entries),
            engine=engine,
            settings=s,
            sources=sources,
        )
        runner = kind_runner(ctx, p, reconciler)
        reconciler.runner = runner
        runner.informer.add_index("source", source_index)
        runner.informer.add_index("dependsOn", dependency_index)
        triggers = Triggers(runner, sources)
        runner.informer.on_event(triggers.on_kustomization)
        for informer in sources.values():
            informer.on_event(triggers.on_source)
            informer.start()
        topics = Topics(s.topic_prefix)
        consumer = Consumer(
            bootstrap=s.kafka_bootstrap,
            group_id=CONTROLLER,
            topics=[Topic.ARTIFACT_READY, Topic.APPLIED],
            names=topics,
            dlq_topic=topics.name(Topic.DLQ),
            handler=triggers.on_bus,
            client_id=CONTROLLER,
        )
        await consumer.start()
        ctx.checks.ready["bus-consumer"] = consumer.ready
        await run_runners(ctx, [runner])
        try:
            yield
        finally:
            await consumer.stop()
            await stop_runners([runner])
            for informer in sources.values():
                await informer.stop()


def _ensure(path: str) -> str:
    Path(path).mkdir(parents=True, exist_ok=True)
    return path


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def main(argv: Sequence[str] | None = None) -> int:
    return run(CONTROLLER, parse(argv), setup)


if __name__ == "__main__":
    sys.exit(main())
