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
from gitops_mesh.bus.consumer import Consumer, RecordMeta
from gitops_mesh.bus.envelope import Event
from gitops_mesh.bus.topics import Topic, Topics
from gitops_mesh.kube.informer import ChangeType, Informer
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.process import ProcessContext, kind_runner, platform, run, run_runners, stop_runners
from gitops_mesh.runner import KindRunner
from gitops_mesh.settings import tool_path
from kustomize_controller.engine import Engine
from kustomize_controller.kustomization import KustomizationReconciler
from kustomize_controller.references import SOURCE_API, SOURCE_KINDS, dependency_index, source_index
from kustomize_controller.settings import KustomizeSettings, parse

CONTROLLER = "kustomize-controller"
log = get_logger(__name__)


class Triggers:
    """Everything that should reconcile a Kustomization at once, besides its own spec and interval.

    A new source artifact (from the bus's artifact-ready, or the source informer when Kafka is away)
    wakes the Kustomizations that follow it; an `applied` Kustomization wakes those that depend on it.
    The work queue dedupes, so the two paths never double the work.
    """

    def __init__(self, runner: KindRunner) -> None:
        self.runner = runner

    def _wake(self, index: str, value: str) -> None:
        for obj in self.runner.informer.by_index(index, value):
            meta = obj["metadata"]
            self.runner.enqueue(meta["namespace"], meta["name"])

    async def on_bus(self, event: Event, _: RecordMeta) -> None:
        ref = event.involved_object
        if event.kind == "artifact-ready" and ref.kind in SOURCE_KINDS:
            self._wake("source", f"{ref.kind}/{ref.namespace}/{ref.name}")
        elif event.kind == "applied" and ref.kind == "Kustomization":
            self._wake("dependsOn", f"{ref.namespace}/{ref.name}")

    def on_source(self, change: ChangeType, obj: KubeObject, old: KubeObject | None) -> None:
        revision = ((obj.get("status") or {}).get("artifact") or {}).get("revision")
        before = (((old or {}).get("status") or {}).get("artifact") or {}).get("revision")
        if revision and revision != before:
            meta = obj["metadata"]
            self._wake("source", f"{obj.get('kind')}/{meta['namespace']}/{meta['name']}")

    def on_kustomization(self, change: ChangeType, obj: KubeObject, old: KubeObject | None) -> None:
        applied = (obj.get("status") or {}).get("lastAppliedRevision")
        if applied and applied != ((old or {}).get("status") or {}).get("lastAppliedRevision"):
            self._wake("dependsOn", f"{obj['metadata']['namespace']}/{obj['metadata']['name']}")


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
        triggers = Triggers(runner)
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
