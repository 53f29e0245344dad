"""ArtifactGenerator: sources' artifacts in, ExternalArtifacts out — observe, skip when nothing drifted, copy, store, publish.

Why inside source-controller, as its own runner, and not a separate process as Flux's source-watcher:
the inputs are this process's own artifacts (GitRepository, OCIRepository, Bucket, HelmChart, and the
ExternalArtifacts generated here), read from its storage directory instead of downloaded over HTTP; the
outputs go to the same storage and are served by the same artifact server; and the sources' caches are
already this process's, so a source's new artifact wakes its generators through the informers, in
milliseconds, with no bus round trip. One process also means one leader Lease and one storage volume to
run. An ExternalArtifact produced elsewhere (its artifact not under its own directory here) is fetched
over HTTP, digest and size checked, as Flux fetches every input.

Event-driven: the generator runner follows each source kind's cache (``new_revision``, Flux's
sourceChangePredicate), so an input's new artifact regenerates its outputs at once; each ExternalArtifact
whose revision changed is announced on the bus (``artifact-ready``, about the ExternalArtifact) right
after its status is written, which is what kustomize- and helm-controller follow.

A new artifact only when the selected content changed: each output's staged tree is digested
(:mod:`.generator.treehash`); the same tree keeps the stored file, its digest and revision
(``latest@<digest>``), so a commit elsewhere in a monorepo announces nothing and redeploys nothing.

The decisions are :mod:`.artifactgenerator_plan`'s (pure); the copying is :mod:`.generator` (blocking, run
in a thread that a deadline or a cancelled reconcile stops between files).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from gitops_mesh import stoppable
from gitops_mesh.artifacts.errors import ArtifactError
from gitops_mesh.artifacts.extract import ExtractLimits, safe_extract
from gitops_mesh.artifacts.fetch import fetch
from gitops_mesh.artifacts.storage import Storage
from gitops_mesh.errors import ApiError, GitopsMeshError, NotFound, TransientError
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.events import EventRecorder
from gitops_mesh.kube.informer import Informer
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.process import Platform, ProcessContext, kind_runner, own_cache
from gitops_mesh.reconcile.result import Announcement, Outcome
from gitops_mesh.runner import KindRunner, publish_announcement
from gitops_mesh.timestamps import rfc3339
from gitops_mesh.watches import artifact_revision, new_revision
from source_controller.artifact_status import artifact_status
from source_controller.artifactgenerator_plan import (
    API_VERSION,
    BUILD_FAILED,
    EA_API_VERSION,
    EA_KIND,
    FINALIZER,
    GENERATOR_LABEL,
    KIND,
    RECONCILIATION_FAILED,
    SOURCE_FETCH_FAILED,
    SOURCE_KINDS,
    ObservedSource,
    Output,
    Spec,
    artifact_metadata,
    changed,
    claim_problem,
    drift,
    external_artifact,
    inventory_entry,
    inventory_of,
    is_disabled,
    needs_apply,
    new_artifact,
    observe_sources,
    orphans,
    output_refs,
    ready_condition,
    rendered_outputs,
    source_refs,
    sources_digest,
    succeeded,
    up_to_date,
    validate,
)
from source_controller.artifactgenerator_plan import artifact_revision as output_revision
from source_controller.generator.copying import Budget, Copier, CopyError
from source_controller.generator.pathpattern import match_directories
from source_controller.generator.treehash import tree_digest

log = get_logger(__name__)

#: The generator cache's indexes: by the sources followed, by the ExternalArtifacts generated.
SOURCE_INDEX = "source"
OUTPUT_INDEX = "outputs"
#: The ExternalArtifact cache's index of the generator (uid) that labelled each one.
GENERATOR_INDEX = "generator"
#: How long one output's copy operations may take (tenant patterns over a whole monorepo included).
BUILD_TIMEOUT = 300.0
#: Entries of one unpacked source, and of one generated artifact.
MAX_ENTRIES = 100_000

#: Every input kind (and ExternalArtifact) is in source-controller's API group.
SOURCE_API = EA_API_VERSION
#: Publishes an announcement about an object (an ExternalArtifact) on the bus.
Publish = Callable[[KubeObject, Announcement], None]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ArtifactGeneratorReconciler:
    """ArtifactGenerator's inner work; the runner does the finalizer, conditions and the status patch.

    ``sources`` are the process's caches of the source kinds (ExternalArtifact among them, which is also
    where the generated ones are read back); ``generators`` is the runner's own cache.
    """

    kube: KubeClient
    storage: Storage
    http: aiohttp.ClientSession
    sources: dict[str, Informer]
    generators: Informer
    publish: Publish
    recorder: EventRecorder
    controller: str = "source-controller"
    cross_namespace: bool = True
    requeue_dependency: float = 30.0
    max_size: int = 1 << 30
    clock: Callable[[], datetime] = _now

    api_version: str = API_VERSION
    kind: str = KIND

    @property
    def external_artifacts(self) -> Informer:
        return self.sources[EA_KIND]

    async def reconcile(self, obj: KubeObject) -> Outcome:
        meta = obj["metadata"]
        if is_disabled(obj):
            log.info("reconciliation is disabled", namespace=meta["namespace"], name=meta["name"])
            return Outcome.suspended()
        spec = validate(obj, cross_namespace=self.cross_namespace)
        observed = observe_sources(spec, self._lookup, retry_after=self.requeue_dependency)
        digest = sources_digest(observed)
        generated = self.external_artifacts.by_index(GENERATOR_INDEX, str(meta.get("uid") or ""))
        why = drift(obj, spec, digest, stored=self._stored, generated=generated)
        if why is None:
            return up_to_date(obj).apply(obj, now=self.clock())
        log.info("generating artifacts", namespace=meta["namespace"], name=meta["name"], drift=why)
        old = inventory_of(obj)
        inventory = []
        with tempfile.TemporaryDirectory(prefix="artifactgenerator-") as tmp:
            trees = await self._unpack_sources(observed, Path(tmp))
            for output in await self._outputs(spec, trees):
                artifact = await self._generate(obj, output, observed, trees, Path(tmp))
                inventory.append(inventory_entry(meta["namespace"], output.name, artifact))
        await self._remove(obj, orphans(old, inventory))
        news = changed(old, inventory)
        if news:
            await self.recorder.normal(obj, "Ready", "external artifacts reconciled: " + "\n".join(news))
        return succeeded(inventory, digest).apply(obj, now=self.clock())

    async def finalize(self, obj: KubeObject) -> None:
        await self._remove(obj, inventory_of(obj))

    # --- observing ---------------------------------------------------------------------------------------

    def _lookup(self, kind: str, namespace: str, name: str) -> KubeObject | None:
        cache = self.sources.get(kind)
        return cache.get(namespace, name) if cache is not None else None

    def _stored(self, namespace: str, name: str, filename: str) -> bool:
        try:
            return self.storage.exists(self.storage.artifact_path(EA_KIND, namespace, name, filename))
        except ArtifactError:
            return False

    def _local(self, src: ObservedSource) -> Path | None:
        """The source's artifact file in this process's storage — only under the source's own directory,
        so an ExternalArtifact written by someone else cannot point us at another object's files."""
        ref = src.ref
        try:
            own = self.storage.object_dir(ref.kind, ref.namespace, ref.name) + "/"
            if not src.path.startswith(own) or not self.storage.exists(src.path):
                return None
            return self.storage.local_path(src.path)
        except ArtifactError:
            return None

    async def _unpack_sources(self, observed: dict[str, ObservedSource], tmp: Path) -> dict[str, Path]:
        """Each source's artifact unpacked under ``tmp/sources/<alias>`` (capped, symlinks left out)."""
        limits = ExtractLimits(max_total_bytes=self.max_size, max_entries=MAX_ENTRIES, skip_symlinks=True)
        trees: dict[str, Path] = {}
        downloads = tmp / "downloads"
        await asyncio.to_thread(downloads.mkdir)
        for alias, src in observed.items():
            tree = tmp / "sources" / alias
            try:
                archive = self._local(src)
                if archive is None:
                    archive = await fetch(
                        self.http, src.url, downloads / f"{alias}.tar.gz", digest=src.digest, max_size=self.max_size
                    )
                await asyncio.to_thread(safe_extract, archive, tree, limits)
            except (GitopsMeshError, OSError) as e:
                raise TransientError(
                    f"fetch sources failed: {src.ref.kind} '{src.ref.namespace}/{src.ref.name}': {e}",
                    reason=SOURCE_FETCH_FAILED,
                    retry_after=self.requeue_dependency,
                ) from e
            trees[alias] = tree
        return trees

    async def _outputs(self, spec: Spec, trees: dict[str, Path]) -> tuple[Output, ...]:
        """spec.artifacts, or with a pathPattern each template rendered for each matching directory."""
        pattern = spec.path_pattern
        if pattern is None:
            return spec.outputs
        stop = stoppable.Stop(BUILD_TIMEOUT, what="matching pathPattern")
        matches = await stoppable.in_thread(lambda: match_directories(trees[pattern.alias], pattern, stop), stop)
        return rendered_outputs(spec, matches)

    # --- generating --------------------------------------------------------------------------------------

    async def _generate(
        self, obj: KubeObject, output: Output, observed: dict[str, ObservedSource], trees: dict[str, Path], tmp: Path
    ) -> dict[str, Any]:
        """Stage, digest, store (unless the same tree is stored) and publish one ExternalArtifact."""
        ns = obj["metadata"]["namespace"]
        existing = self.external_artifacts.get(ns, output.name)
        problem = claim_problem(existing, obj, generator_exists=self._generator_exists)
        if problem is not None:
            raise TransientError(f"{output.name} reconcile failed: {problem}", reason=RECONCILIATION_FAILED)
        staging = tmp / "out" / output.name
        try:
            tree = await self._stage(output, trees, staging, tmp)
            artifact = await self._store(ns, output, observed, staging, tree, existing)
        except (CopyError, GitopsMeshError, OSError) as e:
            raise TransientError(f"{output.name} build failed: {e}", reason=BUILD_FAILED) from e
        try:
            await self._write_external_artifact(obj, output, artifact, existing)
        except ApiError as e:
            raise TransientError(f"{output.name} reconcile failed: {e}", reason=RECONCILIATION_FAILED) from e
        return artifact

    def _generator_exists(self, uid: str) -> bool:
        return any((g.get("metadata") or {}).get("uid") == uid for g in self.generators.list())

    async def _stage(self, output: Output, trees: dict[str, Path], staging: Path, tmp: Path) -> str:
        """Apply the copy operations into ``staging`` (in a stoppable thread); the staged tree's digest."""
        scratch = tmp / "scratch"
        limits = ExtractLimits(max_total_bytes=self.max_size, max_entries=MAX_ENTRIES, skip_symlinks=True)
        stop = stoppable.Stop(BUILD_TIMEOUT, what=f"generating {output.name}")
        copier = Copier(trees, staging, scratch, Budget(self.max_size, MAX_ENTRIES, limits), stop)

        def build() -> str:
            staging.mkdir(parents=True)
            scratch.mkdir(exist_ok=True)
            copier.apply_all(output.copy)
            return tree_digest(staging, stop)

        try:
            return await stoppable.in_thread(build, stop)
        except stoppable.Stopped as e:
            raise CopyError(str(e)) from e

    async def _store(
        self,
        ns: str,
        output: Output,
        observed: dict[str, ObservedSource],
        staging: Path,
        tree: str,
        existing: KubeObject | None,
    ) -> dict[str, Any]:
        """The artifact's status: the stored one when it holds this very tree, else a new tarball."""
        filename = f"{tree.removeprefix('sha256:')[:32]}.tar.gz"
        path = self.storage.artifact_path(EA_KIND, ns, output.name, filename)
        metadata = artifact_metadata(output, observed)
        before = ((existing or {}).get("status") or {}).get("artifact") or {}
        if before.get("path") == path and before.get("digest") and self.storage.exists(path):
            artifact = {k: v for k, v in before.items() if k != "metadata"}
            artifact["revision"] = output_revision(output, observed, str(before["digest"]))
            if metadata:
                artifact["metadata"] = metadata
            return artifact
        async with self.storage.lock(EA_KIND, ns, output.name):
            stored = await self.storage.archive(EA_KIND, ns, output.name, filename, staging)
            await self.storage.gc(EA_KIND, ns, output.name, current=filename)
        log.info("new artifact", namespace=ns, name=output.name, kind=EA_KIND, digest=stored.digest, size=stored.size)
        return artifact_status(stored, output_revision(output, observed, stored.digest), metadata or None)

    async def _write_external_artifact(
        self, obj: KubeObject, output: Output, artifact: dict[str, Any], existing: KubeObject | None
    ) -> None:
        """Apply the object and its status when they differ from the cache; announce a new revision."""
        desired = external_artifact(obj, output.name, controller=self.controller, labels=output.labels)
        current = existing
        if needs_apply(existing, desired):
            current = await self.kube.apply(desired, field_manager=self.controller, force=True)
        generation = int((current or {}).get("metadata", {}).get("generation") or 1)
        status = {
            "artifact": artifact,
            "conditions": [ready_condition(existing, generation, rfc3339(self.clock()))],
        }
        if ((current or {}).get("status") or {}) != status:
            body = {**desired, "status": status}
            current = await self.kube.apply_status(body, field_manager=self.controller)
        if current is not None and current is not existing:
            await self.external_artifacts.observe(current)
        announcement = new_artifact(existing, artifact)
        if announcement is not None and current is not None:
            self.publish(current, announcement)

    async def _remove(self, obj: KubeObject, refs: list[Any]) -> None:
        """Delete the ExternalArtifacts of ``refs`` (when they are still ours) and their stored files."""
        uid = obj["metadata"].get("uid")
        for ref in refs:
            ns, name = str(ref.get("namespace")), str(ref.get("name"))
            cached = self.external_artifacts.get(ns, name)
            owner = ((cached or {}).get("metadata", {}).get("labels") or {}).get(GENERATOR_LABEL)
            if cached is not None and owner not in (None, uid):
                continue  # taken over by another generator since: neither the object nor its files are ours
            await self.storage.remove_all(EA_KIND, ns, name)
            with contextlib.suppress(NotFound):
                await self.kube.delete(EA_API_VERSION, EA_KIND, name, namespace=ns)
            log.info("garbage collected", kind=EA_KIND, namespace=ns, name=name)


