"""The `source-controller` console script: storage, artifact server, runners per kind, reconcile requests."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp

from gitops_mesh.artifacts.server import make_app as artifact_app
from gitops_mesh.artifacts.storage import Storage
from gitops_mesh.bus.topics import Topic
from gitops_mesh.observability.health import start_server
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
from gitops_mesh.settings import tool_path
from gitops_mesh.watches import artifact_revision, new_revision
from source_controller.artifactgenerator import artifact_generator_runner
from source_controller.bucket import BucketReconciler
from source_controller.gitrepository import API_VERSION, INCLUDE_INDEX, GitRepositoryReconciler, included_repositories
from source_controller.helmchart import SOURCE_INDEX, HelmChartReconciler, source_refs
from source_controller.helmrepository import HelmRepositoryReconciler
from source_controller.objectstore.index import Limits
from source_controller.ocirepository import OCIRepositoryReconciler
from source_controller.references import (
    bucket_secrets,
    git_repository_secrets,
    helm_repository_secrets,
    oci_repository_secrets,
)
from source_controller.requests import RequestRouter
from source_controller.settings import SourceSettings, advertised, parse

CONTROLLER = "source-controller"
log = get_logger(__name__)


@contextlib.asynccontextmanager
async def setup(ctx: ProcessContext[SourceSettings]) -> AsyncIterator[None]:
    s = ctx.settings
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
            git_repos = own_cache(ctx, p, API_VERSION, "GitRepository")
            helm_repo_cache = own_cache(ctx, p, API_VERSION, "HelmRepository")
            git = GitRepositoryReconciler(p.kube, storage, git_repos, max_repository_size=s.max_repository_size)
            git_runner = kind_runner(ctx, p, git)
            repo_runner = kind_runner(ctx, p, HelmRepositoryReconciler(p.kube, storage, http))
            sources = {
                "GitRepository": git_repos,
                "HelmRepository": helm_repo_cache,
                "Bucket": own_cache(ctx, p, API_VERSION, "Bucket"),
            }
            chart_runner = kind_runner(ctx, p, HelmChartReconciler(p.kube, storage, http, sources, helm=helm))
            # A new artifact of a source wakes what is built from it at once: charts, including repositories.
            changed = new_revision(artifact_revision)
            for source in sources.values():
                chart_runner.watches.follow(source, index=SOURCE_INDEX, refs=source_refs, when=changed)
            git_runner.watches.follow(git_repos, index=INCLUDE_INDEX, refs=included_repositories, when=changed)
            follow_labelled_references(p, git_runner, git_repository_secrets)
            follow_labelled_references(p, repo_runner, helm_repository_secrets)
            limits = Limits(s.max_bucket_objects, s.max_bucket_size, s.max_bucket_object_size)
            bucket_runner = kind_runner(ctx, p, BucketReconciler(p.kube, storage, limits))
            follow_labelled_references(p, bucket_runner, bucket_secrets)
            runners = [git_runner, repo_runner, chart_runner, bucket_runner]
            oci_runner = kind_runner(ctx, p, OCIRepositoryReconciler(p.kube, storage, http))
            follow_labelled_references(p, oci_runner, oci_repository_secrets)
            runners.append(oci_runner)
            runners.append(artifact_generator_runner(ctx, p, storage, http, max_size=s.max_repository_size))
            # A Receiver's request wakes a source at once; sources' news to each other goes through this process's caches.
            requests = RequestRouter({r.reconciler.kind: r for r in runners}).handle
            async with run_with_bus(
                ctx, p, runners, topics=[Topic.RECONCILE_REQUESTS], handler=requests, check="reconcile-requests"
            ):
                yield
    finally:
        await artifacts.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    return run(CONTROLLER, parse(argv), setup)


if __name__ == "__main__":
    sys.exit(main())
