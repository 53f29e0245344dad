"""Apply, the I/O: staged server-side apply, concurrent within a wave, drift taken back, force recreates."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gitops_mesh.errors import Conflict, GitopsMeshError, Invalid, NotFound, TransientError
from gitops_mesh.kube import health
from gitops_mesh.kube.client import KubeClient, PatchType
from gitops_mesh.kube.objects import KubeObject, metadata, uid
from kustomize_controller.apply.changeset import Action, ChangeSet, ChangeSetEntry, ObjectFailure, failed
from kustomize_controller.apply.inventory import ObjectId
from kustomize_controller.apply.objects import (
    DEFAULT_FIELD_MANAGER,
    ENABLED,
    FORCE_ANNOTATION,
    Owner,
    Stage,
    changed,
    cleanup_patch,
    force_enabled,
    is_immutable_error,
    keeps_foreign_fields,
    skip_apply,
    split_stages,
    subject_of,
    validate,
    waves,
    with_namespace,
    with_owner_labels,
)

#: Parallel requests per apply_all call; each object holds one slot for its GET, cleanup and apply.
DEFAULT_CONCURRENCY = 8
#: How long CRDs, Namespaces and classes may take to become ready, and a recreated object's old self to go.
DEFAULT_WAIT_TIMEOUT = 60.0
_POLL = 0.2


class _Failure(Exception):
    """One object's step went wrong; becomes an ObjectFailure (never escapes this module)."""

    def __init__(self, message: str, error: GitopsMeshError) -> None:
        super().__init__(message)
        self.message = message
        self.error = error


@dataclass
class _Run:
    client: KubeClient
    field_manager: str
    force: bool
    default_namespace: str | None
    gate: asyncio.Semaphore
    wait_timeout: float
    change_set: ChangeSet = field(default_factory=ChangeSet)

    async def place(self, objects: Sequence[KubeObject]) -> tuple[list[KubeObject], list[ObjectFailure]]:
        """Each object with the namespace the apiserver will give it (discovery says whether its kind has one)."""

        async def one(obj: KubeObject) -> KubeObject | ObjectFailure:
            try:
                info = await self.client.resource(str(obj["apiVersion"]), str(obj["kind"]))
            except GitopsMeshError as e:
                return ObjectFailure(subject_of(obj), f"apply failed: {e}", e)
            placed = with_namespace(obj, namespaced=info.namespaced, default_namespace=self.default_namespace)
            if info.namespaced and not metadata(placed).get("namespace"):
                message = "metadata.namespace is required for a namespaced kind (and no default namespace is set)"
                return ObjectFailure(subject_of(obj), f"apply failed: {message}", Invalid(message))
            return placed

        results = await asyncio.gather(*(one(o) for o in objects))
        placed = [r for r in results if not isinstance(r, ObjectFailure)]
        failures = [r for r in results if isinstance(r, ObjectFailure)]
        seen: set[ObjectId] = set()
        for obj in placed:
            ref = ObjectId.of(obj)
            if ref in seen:
                failures.append(ObjectFailure(ref.subject, "appears more than once", Invalid("duplicate object")))
            seen.add(ref)
        return placed, failures

    async def apply_one(self, obj: KubeObject) -> ChangeSetEntry | ObjectFailure:
        ref = ObjectId.of(obj)
        async with self.gate:
            try:
                action = await self._reconcile(obj, ref)
            except _Failure as f:
                return ObjectFailure(ref.subject, f.message, f.error)
        return ChangeSetEntry(ref, action)

    async def _read(self, ref: ObjectId) -> KubeObject | None:
        try:
            return await self.client.get(ref.api_version, ref.kind, ref.name, namespace=ref.namespace or None)
        except NotFound:
            return None
        except GitopsMeshError as e:
            raise _Failure(f"query failed: {e}", e) from e

    async def _apply(self, obj: KubeObject) -> KubeObject:
        # Always forced, as Flux does: the manifest wins conflicts with other managers.
        return await self.client.apply(obj, field_manager=self.field_manager, force=True)

    async def _reconcile(self, obj: KubeObject, ref: ObjectId) -> Action:
        for attempt in range(2):
            existing = await self._read(ref)
            if skip_apply(obj, existing):
                return Action.SKIPPED
            cleaned = False
            if existing is not None and not keeps_foreign_fields(obj, existing):
                ops = cleanup_patch(existing, self.field_manager)
                if ops:
                    try:
                        await self.client.patch(
                            ref.api_version,
                            ref.kind,
                            ref.name,
                            ops,
                            namespace=ref.namespace or None,
                            patch_type=PatchType.JSON,
                            field_manager=self.field_manager,
                        )
                    except Conflict as e:
                        # Written since we read it: read again rather than drop the writer's managed fields.
                        if attempt == 0:
                            continue
                        raise _Failure(f"metadata.managedFields cleanup failed: {e}", e) from e
                    except GitopsMeshError as e:
                        raise _Failure(f"metadata.managedFields cleanup failed: {e}", e) from e
                    cleaned = True
            try:
                applied = await self._apply(obj)
            except Invalid as e:
                if existing is None or not is_immutable_error(str(e)):
                    raise _Failure(f"apply failed: {e}", e) from e
                if not force_enabled(obj, existing, self.force):
                    hint = f"spec.force or the {FORCE_ANNOTATION}: {ENABLED} annotation recreates the object"
                    raise _Failure(f"apply failed: {e} ({hint})", e) from e
                await self._recreate(obj, ref, existing)
                return Action.CREATED
            except GitopsMeshError as e:
                raise _Failure(f"apply failed: {e}", e) from e
            if existing is None:
                return Action.CREATED
            return Action.CONFIGURED if cleaned or changed(existing, applied, self.field_manager) else Action.UNCHANGED
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def _recreate(self, obj: KubeObject, ref: ObjectId, existing: KubeObject) -> None:
        """Delete the object (its dependents in the background) and apply it again once it is gone."""
        old = uid(existing)
        try:
            await self.client.delete(
                ref.api_version,
                ref.kind,
                ref.name,
                namespace=ref.namespace or None,
                propagation_policy="Background",
                preconditions={"uid": old},
            )
        except (NotFound, Conflict):
            pass  # already gone, or already replaced by someone else
        except GitopsMeshError as e:
            raise _Failure(f"immutable field detected, failed to delete object: {e}", e) from e
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_timeout
        # Finalizers may keep the old object for a while; applying before it is gone would update it again.
        while (current := await self._read(ref)) is not None and uid(current) == old:
            if loop.time() >= deadline:
                message = f"immutable field detected, object not deleted within {self.wait_timeout:g}s"
                raise _Failure(message, TransientError(message))
            await asyncio.sleep(_POLL)
        try:
            await self._apply(obj)
        except GitopsMeshError as e:
            raise _Failure(f"apply failed after recreation: {e}", e) from e

    async def wait_ready(self, refs: list[ObjectId]) -> list[ObjectFailure]:
        """Flux waits for each stage of definitions before applying what may depend on them."""
        try:
            verdict, report = await health.wait(self.client, refs, timeout=self.wait_timeout, poll=_POLL)
        except GitopsMeshError as e:
            return [ObjectFailure("", f"wait for {len(refs)} object(s) failed: {e}", e)]
        if verdict is health.Verdict.HEALTHY:
            return []
        message = report.message(verdict)
        error: GitopsMeshError = TransientError(message) if verdict is health.Verdict.TIMED_OUT else Invalid(message)
        return [ObjectFailure("", message, error)]


