"""GitRepository: resolve the ref remotely, skip when nothing changed, else fetch, verify, pack, store, announce.

The decisions are :mod:`.gitrepository_plan`'s (pure); this module does the I/O between them.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gitops_mesh import stoppable
from gitops_mesh.artifacts.errors import StorageError
from gitops_mesh.artifacts.extract import safe_extract
from gitops_mesh.artifacts.storage import Storage, StoredArtifact
from gitops_mesh.errors import GitopsMeshError, InvalidSpec, NotFound, TransientError
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.informer import Informer
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.kube.secrets import secret_data
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.reconcile.result import Outcome
from gitops_mesh.settings import parse_duration
from gitops_mesh.watches import ref_key
from source_controller.artifact_status import artifact_status, in_storage
from source_controller.git import Commit, GitAuth, GitRef, Resolved, VerifyMode, build_filter, checkout, resolve, verify
from source_controller.git.archive import pack_commit, sourceignore_filter
from source_controller.gitrepository_plan import (
    FETCHED,
    NOT_VERIFIED,
    Fetch,
    Observed,
    fetch_failed,
    included_artifacts,
    plan,
    stored,
    verification_failed,
    verification_secret,
    verified,
)
from source_controller.status_edits import Done, storage_failed
from source_controller.unsupported import GIT_REPOSITORY, refuse_unsupported

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
        ns, spec = obj["metadata"]["namespace"], obj["spec"]
        refuse_unsupported(spec, GIT_REPOSITORY)
        auth = await self._auth(ns, spec)
        ref = GitRef.from_spec(spec.get("ref"))
        includes = included_artifacts(ns, spec, self.repositories.get)
        resolved = await self._resolve(obj, ref, auth)
        step = plan(obj, Observed(resolved.revision, in_storage(self.storage, obj), includes))
        if isinstance(step, Done):
            return step.apply(obj, now=self.clock())
        with tempfile.TemporaryDirectory(prefix="gitrepo-") as tmp:
            work = Path(tmp) / "src"
            commit = await self._checkout(obj, step, ref, auth, resolved, work)
            await self._verify(obj, work, commit)
            artifact = await self._store(obj, step, work, commit, includes)
        done = stored(obj, commit.revision, artifact_status(artifact, commit.revision), includes)
        if done.outcome.announce:
            log.info(
                "new artifact", namespace=ns, name=obj["metadata"]["name"], revision=commit.revision, size=artifact.size
            )
        return done.apply(obj, now=self.clock())

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

    async def _resolve(self, obj: KubeObject, ref: GitRef, auth: GitAuth | None) -> Resolved:
        """Where spec.ref points on the remote now (one ls-remote, nothing fetched)."""
        spec = obj["spec"]
        try:
            return await resolve(spec["url"], ref, auth, _timeout(spec))
        except GitopsMeshError as e:
            fetch_failed(e).apply(obj, now=self.clock())
            raise

    async def _checkout(
        self, obj: KubeObject, fetch: Fetch, ref: GitRef, auth: GitAuth | None, resolved: Resolved, work: Path
    ) -> Commit:
        spec = obj["spec"]
        try:
            commit = await checkout(
                spec["url"],
                ref,
                auth,
                work,
                _timeout(spec),
                recurse_submodules=fetch.recurse_submodules,
                sparse=fetch.sparse,
                max_size=self.max_repository_size,
                resolved=resolved,
                worktree=not fetch.streamed,
            )
        except GitopsMeshError as e:
            fetch_failed(e).apply(obj, now=self.clock())
            raise
        FETCHED.apply(obj, now=self.clock())
        return commit

    async def _verify(self, obj: KubeObject, work: Path, commit: Commit) -> None:
        """spec.verify: the commit's (or tag's) signature against the Secret's trusted keys."""
        verify_spec = obj["spec"].get("verify")
        if not verify_spec:
            NOT_VERIFIED.apply(obj, now=self.clock())
            return
        ns, secret = obj["metadata"]["namespace"], verification_secret(verify_spec)
        try:
            keys = await secret_data(self.kube, ns, secret)
        except NotFound as e:
            raise TransientError(f"verification secret '{ns}/{secret}' not found", reason="VerificationError") from e
        try:
            result = await verify(work, commit, VerifyMode.parse(verify_spec.get("mode") or "HEAD"), keys)
        except GitopsMeshError as e:
            verification_failed(e).apply(obj, now=self.clock())
            raise
        verified(result.message).apply(obj, now=self.clock())

    async def _store(
        self, obj: KubeObject, fetch: Fetch, work: Path, commit: Commit, includes: Sequence[dict[str, Any]]
    ) -> StoredArtifact:
        """Pack the commit (with its includes) into ``<hash>.tar.gz``, point latest at it, drop old ones."""
        ns, name, spec = obj["metadata"]["namespace"], obj["metadata"]["name"], obj["spec"]
        filename = f"{commit.hash}.tar.gz"
        try:
            if fetch.streamed:
                keep = await asyncio.to_thread(sourceignore_filter, work, commit.hash, spec.get("ignore"))
                # A cancelled reconcile (shutdown, deletion) stops the packing thread at its next path.
                cancelled = threading.Event()
                artifact = await self.storage.store_with(
                    KIND,
                    ns,
                    name,
                    filename,
                    lambda tmp_file: pack_commit(work, commit.hash, tmp_file, keep, cancelled=cancelled),
                    stop=stoppable.Stop(cancelled=cancelled),
                )
            else:
                for inc, included in zip(spec.get("include") or [], includes, strict=True):
                    await asyncio.to_thread(copy_include, self.storage.local_path(included["path"]), work, inc)
                artifact = await self.storage.archive(
                    KIND, ns, name, filename, work, include=build_filter(work, spec.get("ignore"))
                )
            await self.storage.set_latest(artifact.path)
            await self.storage.gc(KIND, ns, name, current=filename)
        except (OSError, StorageError) as e:
            storage_failed("artifact", e).fail(obj, cause=e, now=self.clock())
        return artifact


def _timeout(spec: dict[str, Any]) -> float:
    return parse_duration(spec.get("timeout") or "60s")


def copy_include(artifact: Path, work: Path, inc: dict[str, Any]) -> None:
    """Unpack another GitRepository's artifact and copy its fromPath to toPath inside ``work`` (blocking)."""
    with tempfile.TemporaryDirectory(prefix="include-") as tmp:
        root = Path(tmp).resolve()
        safe_extract(artifact, root)
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
