"""Apply, garbage collection: delete stale inventory objects we still own, and the deletion policies on finalize."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from enum import StrEnum
from itertools import groupby

from gitops_mesh.errors import Conflict, GitopsMeshError, InvalidSpec, NotFound
from gitops_mesh.kube.client import KubeClient, PropagationPolicy
from gitops_mesh.kube.objects import uid
from kustomize_controller.apply.changeset import Action, ChangeSet, ChangeSetEntry, ObjectFailure, failed
from kustomize_controller.apply.inventory import ObjectId, deletion_order
from kustomize_controller.apply.objects import Owner, prune_disabled, stage_of

DEFAULT_CONCURRENCY = 8


class DeletionPolicy(StrEnum):
    """spec.deletionPolicy: what deleting the Kustomization does to the objects in its inventory."""

    MIRROR_PRUNE = "MirrorPrune"  # the default: delete them when spec.prune is true
    DELETE = "Delete"  # delete them whatever spec.prune says
    WAIT_FOR_TERMINATION = "WaitForTermination"  # delete them and wait (up to spec.timeout) until they are gone
    ORPHAN = "Orphan"  # leave them


def deletion_policy(value: str | None) -> DeletionPolicy:
    if not value:
        return DeletionPolicy.MIRROR_PRUNE
    try:
        return DeletionPolicy(value)
    except ValueError:
        allowed = ", ".join(p.value for p in DeletionPolicy)
        raise InvalidSpec(f"spec.deletionPolicy {value!r} is not one of {allowed}") from None


def delete_on_finalize(policy: DeletionPolicy, *, prune: bool, suspended: bool, inventory_size: int) -> bool:
    """Flux's finalizerShouldDeleteResources: never when suspended or with an empty inventory."""
    if suspended or inventory_size == 0:
        return False
    if policy is DeletionPolicy.MIRROR_PRUNE:
        return prune
    return policy in (DeletionPolicy.DELETE, DeletionPolicy.WAIT_FOR_TERMINATION)


async def prune(
    client: KubeClient,
    stale: Iterable[ObjectId],
    *,
    owner: Owner | None,
    propagation: PropagationPolicy = "Background",
    concurrency: int = DEFAULT_CONCURRENCY,
) -> ChangeSet:
    """Delete ``stale`` objects (an inventory diff) in reverse apply order; what was deleted or skipped.

    As Flux's DeleteAll: an object already gone counts as deleted; one that lost ``owner``'s labels (someone
    else's now) or carries ``prune: disabled`` / ``reconcile: disabled`` is skipped. The delete is conditional on
    the uid read just before, so an object recreated meanwhile survives. Objects of one stage are deleted
    concurrently, stages one after the other (workloads, then classes, then namespaces and CRDs). Every object
    is tried; failures are raised together afterwards (ChangeSetError, with what was done).
    """
    gate = asyncio.Semaphore(max(1, concurrency))
    change_set = ChangeSet()
    failures: list[ObjectFailure] = []

    async def one(ref: ObjectId) -> ChangeSetEntry | ObjectFailure:
        async with gate:
            try:
                current = await client.get(ref.api_version, ref.kind, ref.name, namespace=ref.namespace or None)
            except NotFound:
                return ChangeSetEntry(ref, Action.DELETED)
            except GitopsMeshError as e:
                return ObjectFailure(ref.subject, f"query failed: {e}", e)
            if (owner is not None and not owner.owns(current)) or prune_disabled(current):
                return ChangeSetEntry(ref, Action.SKIPPED)
            try:
                await client.delete(
                    ref.api_version,
                    ref.kind,
                    ref.name,
                    namespace=ref.namespace or None,
                    propagation_policy=propagation,
                    preconditions={"uid": uid(current)},
                )
            except NotFound:
                pass
            except Conflict:
                return ChangeSetEntry(ref, Action.SKIPPED)
            except GitopsMeshError as e:
                return ObjectFailure(ref.subject, f"delete failed: {e}", e)
        return ChangeSetEntry(ref, Action.DELETED)

    ordered = deletion_order(stale)
    for _, group in groupby(ordered, key=lambda r: stage_of(r.group, r.kind)):
        results = await asyncio.gather(*(one(ref) for ref in group))
        change_set.extend(r for r in results if isinstance(r, ChangeSetEntry))
        failures.extend(r for r in results if isinstance(r, ObjectFailure))
    if failures:
        raise failed(failures, change_set)
    return change_set


async def finalize(
    client: KubeClient,
    inventory: Sequence[ObjectId],
    *,
    policy: DeletionPolicy,
    prune_enabled: bool,
    suspended: bool,
    owner: Owner,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> ChangeSet:
    """What deleting the Kustomization does to its inventory; an empty ChangeSet when the policy keeps it.

    With WaitForTermination the caller then polls :func:`remaining` with the deleted refs until empty or
    spec.timeout, requeueing in between (Flux blocks; on timeout it reports and removes the finalizer anyway).
    """
    if not delete_on_finalize(policy, prune=prune_enabled, suspended=suspended, inventory_size=len(inventory)):
        return ChangeSet()
    return await prune(client, inventory, owner=owner, concurrency=concurrency)


async def remaining(client: KubeClient, refs: Iterable[ObjectId], *, concurrency: int = 16) -> list[ObjectId]:
    """The objects among ``refs`` that still exist (terminating ones included); one GET each, no waiting."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def exists(ref: ObjectId) -> bool:
        async with gate:
            try:
                await client.get(ref.api_version, ref.kind, ref.name, namespace=ref.namespace or None)
            except NotFound:
                return False
        return True

    targets = list(dict.fromkeys(refs))
    found = await asyncio.gather(*(exists(r) for r in targets))
    return [ref for ref, present in zip(targets, found, strict=True) if present]


async def wait_for_termination(
    client: KubeClient, refs: Sequence[ObjectId], *, timeout: float, poll: float = 0.5
) -> list[ObjectId]:
    """Poll :func:`remaining` until nothing is left or ``timeout``; what is left (tests, the CLI)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = await remaining(client, refs)
        if not left or loop.time() >= deadline:
            return left
        await asyncio.sleep(poll)
