"""HelmRepository: fetch index.yaml, store it as ``index-<hex>.yaml`` when its digest changed, announce it.

Flux's behaviour kept: type ``default`` stores the index with revision ``sha256:<hex of the fetched bytes>``
and links ``index.yaml`` to it (``status.url``); type ``oci`` has no artifact (one left by an earlier
``default`` spec is removed) and is Ready once the registry answers its API root to the Secret's credentials
(a login, as Flux's v1beta2 OCI reconciler did; without credentials nothing is contacted, as in Flux).
``spec.insecure`` only matters to OCI registries: plain ``http://`` index URLs are fetched as they are. A
failed fetch leaves the stored artifact (and ``status.artifact``) alone, so the HelmCharts built from it keep
working.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from gitops_mesh.artifacts.errors import StorageError
from gitops_mesh.artifacts.storage import Storage, StoredArtifact
from gitops_mesh.errors import GitopsMeshError, NotFound, TransientError
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.kube.secrets import secret_data
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.oci import RegistryClient
from gitops_mesh.reconcile.result import Outcome
from gitops_mesh.settings import parse_duration
from source_controller.artifact_status import artifact_status, in_storage
from source_controller.helm import DEFAULT_MAX_INDEX_SIZE, IndexFile, RepositoryAuth, fetch_index
from source_controller.helm.oci import InvalidOciUrl, OciLocation, parse_oci_url
from source_controller.helm.oci_pull import login, oci_auth, registry_client
from source_controller.helmrepository_plan import (
    Observed,
    fetch_failed,
    holds_artifact,
    index_stored,
    is_oci,
    oci_ready,
    oci_url_invalid,
    plan,
)
from source_controller.status_edits import Done, storage_failed
from source_controller.unsupported import HELM_REPOSITORY, refuse_unsupported

API_VERSION = "source.toolkit.fluxcd.io/v1"
KIND = "HelmRepository"
#: The link next to the index artifacts that ``status.url`` points at, as Flux names it.
INDEX_LINK = "index.yaml"
DEFAULT_TIMEOUT = "60s"

log = get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


async def _read_secret(
    kube: KubeClient, namespace: str, spec: Mapping[str, Any], field: str
) -> dict[str, bytes] | None:
    """The data of the Secret ``spec.<field>`` names, None when it names none."""
    name = (spec.get(field) or {}).get("name")
    if not name:
        return None
    try:
        return await secret_data(kube, namespace, name)
    except NotFound as e:
        # A Secret created after its HelmRepository is normal: retry rather than stall.
        raise TransientError(f"{field} secret '{namespace}/{name}' not found", reason="AuthenticationFailed") from e


async def repository_auth(kube: KubeClient, namespace: str, spec: Mapping[str, Any]) -> RepositoryAuth:
    """A HelmRepository's credentials and TLS material from spec.secretRef and spec.certSecretRef."""
    secret = await _read_secret(kube, namespace, spec, "secretRef")
    cert_secret = await _read_secret(kube, namespace, spec, "certSecretRef")
    return RepositoryAuth.from_secrets(secret, cert_secret, pass_credentials=bool(spec.get("passCredentials")))


async def oci_repository_client(
    kube: KubeClient, http: aiohttp.ClientSession, namespace: str, spec: Mapping[str, Any]
) -> tuple[OciLocation, RegistryClient, bool]:
    """An OCI HelmRepository's registry, a client of it with the Secrets' credentials and TLS material, and
    whether it goes anonymous (no credentials)."""
    try:
        location = parse_oci_url(str(spec.get("url") or ""))
    except InvalidOciUrl as e:
        raise oci_url_invalid(e) from e
    secret = await _read_secret(kube, namespace, spec, "secretRef")
    cert_secret = await _read_secret(kube, namespace, spec, "certSecretRef")
    auth = oci_auth(location.registry, secret, cert_secret, secret_name=(spec.get("secretRef") or {}).get("name") or "")
    client = registry_client(http, location, auth, insecure=bool(spec.get("insecure")), timeout=oci_timeout(spec))
    return location, client, auth.credentials is None


