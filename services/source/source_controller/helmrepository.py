"""HelmRepository: fetch index.yaml, store it as ``index-<hex>.yaml`` when its digest changed, announce it.

Flux's behaviour kept: type ``default`` stores the index with revision ``sha256:<hex of the fetched bytes>``
and links ``index.yaml`` to it (``status.url``); type ``oci`` is static - Ready with no artifact, nothing
fetched (and an artifact left by an earlier ``default`` spec is removed). ``spec.insecure`` only matters to
OCI registries: plain ``http://`` index URLs are fetched as they are. A failed fetch leaves the stored
artifact (and ``status.artifact``) alone, so the HelmCharts built from it keep working.
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
from gitops_mesh.artifacts.storage import Storage
from gitops_mesh.bus.envelope import EventKind, Severity
from gitops_mesh.errors import GitopsMeshError, NotFound, TerminalError, TransientError
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.kube.secrets import secret_data
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import Announcement, Outcome
from gitops_mesh.runner import interval_of
from gitops_mesh.settings import parse_duration
from source_controller.artifact_status import artifact_status, bus_artifact
from source_controller.helm import (
    DEFAULT_MAX_INDEX_SIZE,
    InvalidIndex,
    RepositoryAuth,
    RepositoryFetchFailed,
    fetch_index,
)

API_VERSION = "source.toolkit.fluxcd.io/v1"
KIND = "HelmRepository"
#: The link next to the index artifacts that ``status.url`` points at, as Flux names it.
INDEX_LINK = "index.yaml"
OCI_READY_MESSAGE = "Helm repository is ready"
DEFAULT_TIMEOUT = "60s"

log = get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def is_oci(spec: Mapping[str, Any]) -> bool:
    return spec.get("type") == "oci"


def is_up_to_date(status: Mapping[str, Any], revision: str) -> bool:
    """Pure no-op check: the stored artifact already holds this index revision."""
    return bool((status.get("artifact") or {}).get("revision") == revision)


def stored_message(revision: str) -> str:
    return f"stored artifact: revision '{revision}'"


def fetch_error(error: GitopsMeshError) -> GitopsMeshError:
    """The error to report for a failed index fetch: Flux's wording, the same reason and retry class."""
    if isinstance(error, InvalidIndex):
        message = f"failed to load Helm repository from index YAML: {error}"
    elif isinstance(error, RepositoryFetchFailed):
        message = f"failed to fetch Helm repository index: {error}"
        if error.status == 404:
            message += "; spec.url must be the repository root, the directory holding index.yaml"
    else:
        return error
    if isinstance(error, TerminalError):
        return TerminalError(message, reason=error.reason)
    retry_after = error.retry_after if isinstance(error, TransientError) else None
    return TransientError(message, reason=error.reason, retry_after=retry_after)


