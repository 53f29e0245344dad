"""The `source-controller` console script: storage, artifact server, runners per kind, reconcile requests."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import cast

import aiohttp

from gitops_mesh.artifacts.server import make_app as artifact_app
from gitops_mesh.artifacts.storage import Storage
from gitops_mesh.bus.consumer import Consumer
from gitops_mesh.bus.topics import Topic, Topics
from gitops_mesh.observability.health import start_server
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.process import ProcessContext, kind_runner, platform, run, run_runners, stop_runners
from gitops_mesh.settings import tool_path
from source_controller.gitrepository import GitRepositoryReconciler
from source_controller.helmchart import HelmChartReconciler, enqueue_dependents
from source_controller.helmrepository import HelmRepositoryReconciler
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
    helm = tool_path(s.helm_path, "HELM", "helm")
    if helm is None:
        log.warning("no helm binary: HelmCharts that need packaging will fail")
        helm = "helm"
    try:
        async with platform(ctx) as p, aiohttp.ClientSession() as http:
            git = GitRepositoryReconciler(p.kube, storage, max_repository_size=s.max_repository_size)
            git_runner = kind_runner(ctx, p, git)
            git.runner = git_runner
            helm_repos = HelmRepositoryReconciler(p.kube, storage, http)
            repo_runner = kind_runner(ctx, p, helm_repos)
            helm_repos.runner = repo_runner
            charts = HelmChartReconciler(p.kube, storage, http, helm=helm)
            chart_runner = kind_runner(ctx, p, charts)
            charts.runner = chart_runner
            # A new GitRepository / HelmRepository artifact enqueues the charts built from it at once.
            enqueue_dependents(chart_runner, [repo_runner, git_runner])
            runners = [git_runner, repo_runner, chart_runner]
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
