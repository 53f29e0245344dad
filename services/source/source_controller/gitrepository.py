"""GitRepository: resolve the ref remotely, skip when nothing changed, else fetch, verify, pack, store, announce."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gitops_mesh.artifacts.errors import StorageError
from gitops_mesh.artifacts.extract import ExtractLimits, safe_extract
from gitops_mesh.artifacts.storage import Storage
from gitops_mesh.bus.envelope import EventKind, Severity
from gitops_mesh.errors import DependencyNotReady, GitopsMeshError, InvalidSpec, NotFound, TransientError
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.informer import Informer
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.kube.secrets import secret_data
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import Announcement, Outcome
from gitops_mesh.runner import interval_of
from gitops_mesh.settings import parse_duration
from gitops_mesh.watches import is_ready_at_generation, ref_key
from source_controller.artifact_status import artifact_status, bus_artifact
from source_controller.git import Commit, GitAuth, GitRef, VerifyMode, build_filter, checkout, resolve, verify
from source_controller.git.archive import pack_commit, sourceignore_filter

API_VERSION = "source.toolkit.fluxcd.io/v1"
KIND = "GitRepository"

log = get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


#: The GitRepository cache's index of the repositories each one includes.
INCLUDE_INDEX = "include"


def included_repositories(obj: KubeObject) -> list[str]:
    """Index values: the GitRepositories ``spec.include`` names (same namespace), so their news wakes us."""
    ns = (obj.get("metadata") or {}).get("namespace") or ""
    return [
        ref_key(KIND, ns, inc["repository"]["name"])
        for inc in (obj.get("spec") or {}).get("include") or []
        if (inc.get("repository") or {}).get("name")
    ]


def observed_config(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec fields that change an artifact's content without changing the commit (Flux's observed*)."""
    observed: dict[str, Any] = {}
    if spec.get("ignore") is not None:
        observed["observedIgnore"] = spec["ignore"]
    if spec.get("recurseSubmodules"):
        observed["observedRecurseSubmodules"] = True
    if spec.get("sparseCheckout"):
        observed["observedSparseCheckout"] = list(spec["sparseCheckout"])
    if spec.get("include"):
        observed["observedInclude"] = list(spec["include"])
    return observed


_OBSERVED_KEYS = ("observedIgnore", "observedRecurseSubmodules", "observedSparseCheckout", "observedInclude")


def is_up_to_date(status: dict[str, Any], revision: str, spec: dict[str, Any], includes: list[dict[str, Any]]) -> bool:
    """Pure no-op check: same revision, same content-shaping spec, same included artifacts, verified if asked."""
    artifact = status.get("artifact") or {}
    if artifact.get("revision") != revision:
        return False
    wanted = observed_config(spec)
    if any(status.get(k) != wanted.get(k) for k in _OBSERVED_KEYS):
        return False
    if [a.get("digest") for a in status.get("includedArtifacts") or []] != [a.get("digest") for a in includes]:
        return False
    verified = c.is_true(status.get("conditions") or [], c.ConditionType.SOURCE_VERIFIED)
    return verified or not spec.get("verify")