async def repository_auth(kube: KubeClient, namespace: str, spec: Mapping[str, Any]) -> RepositoryAuth:
    """A HelmRepository's credentials and TLS material from spec.secretRef and spec.certSecretRef."""

    async def read(field: str) -> dict[str, bytes] | None:
        name = (spec.get(field) or {}).get("name")
        if not name:
            return None
        try:
            return await secret_data(kube, namespace, name)
        except NotFound as e:
            # A Secret created after its HelmRepository is normal: retry rather than stall.
            raise TransientError(f"{field} secret '{namespace}/{name}' not found", reason="AuthenticationFailed") from e

    secret = await read("secretRef")
    cert_secret = await read("certSecretRef")
    return RepositoryAuth.from_secrets(secret, cert_secret, pass_credentials=bool(spec.get("passCredentials")))


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
        meta, spec = obj["metadata"], obj["spec"]
        ns, name = meta["namespace"], meta["name"]
        status: dict[str, Any] = obj.setdefault("status", {})
        now = self.clock()
        if is_oci(spec):
            return await self._static(obj)

        url = spec["url"]
        try:
            auth = await repository_auth(self.kube, ns, spec)
            index = await fetch_index(
                self.http,
                url,
                auth=auth.credentials,
                ca=auth.ca,
                client_cert=auth.client_cert,
                timeout=parse_duration(spec.get("timeout") or DEFAULT_TIMEOUT),
                max_size=self.max_index_size,
            )
        except GitopsMeshError as e:
            error = fetch_error(e)
            c.mark_true(obj, c.ConditionType.FETCH_FAILED, error.reason, str(error), now=now)
            raise error from e
        c.delete(obj, c.ConditionType.FETCH_FAILED)
        if index.skipped_count:
            log.warning(
                "index entries dropped", namespace=ns, name=name, count=index.skipped_count, first=list(index.skipped)
            )

        revision = index.revision
        message = stored_message(revision)
        try:
            stored_path = (status.get("artifact") or {}).get("path")
            if is_up_to_date(status, revision) and stored_path and self.storage.exists(stored_path):
                c.mark_true(obj, c.ConditionType.ARTIFACT_IN_STORAGE, "Succeeded", message, now=now)
                c.delete(obj, c.ConditionType.ARTIFACT_OUTDATED)
                return Outcome.succeeded(requeue_after=interval_of(obj), message=message, reason="Succeeded")
            assert index.path is not None  # fetch_index always hands over its file
            try:
                stored = await self.storage.copy_file(KIND, ns, name, index.artifact_filename, index.path)
                link = await self.storage.set_latest(stored.path, INDEX_LINK)
                await self.storage.gc(KIND, ns, name, current=index.artifact_filename)
            except (OSError, StorageError) as e:
                c.mark_true(obj, c.ConditionType.STORAGE_OPERATION_FAILED, "ArchiveOperationFailed", str(e), now=now)
                raise TransientError(f"storing the index failed: {e}", reason="ArchiveOperationFailed") from e
        finally:
            if index.path is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(index.path)
        c.delete(obj, c.ConditionType.STORAGE_OPERATION_FAILED)

        previous = (status.get("artifact") or {}).get("revision")
        status["artifact"] = artifact_status(stored, revision)
        status["url"] = link
        c.mark_true(obj, c.ConditionType.ARTIFACT_IN_STORAGE, "Succeeded", message, now=now)
        c.delete(obj, c.ConditionType.ARTIFACT_OUTDATED)
        announce = []
        if previous != revision:
            announce.append(
                Announcement(
                    EventKind.ARTIFACT_READY,
                    "NewArtifact",
                    f"stored fetched index of size {stored.size} from '{url}'",
                    revision=revision,
                    severity=Severity.INFO,
                    artifact=bus_artifact(status["artifact"]),
                )
            )
            log.info("new index", namespace=ns, name=name, revision=revision, size=stored.size, charts=len(index))
        return Outcome.succeeded(requeue_after=interval_of(obj), message=message, reason="Succeeded", announce=announce)

    async def finalize(self, obj: KubeObject) -> None:
        meta = obj["metadata"]
        await self.storage.remove_all(KIND, meta["namespace"], meta["name"])

    async def _static(self, obj: KubeObject) -> Outcome:
        """type: oci - nothing to fetch; Ready, without an artifact (one from a former spec is removed)."""
        meta, status = obj["metadata"], obj["status"]
        if status.get("artifact") or status.get("url"):
            try:
                await self.storage.remove_all(KIND, meta["namespace"], meta["name"])
            except StorageError as e:
                raise TransientError(f"removing the former index artifact failed: {e}", reason=e.reason) from e
            status.pop("artifact", None)
            status.pop("url", None)
        for cond in (
            c.ConditionType.ARTIFACT_IN_STORAGE,
            c.ConditionType.ARTIFACT_OUTDATED,
            c.ConditionType.FETCH_FAILED,
            c.ConditionType.STORAGE_OPERATION_FAILED,
        ):
            c.delete(obj, cond)
        # Nothing changes without a spec change, so no periodic run.
        return Outcome.succeeded(requeue_after=None, message=OCI_READY_MESSAGE, reason="Succeeded")
