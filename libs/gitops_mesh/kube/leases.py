"""Kube access, one active replica: leader election on a coordination.k8s.io/v1 Lease, as client-go does it."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from gitops_mesh.backoff import jittered
from gitops_mesh.errors import Conflict, GitopsMeshError, NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.timestamps import rfc3339

LEASE_API = "coordination.k8s.io/v1"
Callback = Callable[[], Awaitable[None] | None]

log = get_logger(__name__)


def micro_time(at: datetime) -> str:
    """Kubernetes MicroTime: RFC 3339 with exactly six fractional digits."""
    return rfc3339(at, "microseconds")


def held_by_other(spec: dict[str, Any], identity: str) -> bool:
    holder = spec.get("holderIdentity")
    return bool(holder) and holder != identity


def next_spec(spec: dict[str, Any] | None, identity: str, lease_duration: float, now: datetime) -> dict[str, Any]:
    """The spec that acquires (a new holder: acquireTime now, one more transition) or renews the lease.

    ``spec`` is None when the Lease is being created.
    """
    stamp = micro_time(now)
    renewing = spec is not None and spec.get("holderIdentity") == identity
    transitions = int((spec or {}).get("leaseTransitions") or 0)
    if spec is not None and not renewing:
        transitions += 1
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": max(1, round(lease_duration)),
        "acquireTime": ((spec or {}).get("acquireTime") or stamp) if renewing else stamp,
        "renewTime": stamp,
        "leaseTransitions": transitions,
    }


def released_spec(spec: dict[str, Any], now: datetime) -> dict[str, Any]:
    """What a stepping-down leader writes so a candidate takes over at once instead of after the duration."""
    stamp = micro_time(now)
    return {
        "holderIdentity": "",
        "leaseDurationSeconds": 1,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": int(spec.get("leaseTransitions") or 0),
    }


class LeaderElector:
    """Campaigns for ``namespace/name`` as ``identity``; ``is_leader`` while the lease is renewed in time.

    Expiry is judged by when *this* process last saw the lease change, not by the renewTime written by
    another host, so clock skew between replicas cannot hand the lease out early. Losing the lease calls
    ``on_stopped_leading`` and campaigns again; callbacks must return promptly (start work, do not run it).
    """

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15,
        renew_deadline: float = 10,
        retry_period: float = 2,
        *,
        on_started_leading: Callback | None = None,
        on_stopped_leading: Callback | None = None,
    ) -> None:
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self._leader = asyncio.Event()
        self._lease: KubeObject | None = None
        self._observed: dict[str, Any] | None = None
        self._observed_at = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def is_leader(self) -> bool:
        return self._leader.is_set()

    async def wait_for_leadership(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self._leader.wait()

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"leader-election/{self.namespace}/{self.name}")
        return self._task

    async def stop(self, *, release: bool = True) -> None:
        """Stop campaigning; a leader releases the lease so another replica need not wait for expiry."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.is_leader:
            if release:
                await self._release()
            await self._lost("stopped")

    async def run(self) -> None:
        while True:
            try:
                await self._acquire()
                self._leader.set()
                log.info("became leader", lease=f"{self.namespace}/{self.name}", identity=self.identity)
                await self._call(self.on_started_leading)
                await self._renew_until_lost()
                await self._lost("lost")
            except asyncio.CancelledError:
                raise
            except Exception:  # the top of a supervised task: log, step down, campaign again
                log.exception("leader election failed", lease=f"{self.namespace}/{self.name}")
                if self.is_leader:
                    await self._lost("error")
                await asyncio.sleep(self.retry_period)

    async def _acquire(self) -> None:
        while True:
            if await self._attempt():
                return
            # client-go's wait.JitterUntil(retryPeriod, 1.2): candidates do not all knock at once.
            await asyncio.sleep(jittered(self.retry_period, (0.0, 0.2)))

    async def _renew_until_lost(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.retry_period)
            deadline = loop.time() + self.renew_deadline
            while not await self._attempt(deadline=deadline):
                if loop.time() + self.retry_period >= deadline:
                    return
                await asyncio.sleep(self.retry_period)

    async def _lost(self, why: str) -> None:
        self._leader.clear()
        log.warning("stopped leading", lease=f"{self.namespace}/{self.name}", identity=self.identity, why=why)
        await self._call(self.on_stopped_leading)

    async def _call(self, callback: Callback | None) -> None:
        if callback is None:
            return
        try:
            result = callback()
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:  # callbacks are foreign code: a failing one must not break the election
            log.exception("leader election callback failed", lease=f"{self.namespace}/{self.name}")

    async def _attempt(self, deadline: float | None = None) -> bool:
        """One try to acquire or renew; False when someone else holds it or the apiserver said no."""
        try:
            async with asyncio.timeout_at(deadline):
                return await self._try_acquire_or_renew()
        except TimeoutError:
            return False
        except GitopsMeshError as e:
            log.warning("lease update failed", lease=f"{self.namespace}/{self.name}", error=str(e))
            return False

    async def _try_acquire_or_renew(self) -> bool:
        loop = asyncio.get_running_loop()
        try:
            lease = await self.client.get(LEASE_API, "Lease", self.name, namespace=self.namespace)
        except NotFound:
            return await self._create()
        spec: dict[str, Any] = lease.get("spec") or {}
        if spec != self._observed:
            self._observed, self._observed_at = spec, loop.time()
        if held_by_other(spec, self.identity):
            duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
            if self._observed_at + duration > loop.time():
                return False
        lease["spec"] = next_spec(spec, self.identity, self.lease_duration, datetime.now(UTC))
        try:
            # PUT carries the resourceVersion we read: two candidates racing cannot both win.
            written = await self.client.replace(lease)
        except Conflict:
            return False
        self._remember(written)
        return True

    async def _create(self) -> bool:
        lease: KubeObject = {
            "apiVersion": LEASE_API,
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": next_spec(None, self.identity, self.lease_duration, datetime.now(UTC)),
        }
        try:
            written = await self.client.create(lease)
        except Conflict:  # AlreadyExists: another candidate created it first
            return False
        self._remember(written)
        return True

    def _remember(self, lease: KubeObject) -> None:
        self._lease = lease
        self._observed = lease.get("spec") or {}
        self._observed_at = asyncio.get_running_loop().time()

    async def _release(self) -> None:
        if self._lease is None:
            return
        lease = {**self._lease, "spec": released_spec(self._lease.get("spec") or {}, datetime.now(UTC))}
        try:
            await self.client.replace(lease)
        except GitopsMeshError as e:
            # Someone else already holds it, or the apiserver is away: the lease then simply expires.
            log.warning("releasing lease failed", lease=f"{self.namespace}/{self.name}", error=str(e))