async def apply_all(
    client: KubeClient,
    objects: Sequence[KubeObject | Any],
    *,
    owner: Owner,
    field_manager: str = DEFAULT_FIELD_MANAGER,
    force: bool = False,
    default_namespace: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
) -> ChangeSet:
    """Server-side apply ``objects`` as Flux's ApplyAllStaged does; what happened to each, in apply order.

    CRDs, Namespaces and ClusterRoles go first and are waited for (Established, Active), then ``*Class`` kinds,
    then the rest. Every object gets ``owner``'s labels. Per object: read it; skip it per its annotations; hand
    kubectl's fields to ``field_manager`` and drop kubectl's annotation (unless ``ssa: Merge``); apply with
    forced ownership; on an immutable-field rejection, with ``force`` or ``force: Enabled``, delete and
    recreate. "unchanged" means the apply wrote nothing (same resourceVersion, or only status moved).

    Raises :class:`~kustomize_controller.apply.changeset.ChangeSetError` naming every object that failed (and
    the apiserver's message); its ``change_set`` lists what was applied before, so a partial apply is never
    reported as success. Invalid input (no apiVersion, kind or name; duplicates) fails before any request.
    """
    problems = validate(objects)
    if problems:
        raise failed([ObjectFailure("", p, None) for p in problems], ChangeSet())
    run = _Run(
        client=client,
        field_manager=field_manager,
        force=force,
        default_namespace=default_namespace,
        gate=asyncio.Semaphore(max(1, concurrency)),
        wait_timeout=wait_timeout,
    )
    desired = [with_owner_labels(o, owner) for o in objects]
    for stage, members in split_stages(desired):
        placed, failures = await run.place(members)
        if failures:
            raise failed(failures, run.change_set)
        applied: list[ObjectId] = []
        for wave in waves(placed):
            results = await asyncio.gather(*(run.apply_one(o) for o in wave))
            done = sorted((r for r in results if isinstance(r, ChangeSetEntry)), key=lambda e: e.ref.sort_key())
            run.change_set.extend(done)
            applied.extend(e.ref for e in done if e.action is not Action.SKIPPED)
            failures = [r for r in results if isinstance(r, ObjectFailure)]
            if failures:
                raise failed(failures, run.change_set)
        if stage is not Stage.RESOURCES and applied:
            failures = await run.wait_ready(applied)
            if failures:
                raise failed(failures, run.change_set)
    return run.change_set
