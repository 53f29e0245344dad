"""Bucket: list the bucket, skip when the index is unchanged, else fetch what changed, pack, store, announce.

The decisions are :mod:`.bucket_plan`'s (pure) and :mod:`.objectstore.index`'s (the revision, keys, limits);
this module does the I/O between them: the Secrets, one provider client per reconcile (:mod:`.objectstore.s3`,
:mod:`.objectstore.azure`), the listing, the parallel fetch into the Bucket's object cache, and the artifact.
An unchanged bucket costs one listing (and no download: the root .sourceignore comes from the cache); on S3
that listing asks for its key ranges at once, and when every page is byte for byte the one the known revision
was computed from, the revision is that one without parsing or hashing the keys again (:meth:`_index`).
A failed reconcile leaves the stored artifact and status.artifact alone, so consumers keep the last one.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiobotocore.session import AioSession

from gitops_mesh.artifacts.errors import StorageError
from gitops_mesh.artifacts.storage import Storage, StoredArtifact
from gitops_mesh.errors import GitopsMeshError, NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.kube.secrets import secret_data
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.reconcile.result import Outcome
from gitops_mesh.settings import parse_duration
from source_controller.artifact_status import artifact_status, in_storage
from source_controller.bucket_plan import (
    AWS,
    AZURE,
    GCP,
    Fetch,
    Observed,
    fetch_failed,
    plan,
    provider_of,
    refuse_provider_fields,
    stored,
)
from source_controller.git.ignore import IGNORE_FILE
from source_controller.objectstore.auth import azure_credential, proxy_url, s3_keys, tls_material
from source_controller.objectstore.azure import open_azure
from source_controller.objectstore.cache import ObjectCache, link_tree
from source_controller.objectstore.errors import AuthenticationFailed, BucketOperationFailed
from source_controller.objectstore.fetch import (
    Fetched,
    RangedBucketClient,
    fetch_objects,
    list_objects,
    list_ranged,
    read_sourceignore,
)
from source_controller.objectstore.gcs import open_gcp_bucket
from source_controller.objectstore.index import Index, Limits, Listed, build_index, ignore_filter
from source_controller.objectstore.provider import BucketClient
from source_controller.objectstore.s3 import open_s3, sealed_session
from source_controller.objectstore.s3_ranges import RangedListing
from source_controller.objectstore.sts import with_sts
from source_controller.status_edits import Done, storage_failed
from source_controller.unsupported import BUCKET, refuse_unsupported

API_VERSION = "source.toolkit.fluxcd.io/v1"
KIND = "Bucket"
DEFAULT_TIMEOUT = "60s"
#: Downloads in flight per Bucket (Flux: 100 goroutines); also the client's connection pool.
DEFAULT_CONCURRENCY = 64

log = get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Indexed:
    """A listing's revision; its index unless the listing is the known one (nothing indexed); the root
    .sourceignore's cache entry."""

    revision: str
    index: Index | None
    sourceignore: tuple[str, str] | None


@dataclass(frozen=True, slots=True)
class _Known:
    """What a Bucket's last listing was (ranges and page digests, not its objects) and the revision it gave:
    a few hundred bytes per Bucket, dropped by the finalizer."""

    #: provider, endpoint, bucket, prefix, region: what the listing is of
    where: tuple[str, ...]
    listing: RangedListing
    #: the root .sourceignore as listed (its etag is the listing's, so an unchanged listing has it too)
    sourceignore: Listed | None
    #: the .sourceignore entry, spec.ignore and the limits the revision was indexed under
    inputs: tuple[object, ...]
    revision: str


@dataclass(frozen=True, slots=True)
class _Secrets:
    secret: dict[str, bytes] | None
    cert: dict[str, bytes] | None
    proxy: dict[str, bytes] | None


