"""OCIRepository: resolve spec.ref with a HEAD (a tag list for semver), skip when the digest and spec are the
stored ones, else verify, pull the selected layer, extract (through the ignore rules) or copy it, store, announce.

The decisions are :mod:`.ocirepository_plan`'s (pure); this module does the I/O between them. Every registry
call of one reconcile shares spec.timeout (default 60s) as one deadline. A failure leaves the stored artifact
and status.artifact as they were, so what follows this source keeps working.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import aiohttp

from gitops_mesh.artifacts.errors import StorageError, UnsafeArchive
from gitops_mesh.artifacts.extract import ExtractLimits, safe_extract
from gitops_mesh.artifacts.storage import Storage, StoredArtifact
from gitops_mesh.errors import GitopsMeshError, NotFound, TransientError
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.kube.secrets import secret_data
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.oci import (
    AuthCache,
    Limits,
    Manifest,
    OciError,
    RegistryClient,
    RegistryUnavailable,
    Repository,
    cosign,
)
from gitops_mesh.reconcile.result import Outcome
from gitops_mesh.settings import parse_duration
from source_controller.artifact_status import artifact_status, in_storage
from source_controller.git.ignore import build_filter
from source_controller.oci.access import AccessError, RegistryAccess, registry_access
from source_controller.ocirepository_plan import (
    COPY,
    FETCHED,
    NOT_VERIFIED,
    OCI_LAYER_OPERATION_FAILED,
    OCI_PULL_FAILED,
    READ_OPERATION_FAILED,
    Observed,
    Pull,
    Ref,
    artifact_ref,
    credentials_failed,
    digest_of,
    fetch_failed,
    needs_verification,
    plan,
    refuse_keyless,
    repository_of,
    revision_of,
    select_layer,
    select_tag,
    stored,
    verification_failed,
    verified,
)
from source_controller.status_edits import Done, storage_failed
from source_controller.unsupported import OCI_REPOSITORY, refuse_unsupported

API_VERSION = "source.toolkit.fluxcd.io/v1"
KIND = "OCIRepository"
DEFAULT_TIMEOUT = "60s"
#: A layer (compressed) larger than this is refused before download; its unpacked tree is capped by
#: ExtractLimits' defaults (the same for every artifact we unpack).
DEFAULT_MAX_LAYER_SIZE = 1 << 30
#: Flux's tar.WithSkipSymlinks: links in a layer are left out, never followed.
_LIMITS = ExtractLimits(skip_symlinks=True)

log = get_logger(__name__)
T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class OCIRepositoryReconciler:
    """OCIRepository's inner work; the runner does finalizers, suspend, conditions and the status patch."""

    kube: KubeClient
    storage: Storage
    http: aiohttp.ClientSession
    max_layer_size: int = DEFAULT_MAX_LAYER_SIZE
    clock: Callable[[], datetime] = _now
    #: tokens the registries gave, shared by this kind's reconciles: a periodic no-op is one HEAD
    auth_cache: AuthCache = field(default_factory=AuthCache)

    api_version: str = API_VERSION
    kind: str = KIND

    async def reconcile(self, obj: KubeObject) -> Outcome:
        meta, spec = obj["metadata"], obj["spec"]
        refuse_unsupported(spec, OCI_REPOSITORY)
        refuse_keyless(spec)
        repo, ref = repository_of(spec), artifact_ref(spec)
        timeout = parse_duration(spec.get("timeout") or DEFAULT_TIMEOUT)
        deadline = asyncio.get_running_loop().time() + timeout
        access = await self._access(obj, repo, timeout)
        client = RegistryClient(
            self.http,
            repo.registry,
            credentials=access.credentials,
            transport=access.transport,
            limits=Limits(max_blob_bytes=self.max_layer_size),
            auth_cache=self.auth_cache,
        )
        revision = await self._revision(obj, client, repo, ref, deadline)
        await self._verify(obj, client, repo, revision, deadline)
        step = plan(obj, Observed(revision, in_storage(self.storage, obj)))
        if isinstance(step, Done):
            return step.apply(obj, now=self.clock())
        with tempfile.TemporaryDirectory(prefix="ocirepo-") as tmp:
            manifest, layer_file = await self._pull(obj, client, repo, revision, step, Path(tmp), deadline)
            artifact, link = await self._store(obj, step, revision, layer_file, Path(tmp) / "work")
        status = artifact_status(artifact, revision, dict(manifest.annotations) or None)
        done = stored(obj, revision, status, link)
        if done.outcome.announce:
            log.info(
                "new artifact", namespace=meta["namespace"], name=meta["name"], revision=revision, size=artifact.size
            )
        return done.apply(obj, now=self.clock())

    async def finalize(self, obj: KubeObject) -> None:
        meta = obj["metadata"]
        await self.storage.remove_all(KIND, meta["namespace"], meta["name"])

    async def _access(self, obj: KubeObject, repo: Repository, timeout: float) -> RegistryAccess:
        try:
            return await registry_access(
                self.kube, obj["metadata"]["namespace"], obj["spec"], repo.registry, timeout=timeout
            )
        except AccessError as e:
            credentials_failed(e, e.what).fail(obj, cause=e, now=self.clock())

    async def _within(self, deadline: float, call: Awaitable[T]) -> T:
        """``call`` before the reconcile's deadline (spec.timeout); a timeout is the registry's, retried."""
        try:
            async with asyncio.timeout_at(deadline):
                return await call
        except TimeoutError as e:
            raise RegistryUnavailable("timed out (spec.timeout)") from e

    async def _revision(
        self, obj: KubeObject, client: RegistryClient, repo: Repository, ref: Ref, deadline: float
    ) -> str:
        """Where spec.ref points now: a tag (semver: the best of the listed tags) resolved by a HEAD."""
        url = obj["spec"]["url"]
        if ref.digest:
            return revision_of("", ref.digest)
        tag = ref.tag
        if ref.semver:
            try:
                tags = await self._within(deadline, client.tags(repo))
                tag = select_tag(ref, tags, (obj["spec"].get("layerSelector") or {}).get("mediaType") or "")
            except GitopsMeshError as e:
                fetch_failed(e, f"failed to determine the artifact tag for '{url}': {e}", READ_OPERATION_FAILED).fail(
                    obj, cause=e, now=self.clock()
                )
        try:
            descriptor = await self._within(deadline, client.resolve(repo, tag))
        except OciError as e:
            fetch_failed(e, f"failed to determine artifact digest: {e}", OCI_PULL_FAILED).fail(
                obj, cause=e, now=self.clock()
            )
        return revision_of(tag, descriptor.digest)

    async def _verify(
        self, obj: KubeObject, client: RegistryClient, repo: Repository, revision: str, deadline: float
    ) -> None:
        """spec.verify: a cosign signature of the manifest digest by one of the Secret's public keys."""
        spec = obj["spec"]
        if not spec.get("verify"):
            NOT_VERIFIED.apply(obj, now=self.clock())
            return
        if not needs_verification(obj, revision):
            return
        ns, secret = obj["metadata"]["namespace"], spec["verify"]["secretRef"]["name"]
        try:
            try:
                keys = cosign.load_public_keys(await secret_data(self.kube, ns, secret))
            except NotFound as e:
                raise TransientError(f"verification secret '{ns}/{secret}' not found") from e
            except cosign.InvalidPublicKey as e:
                raise TransientError(f"verification secret '{ns}/{secret}': {e}") from e
            await self._within(deadline, cosign.verify(client, repo, digest_of(revision), keys))
        except GitopsMeshError as e:
            verification_failed(e).fail(obj, cause=e, now=self.clock())
        verified(revision).apply(obj, now=self.clock())

    async def _pull(
        self,
        obj: KubeObject,
        client: RegistryClient,
        repo: Repository,
        revision: str,
        pull: Pull,
        tmp: Path,
        deadline: float,
    ) -> tuple[Manifest, Path]:
        """The manifest of ``revision`` and its selected layer, downloaded to a file in ``tmp``."""
        url = obj["spec"]["url"]
        try:
            manifest = await self._within(deadline, client.manifest(repo, digest_of(revision)))
        except OciError as e:
            fetch_failed(e, f"failed to pull artifact from '{url}': {e}", OCI_PULL_FAILED).fail(
                obj, cause=e, now=self.clock()
            )
        try:
            layer = select_layer(manifest, pull.media_type)
        except GitopsMeshError as e:
            fetch_failed(e, str(e), OCI_LAYER_OPERATION_FAILED).fail(obj, cause=e, now=self.clock())
        layer_file = tmp / "layer.tar.gz"
        try:
            await self._within(deadline, client.fetch_blob(repo, layer, layer_file))
        except OciError as e:
            fetch_failed(e, f"failed to pull artifact from '{url}': {e}", OCI_PULL_FAILED).fail(
                obj, cause=e, now=self.clock()
            )
        FETCHED.apply(obj, now=self.clock())
        return manifest, layer_file

    async def _store(
        self, obj: KubeObject, pull: Pull, revision: str, layer_file: Path, work: Path
    ) -> tuple[StoredArtifact, str]:
        """Copy the layer as it is, or extract it and pack what the ignore rules keep; link latest; GC."""
        ns, name, spec = obj["metadata"]["namespace"], obj["metadata"]["name"], obj["spec"]
        filename = f"{digest_of(revision).partition(':')[2]}.tar.gz"
        if pull.operation != COPY:
            try:
                await asyncio.to_thread(safe_extract, layer_file, work, _LIMITS)
                keep = await asyncio.to_thread(build_filter, work, spec.get("ignore"))
            except UnsafeArchive as e:
                error = TransientError(
                    f"failed to extract layer contents from artifact: {e}", reason=OCI_LAYER_OPERATION_FAILED
                )
                fetch_failed(error, str(error), OCI_LAYER_OPERATION_FAILED).fail(obj, cause=e, now=self.clock())
            except StorageError as e:
                storage_failed("artifact", e).fail(obj, cause=e, now=self.clock())
        try:
            if pull.operation == COPY:
                artifact = await self.storage.copy_file(KIND, ns, name, filename, layer_file)
            else:
                artifact = await self.storage.archive(KIND, ns, name, filename, work, include=keep)
            link = await self.storage.set_latest(artifact.path)
            await self.storage.gc(KIND, ns, name, current=filename)
        except (OSError, StorageError) as e:
            storage_failed("artifact", e).fail(obj, cause=e, now=self.clock())
        return artifact, link
