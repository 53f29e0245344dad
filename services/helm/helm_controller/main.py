"""The `helm-controller` console script: chart source and HelmRelease caches, the HelmRelease runner, bus triggers."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp

from gitops_mesh.bus.envelope import EventKind
from gitops_mesh.bus.topics import Topic
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.kube.remote import RemoteOptions
from gitops_mesh.kube.version import server_version, validates_fields
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
from gitops_mesh.watches import artifact_revision, new_revision
from helm_controller.actions import HelmActions
from helm_controller.helmrelease import HelmReleaseReconciler, released_revision
from helm_controller.kubeconfig_file import helm_kubeconfig
from helm_controller.references import (
    API_VERSION,
    CHART_INDEX,
    DEPENDENCY_INDEX,
    KIND,
    SOURCE_API,
    chart_refs,
    dependency_refs,
    values_refs,
)
from helm_controller.settings import HelmSettings, parse
from helm_controller.target import TargetClusters, kubeconfig_refs

CONTROLLER = "helm-controller"
log = get_logger(__name__)


@contextlib.asynccontextmanager
async def setup(ctx: ProcessContext[HelmSettings]) -> AsyncIterator[None]:
    s = ctx.settings
    helm = tool_path(s.helm_path, "HELM", "helm")
    if helm is None:
        raise SystemExit("helm-controller: no helm binary (--helm-path, $HELM or PATH)")
    if s.temp_dir:
        os.makedirs(s.temp_dir, mode=0o700, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="helm-controller-", dir=s.temp_dir or None))  # 0700, ours alone
    try:
        async with _serving(ctx, Path(helm), workdir, tool_path(s.kustomize_path, "KUSTOMIZE", "kustomize")):
            yield
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.asynccontextmanager
async def _serving(
    ctx: ProcessContext[HelmSettings], helm: Path, workdir: Path, kustomize: str | None
) -> AsyncIterator[None]:
    s = ctx.settings
    kubeconfig = helm_kubeconfig(s, workdir, os.environ)
    remote = RemoteOptions(allow_exec=s.insecure_kubeconfig_exec, allow_insecure_tls=s.insecure_kubeconfig_tls)
    async with platform(ctx) as p, aiohttp.ClientSession() as http, _targets(p.kube, remote) as targets:
        charts = p.caches.informer(SOURCE_API, "HelmChart")
        # spec.chartRef's other kinds, whose artifact is the chart itself.
        sources = {kind: p.caches.informer(SOURCE_API, kind) for kind in ("OCIRepository", "ExternalArtifact")}
        releases = own_cache(ctx, p, API_VERSION, KIND)
        reconciler = HelmReleaseReconciler(
            kube=p.kube,
            http=http,
            # Without kustomize only a release that asks for post-rendering fails (its message says why).
            helm=HelmActions(
                helm, workdir / "actions", kustomize=kustomize, max_processes=s.helm_processes or s.concurrent
            ),
            settings=s,
            releases=releases,
            charts=charts,
            workdir=workdir,
            kubeconfig=kubeconfig,
            targets=targets,
            server_validates_fields=validates_fields(await server_version(p.kube)),
            sources=sources,
        )
        runner = kind_runner(ctx, p, reconciler, retry_interval=retry_interval_of)
        # The chart's new artifact and a dependency's new release wake a HelmRelease at once: through the
        # bus across processes, through the caches when Kafka is away.
        for source in (charts, *sources.values()):
            runner.watches.follow(
                source,
                index=CHART_INDEX,
                refs=chart_refs,
                when=new_revision(artifact_revision),
                revision_of=artifact_revision,
                events=[EventKind.ARTIFACT_READY],
            )
        runner.watches.follow(
            releases,
            index=DEPENDENCY_INDEX,
            refs=dependency_refs,
            when=new_revision(released_revision),
            revision_of=released_revision,
            events=[EventKind.APPLIED],
        )
        follow_labelled_references(p, runner, _labelled_refs)
        async with run_with_bus(ctx, p, [runner], topics=[Topic.ARTIFACT_READY, Topic.APPLIED]):
            yield


@contextlib.asynccontextmanager
async def _targets(kube: KubeClient, options: RemoteOptions) -> AsyncIterator[TargetClusters]:
    targets = TargetClusters(kube, options)
    try:
        yield targets
    finally:
        await targets.close()


def _labelled_refs(obj: KubeObject) -> list[str]:
    """valuesFrom's Secrets and ConfigMaps and spec.kubeConfig's Secret: labelled ones wake the release."""
    return [*values_refs(obj), *kubeconfig_refs(obj)]


def main(argv: Sequence[str] | None = None) -> int:
    return run(CONTROLLER, parse(argv), setup)


if __name__ == "__main__":
    sys.exit(main())