@dataclass
class BucketReconciler:
    """Bucket's inner work; the runner does finalizers, suspend, conditions and the status patch."""

    kube: KubeClient
    storage: Storage
    limits: Limits
    concurrency: int = DEFAULT_CONCURRENCY
    clock: Callable[[], datetime] = _now
    #: One botocore session for every S3 client: the S3 model is loaded once, not each reconcile.
    s3_session: AioSession = field(default_factory=sealed_session, repr=False)
    #: Each Bucket's last listing, by (namespace, name): see :meth:`_index`.
    _known: dict[tuple[str, str], _Known] = field(default_factory=dict, init=False, repr=False)

    api_version: str = API_VERSION
    kind: str = KIND

    async def reconcile(self, obj: KubeObject) -> Outcome:
        spec = obj["spec"]
        refuse_unsupported(spec, BUCKET)
        refuse_provider_fields(spec)
        timeout = parse_duration(spec.get("timeout") or DEFAULT_TIMEOUT)
        cache = self._cache(obj)
        try:
            secrets = await self._secrets(obj)
            async with self._client(obj, secrets, timeout) as client:
                indexed = await self._index(obj, client, cache, timeout)
                step = plan(obj, Observed(indexed.revision, in_storage(self.storage, obj)))
                if isinstance(step, Fetch) and indexed.index is None:
                    # The listing is the known one, but the artifact must be built again: read it whole.
                    indexed = await self._index(obj, client, cache, timeout, reuse=False)
                    step = plan(obj, Observed(indexed.revision, in_storage(self.storage, obj)))
                if isinstance(step, Done):
                    return step.apply(obj, now=self.clock())
                assert isinstance(step, Fetch)
                assert indexed.index is not None
                index, sourceignore = indexed.index, indexed.sourceignore
                step.edit.apply(obj, now=self.clock())
                # Objects no longer listed (or at another etag) leave the cache: it stays within the limits.
                keep = list(index.etags.items()) + ([sourceignore] if sourceignore else [])
                await asyncio.to_thread(cache.prune, keep)
                fetched = await self._fetch(obj, client, index, cache, timeout)
        except GitopsMeshError as e:
            fetch_failed(e).fail(obj, cause=e, now=self.clock())
        revision = index.revision  # again: objects that changed during the fetch changed the index
        artifact, url = await self._store(obj, index, cache, revision, sourceignore)
        done = stored(obj, revision, artifact_status(artifact, revision), url, len(index))
        if done.outcome.announce:
            meta = obj["metadata"]
            log.info(
                "new artifact",
                namespace=meta["namespace"],
                name=meta["name"],
                revision=revision,
                objects=len(index),
                downloaded=fetched.downloaded,
                reused=fetched.reused,
                size=artifact.size,
            )
        return done.apply(obj, now=self.clock())

    async def finalize(self, obj: KubeObject) -> None:
        # The object directory holds the artifacts and the object cache: both go.
        meta = obj["metadata"]
        self._known.pop((meta["namespace"], meta["name"]), None)
        await self.storage.remove_all(KIND, meta["namespace"], meta["name"])

    def _cache(self, obj: KubeObject) -> ObjectCache:
        meta = obj["metadata"]
        return ObjectCache(self.storage.root / Storage.object_dir(KIND, meta["namespace"], meta["name"]))

    async def _secrets(self, obj: KubeObject) -> _Secrets:
        ns, spec = obj["metadata"]["namespace"], obj["spec"]

        async def read(ref: Any) -> dict[str, bytes] | None:
            name = (ref or {}).get("name")
            if not name:
                return None
            try:
                return await secret_data(self.kube, ns, name)
            except NotFound:
                # A Secret created after its Bucket is normal: retried, as Flux retries it.
                raise AuthenticationFailed(f"failed to get secret '{ns}/{name}': not found") from None

        return _Secrets(
            await read(spec.get("secretRef")),
            await read(spec.get("certSecretRef")),
            await read(spec.get("proxySecretRef")),
        )

    @contextlib.asynccontextmanager
    async def _client(self, obj: KubeObject, secrets: _Secrets, timeout: float) -> AsyncIterator[BucketClient]:
        ns, spec = obj["metadata"]["namespace"], obj["spec"]
        provider = provider_of(spec)
        proxy = proxy_url(ns, (spec.get("proxySecretRef") or {}).get("name", ""), secrets.proxy)
        secret_name = (spec.get("secretRef") or {}).get("name", "")
        if provider == AZURE:
            credential = azure_credential(secret_name, spec["endpoint"], secrets.secret)
            async with open_azure(
                endpoint=spec["endpoint"],
                container=spec["bucketName"],
                credential=credential,
                proxy=proxy,
                timeout=timeout,
            ) as azure:
                yield azure
            return
        if provider == GCP:
            async with open_gcp_bucket(
                spec=spec,
                secret_name=secret_name,
                secret=secrets.secret,
                proxy=proxy,
                timeout=timeout,
                max_connections=self.concurrency,
            ) as gcs:
                yield gcs
            return
        keys = await with_sts(self.kube, obj, s3_keys(secret_name, secrets.secret), proxy=proxy, timeout=timeout)
        tls = tls_material((spec.get("certSecretRef") or {}).get("name", ""), secrets.cert)
        async with open_s3(
            endpoint=spec["endpoint"],
            bucket=spec["bucketName"],
            insecure=bool(spec.get("insecure")),
            region=spec.get("region"),
            keys=keys,
            tls=tls,
            proxy=proxy,
            aws=provider == AWS,
            timeout=timeout,
            max_connections=self.concurrency,
            session=self.s3_session,
        ) as s3:
            yield s3

    async def _index(
        self, obj: KubeObject, client: BucketClient, cache: ObjectCache, timeout: float, *, reuse: bool = True
    ) -> _Indexed:
        """The listing as Flux's etag index (its revision, at least), within spec.timeout.

        With a client that lists by ranges, a listing whose every page is byte for byte the one the last
        revision was computed from, under the same ignore rules and limits, is that revision again: nothing
        is parsed, filtered or hashed (``index`` None). ``reuse=False`` reads and indexes it whole.
        """
        meta, spec = obj["metadata"], obj["spec"]
        bucket, prefix = spec["bucketName"], spec.get("prefix") or ""
        key = (meta["namespace"], meta["name"])
        where = (provider_of(spec), spec.get("endpoint") or "", bucket, prefix, spec.get("region") or "")
        known = self._known.get(key) if reuse else None
        if known is not None and known.where != where:
            known = None
        # Deleted keys and "directories" are listed too: allow some room over the object cap.
        max_listed = 2 * self.limits.max_objects + 1000
        try:
            async with asyncio.timeout(timeout):
                if isinstance(client, RangedBucketClient):
                    ranged = await list_ranged(client, bucket, prefix, max_listed, known.listing if known else None)
                    if ranged.objects is None:
                        assert known is not None  # an unchanged listing is one compared with a known one
                        listed = [known.sourceignore] if known.sourceignore else []
                    else:
                        listed = ranged.objects
                else:
                    ranged = None
                    listed = await list_objects(client, bucket, prefix, max_listed)
                text, entry = await read_sourceignore(client, cache, listed, prefix)
        except TimeoutError:
            raise BucketOperationFailed(
                f"indexation of objects from bucket '{bucket}' failed: timed out after {timeout:g}s"
            ) from None
        inputs = (entry, spec.get("ignore"), self.limits)
        if ranged is not None and ranged.objects is None:
            assert known is not None
            if known.inputs == inputs:
                return _Indexed(known.revision, None, entry)
            # Same objects, other rules: index them again from a whole listing.
            return await self._index(obj, client, cache, timeout, reuse=False)
        keep = await asyncio.to_thread(ignore_filter, text, spec.get("ignore"))
        index = await asyncio.to_thread(build_index, bucket, listed, keep, self.limits)
        if ranged is not None:
            root = next((o for o in listed if o.key == IGNORE_FILE), None)
            # What the next listing is compared with; the objects themselves are not kept.
            self._known[key] = _Known(where, replace(ranged, objects=None), root, inputs, index.revision)
        return _Indexed(index.revision, index, entry)

    async def _fetch(
        self, obj: KubeObject, client: BucketClient, index: Index, cache: ObjectCache, timeout: float
    ) -> Fetched:
        bucket = obj["spec"]["bucketName"]
        try:
            async with asyncio.timeout(timeout):
                return await fetch_objects(
                    client,
                    bucket,
                    index,
                    cache,
                    concurrency=self.concurrency,
                    max_object_size=self.limits.max_object_size,
                )
        except TimeoutError:
            raise BucketOperationFailed(f"fetch from bucket '{bucket}' failed: timed out after {timeout:g}s") from None

    async def _store(
        self, obj: KubeObject, index: Index, cache: ObjectCache, revision: str, sourceignore: tuple[str, str] | None
    ) -> tuple[StoredArtifact, str]:
        """Link the cached objects into a tree, pack it as ``<hex>.tar.gz``, point latest at it, drop old ones."""
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        filename = f"{revision.removeprefix('sha256:')}.tar.gz"
        work = cache.directory.parent / f".work-{uuid.uuid4().hex[:12]}"
        objects = index.etags
        try:
            async with self.storage.lock(KIND, ns, name):
                try:
                    await asyncio.to_thread(link_tree, cache, objects, work)
                    work.mkdir(exist_ok=True)  # an empty bucket is an empty artifact
                    artifact = await self.storage.archive(KIND, ns, name, filename, work)
                finally:
                    await asyncio.to_thread(shutil.rmtree, work, True)
                url = await self.storage.set_latest(artifact.path)
                await self.storage.gc(KIND, ns, name, current=filename)
                keep = list(objects.items()) + ([sourceignore] if sourceignore else [])
                await asyncio.to_thread(cache.prune, keep)
        except (OSError, StorageError) as e:
            storage_failed("artifact", e).fail(obj, cause=e, now=self.clock())
        return artifact, url


def cache_dir(storage_root: Path, namespace: str, name: str) -> Path:
    """Where a Bucket's object cache lives (tests and tools look there)."""
    return ObjectCache(storage_root / Storage.object_dir(KIND, namespace, name)).directory