def generator_label(obj: KubeObject) -> list[str]:
    """The ExternalArtifact cache's index: the uid of the generator that labelled it."""
    uid = ((obj.get("metadata") or {}).get("labels") or {}).get(GENERATOR_LABEL)
    return [uid] if isinstance(uid, str) and uid else []


def bus_publisher(ctx: ProcessContext[Any], p: Platform) -> Publish:
    """Announcements about objects other than the runner's own (the ExternalArtifacts a generator writes)."""

    def publish(obj: KubeObject, a: Announcement) -> None:
        publish_announcement(
            p.publisher, obj, a, controller=ctx.controller, instance=ctx.instance,
            api_version=str(obj.get("apiVersion") or EA_API_VERSION), kind=str(obj.get("kind") or EA_KIND),
        )  # fmt: skip

    return publish


def artifact_generator_runner(
    ctx: ProcessContext[Any], p: Platform, storage: Storage, http: aiohttp.ClientSession, *, max_size: int
) -> KindRunner:
    """The generator's runner, following its sources' caches and its ExternalArtifacts' deletions."""
    s = ctx.settings
    # One cache per kind and process: the same informers the source kinds' own runners reconcile from.
    sources = {kind: own_cache(ctx, p, SOURCE_API, kind) for kind in SOURCE_KINDS}
    eas = sources[EA_KIND]
    if GENERATOR_INDEX not in eas.indexes:
        eas.add_index(GENERATOR_INDEX, generator_label)
    generators = own_cache(ctx, p, API_VERSION, KIND)
    reconciler = ArtifactGeneratorReconciler(
        kube=p.kube,
        storage=storage,
        http=http,
        sources=sources,
        generators=generators,
        publish=bus_publisher(ctx, p),
        recorder=p.recorder,
        controller=ctx.controller,
        cross_namespace=not s.no_cross_namespace_refs,
        requeue_dependency=s.requeue_dependency,
        max_size=max_size,
    )
    runner = kind_runner(ctx, p, reconciler, finalizer=FINALIZER)
    changed_revision = new_revision(artifact_revision)
    for cache in sources.values():
        runner.watches.follow(cache, index=SOURCE_INDEX, refs=source_refs, when=changed_revision)
    # A generated ExternalArtifact deleted by hand is generated again at once, not at the next hourly check.
    runner.watches.follow(eas, index=OUTPUT_INDEX, refs=output_refs, when=lambda obj, old: False, on_delete=True)
    return runner