@dataclass
class GitRepositoryReconciler:
    """GitRepository's inner work; the runner does finalizers, suspend, conditions and the status patch.

    ``repositories`` is the process's GitRepository cache: included repositories are read there.
    """

    kube: KubeClient
    storage: Storage
    repositories: Informer
    max_repository_size: int = 1 << 30
    clock: Callable[[], datetime] = _now

    api_version: str = API_VERSION
    kind: str = KIND

    async def reconcile(self, obj: KubeObject) -> Outcome:
        meta, spec = obj["metadata"], obj["spec"]
        ns, name = meta["namespace"], meta["name"]
        status: dict[str, Any] = obj.setdefault("status", {})
        now = self.clock()
        url = spec["url"]
        timeout = parse_duration(spec.get("timeout") or "60s")
        auth = await self._auth(ns, spec)
        ref = GitRef.from_spec(spec.get("ref"))
        includes = self._includes(ns, spec)
        try:
            resolved = await resolve(url, ref, auth, timeout)
        except GitopsMeshError as e:
            c.mark_true(obj, c.ConditionType.FETCH_FAILED, e.reason, str(e), now=now)
            raise

        stored_path = (status.get("artifact") or {}).get("path")
        if (
            is_up_to_date(status, resolved.revision, spec, includes)
            and stored_path
            and self.storage.exists(stored_path)
        ):
            c.delete(obj, c.ConditionType.FETCH_FAILED)
            c.delete(obj, c.ConditionType.ARTIFACT_OUTDATED)
            return Outcome.succeeded(
                requeue_after=interval_of(obj), message=f"stored artifact for revision '{resolved.revision}'"
            )

        # Without include/submodules/sparse nothing needs files on disk: stream the commit into the artifact.
        streamed = not (spec.get("include") or spec.get("recurseSubmodules") or spec.get("sparseCheckout"))
        with tempfile.TemporaryDirectory(prefix="gitrepo-") as tmp:
            work = Path(tmp) / "src"
            try:
                commit = await checkout(
                    url,
                    ref,
                    auth,
                    work,
                    timeout,
                    recurse_submodules=bool(spec.get("recurseSubmodules")),
                    sparse=tuple(spec.get("sparseCheckout") or ()),
                    max_size=self.max_repository_size,
                    resolved=resolved,
                    worktree=not streamed,
                )
            except GitopsMeshError as e:
                c.mark_true(obj, c.ConditionType.FETCH_FAILED, e.reason, str(e), now=now)
                raise
            c.delete(obj, c.ConditionType.FETCH_FAILED)
            if spec.get("verify"):
                await self._verify(obj, work, commit, spec["verify"], ns, now)
            else:
                c.delete(obj, c.ConditionType.SOURCE_VERIFIED)
            filename = f"{commit.hash}.tar.gz"
            try:
                if streamed:
                    keep = await asyncio.to_thread(sourceignore_filter, work, commit.hash, spec.get("ignore"))
                    stored = await self.storage.store_with(
                        KIND, ns, name, filename, lambda tmp_file: pack_commit(work, commit.hash, tmp_file, keep)
                    )
                else:
                    await self._copy_includes(work, spec, includes, ns)
                    keep = build_filter(work, spec.get("ignore"))
                    stored = await self.storage.archive(KIND, ns, name, filename, work, include=keep)
                await self.storage.set_latest(stored.path)
                await self.storage.gc(KIND, ns, name, current=filename)
            except (OSError, StorageError) as e:
                c.mark_true(obj, c.ConditionType.STORAGE_OPERATION_FAILED, "ArchiveOperationFailed", str(e), now=now)
                raise TransientError(f"storing the artifact failed: {e}", reason="ArchiveOperationFailed") from e
        c.delete(obj, c.ConditionType.STORAGE_OPERATION_FAILED)

        previous = (status.get("artifact") or {}).get("revision")
        status["artifact"] = artifact_status(stored, commit.revision)
        for key in _OBSERVED_KEYS:
            status.pop(key, None)
        status.update(observed_config(spec))
        if includes:
            status["includedArtifacts"] = includes
        else:
            status.pop("includedArtifacts", None)
        message = f"stored artifact for revision '{commit.revision}'"
        c.mark_true(obj, c.ConditionType.ARTIFACT_IN_STORAGE, "Succeeded", message, now=now)
        c.delete(obj, c.ConditionType.ARTIFACT_OUTDATED)
        announce = []
        if previous != commit.revision:
            announce.append(
                Announcement(
                    EventKind.ARTIFACT_READY,
                    "NewArtifact",
                    message,
                    revision=commit.revision,
                    severity=Severity.INFO,
                    artifact=bus_artifact(status["artifact"]),
                )
            )
            log.info("new artifact", namespace=ns, name=name, revision=commit.revision, size=stored.size)
        return Outcome.succeeded(requeue_after=interval_of(obj), message=message, announce=announce)

    async def finalize(self, obj: KubeObject) -> None:
        meta = obj["metadata"]
        await self.storage.remove_all(KIND, meta["namespace"], meta["name"])

    async def _auth(self, ns: str, spec: dict[str, Any]) -> GitAuth | None:
        ref = (spec.get("secretRef") or {}).get("name")
        if not ref:
            return GitAuth.from_secret(None)
        try:
            return GitAuth.from_secret(await secret_data(self.kube, ns, ref))
        except NotFound as e:
            # A Secret created after its GitRepository is normal: retry rather than stall.
            raise TransientError(f"secret '{ns}/{ref}' not found", reason="AuthenticationFailed") from e

    async def _verify(
        self, obj: KubeObject, work: Path, commit: Commit, verify_spec: dict[str, Any], ns: str, now: datetime
    ) -> None:
        secret = (verify_spec.get("secretRef") or {}).get("name")
        if not secret:
            raise InvalidSpec("spec.verify.secretRef is required to verify signatures")
        try:
            keys = await secret_data(self.kube, ns, secret)
        except NotFound as e:
            raise TransientError(f"verification secret '{ns}/{secret}' not found", reason="VerificationError") from e
        try:
            verified = await verify(work, commit, VerifyMode.parse(verify_spec.get("mode") or "HEAD"), keys)
        except GitopsMeshError as e:
            c.mark_false(obj, c.ConditionType.SOURCE_VERIFIED, e.reason, str(e), now=now)
            raise
        c.mark_true(obj, c.ConditionType.SOURCE_VERIFIED, "Succeeded", verified.message, now=now)

    def _includes(self, ns: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
        """The artifacts of spec.include's GitRepositories, which must be Ready at their generation (else we
        wait: their new artifact wakes us through the include index)."""
        out = []
        for inc in spec.get("include") or []:
            name = inc["repository"]["name"]
            other = self.repositories.get(ns, name)
            if other is None:
                raise DependencyNotReady(f"included GitRepository '{ns}/{name}' not found")
            artifact = (other.get("status") or {}).get("artifact")
            if not artifact or not is_ready_at_generation(other):
                raise DependencyNotReady(f"included GitRepository '{ns}/{name}' has no artifact yet")
            out.append(artifact)
        return out

    async def _copy_includes(self, work: Path, spec: dict[str, Any], includes: list[dict[str, Any]], ns: str) -> None:
        for inc, artifact in zip(spec.get("include") or [], includes, strict=True):
            await asyncio.to_thread(copy_include, self.storage.local_path(artifact["path"]), work, inc)


def copy_include(artifact: Path, work: Path, inc: dict[str, Any]) -> None:
    """Unpack another GitRepository's artifact and copy its fromPath to toPath inside ``work`` (blocking)."""
    with tempfile.TemporaryDirectory(prefix="include-") as tmp:
        root = Path(tmp).resolve()
        limits = ExtractLimits()
        safe_extract(artifact, root, max_total_bytes=limits.max_total_bytes, max_entries=limits.max_entries)
        from_path = (root / (inc.get("fromPath") or ".").strip("/")).resolve()
        to_path = (work / (inc.get("toPath") or inc["repository"]["name"]).strip("/")).resolve()
        if (
            not from_path.is_relative_to(root)
            or not to_path.is_relative_to(work.resolve())
            or to_path == work.resolve()
        ):
            raise InvalidSpec(f"spec.include paths must stay inside the repositories: {inc}")
        if not from_path.is_dir():
            raise InvalidSpec(f"spec.include fromPath '{inc.get('fromPath')}' is not a directory of the artifact")
        if to_path.exists():
            shutil.rmtree(to_path)
        shutil.copytree(from_path, to_path, symlinks=False)