def oci_timeout(spec: Mapping[str, Any]) -> float:
    """How long one registry operation of the repository may take (spec.timeout, Flux's default 60s)."""
    return parse_duration(spec.get("timeout") or DEFAULT_TIMEOUT)


@dataclass
class HelmRepositoryReconciler:
    """HelmRepository's inner work; the runner does finalizers, suspend, conditions and the status patch."""

    kube: KubeClient
    storage: Storage
    http: aiohttp.ClientSession
    max_index_size: int = DEFAULT_MAX_INDEX_SIZE
    clock: Callable[[], datetime] = _now

    api_version: str = API_VERSION
    kind: str = KIND

    async def reconcile(self, obj: KubeObject) -> Outcome:
        refuse_unsupported(obj["spec"], HELM_REPOSITORY)
        if is_oci(obj["spec"]):
            return await self._static(obj)
        index = await self._fetch(obj)
        try:
            step = plan(obj, Observed(index.revision, in_storage(self.storage, obj)))
            if isinstance(step, Done):
                return step.apply(obj, now=self.clock())
            step.edit.apply(obj, now=self.clock())
            artifact, link = await self._store(obj, index)
        finally:
            if index.path is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(index.path)
        done = index_stored(obj, index.revision, artifact_status(artifact, index.revision), link)
        if done.outcome.announce:
            meta = obj["metadata"]
            log.info(
                "new index",
                namespace=meta["namespace"],
                name=meta["name"],
                revision=index.revision,
                size=artifact.size,
                charts=len(index),
            )
        return done.apply(obj, now=self.clock())

    async def finalize(self, obj: KubeObject) -> None:
        meta = obj["metadata"]
        await self.storage.remove_all(KIND, meta["namespace"], meta["name"])

    async def _fetch(self, obj: KubeObject) -> IndexFile:
        """The repository's index.yaml, into a temporary file (``index.path``) the caller removes."""
        meta, spec = obj["metadata"], obj["spec"]
        try:
            auth = await repository_auth(self.kube, meta["namespace"], spec)
            index = await fetch_index(
                self.http,
                spec["url"],
                auth=auth.credentials,
                ca=auth.ca,
                client_cert=auth.client_cert,
                timeout=parse_duration(spec.get("timeout") or DEFAULT_TIMEOUT),
                max_size=self.max_index_size,
            )
        except GitopsMeshError as e:
            fetch_failed(e).fail(obj, cause=e, now=self.clock())
        if index.skipped_count:
            log.warning(
                "index entries dropped",
                namespace=meta["namespace"],
                name=meta["name"],
                count=index.skipped_count,
                first=list(index.skipped),
            )
        return index

    async def _store(self, obj: KubeObject, index: IndexFile) -> tuple[StoredArtifact, str]:
        """Store the index as ``index-<hex>.yaml``, link index.yaml to it, drop old ones."""
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        assert index.path is not None  # fetch_index always hands over its file
        try:
            artifact = await self.storage.copy_file(KIND, ns, name, index.artifact_filename, index.path)
            link = await self.storage.set_latest(artifact.path, INDEX_LINK)
            await self.storage.gc(KIND, ns, name, current=index.artifact_filename)
        except (OSError, StorageError) as e:
            storage_failed("index", e).fail(obj, cause=e, now=self.clock())
        return artifact, link

    async def _static(self, obj: KubeObject) -> Outcome:
        """type: oci - no artifact (one from a former spec is removed); Ready once a login with the Secret's
        credentials succeeds (at once without credentials); the URL and Secrets are checked either way."""
        meta, spec = obj["metadata"], obj["spec"]
        if holds_artifact(obj):
            try:
                await self.storage.remove_all(KIND, meta["namespace"], meta["name"])
            except StorageError as e:
                raise TransientError(f"removing the former index artifact failed: {e}", reason=e.reason) from e
        location, client, anonymous = await oci_repository_client(self.kube, self.http, meta["namespace"], spec)
        if not anonymous:
            await login(client, location.url, timeout=oci_timeout(spec))
        return oci_ready(obj).apply(obj, now=self.clock())
