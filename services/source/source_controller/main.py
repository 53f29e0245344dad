"""The `source-controller` console script: storage, artifact server, runners per kind, reconcile requests."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import cast

from gitops_mesh.artifacts.server import make_app as artifact_app
from gitops_mesh.artifacts.storage import Storage
from gitops_mesh.bus.consumer import Consumer
from gitops_mesh.bus.topics import Topic, Topics
from gitops_mesh.observability.health import start_server
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.process import ProcessContext, kind_runner, platform, run, run_runners, stop_runners
from source_controller.gitrepository import GitRepositoryReconciler
from source_controller.requests import RequestRouter
from source_controller.settings import SourceSettings, advertised, parse

CONTROLLER = "source-controller"
log = get_logger(__name__)


@contextlib.asynccontextmanager
async def setup(ctx: ProcessContext) -> AsyncIterator[None]:
    s = cast(SourceSettings, ctx.settings)
    root = Path(s.storage_path)
    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    storage = Storage(root, advertised(s), retention_records=s.artifact_retention_records)
    artifacts, port = await start_server(artifact_app(root), s.storage_addr)
    log.info("serving artifacts", root=str(root), port=port, advertised=storage.advertised_addr)
    try:
        async with platform(ctx) as p:
            git = GitRepositoryReconciler(p.kube, storage, max_repository_size=s.max_repository_size)
            git_runner = kind_runner(ctx, p, git)
            git.runner = git_runner
            runners = [git_runner]
            topics = Topics(s.topic_prefix)
            consumer = Consumer(
                bootstrap=s.kafka_bootstrap,
                group_id=CONTROLLER,
                topics=[Topic.RECONCILE_REQUESTS],
                names=topics,
                dlq_topic=topics.name(Topic.DLQ),
                handler=RequestRouter({r.reconciler.kind: r for r in runners}).handle,
                client_id=CONTROLLER,
            )
            await consumer.start()
            ctx.checks.ready["reconcile-requests"] = consumer.ready
            await run_runners(ctx, runners)
            try:
                yield
            finally:
                await consumer.stop()
                await stop_runners(runners)
    finally:
        await artifacts.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    return run(CONTROLLER, parse(argv), setup)


if __name__ == "__main__":
    sys.exit(main())
