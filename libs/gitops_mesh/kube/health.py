"""Kube, health: kstatus-like Current/InProgress/Failed per object (pure) and a one-shot check a requeue repeats.

Shared by the kustomize-controller (spec.wait, healthChecks, the waits inside an apply) and the
helm-controller (a release's objects after install/upgrade/rollback): :func:`compute` is kstatus' rules,
:func:`check` one look at a set of objects, :class:`HealthReport` the verdict and Flux's wording. The
objects are named by anything with ``api_version``, ``kind``, ``namespace``, ``name`` and ``subject``
(:class:`Target`): kustomize's inventory ids, or :class:`ObjectRef`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from gitops_mesh.errors import NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.objects import KubeObject, metadata


class Target(Hashable, Protocol):
    """An object to look at: ``apiVersion`` (``apps/v1``), kind, namespace (empty: cluster-scoped), name."""

    @property
    def api_version(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def namespace(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def subject(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """A plain :class:`Target`: one object by apiVersion, kind, namespace and name."""

    api_version: str
    kind: str
    namespace: str
    name: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def subject(self) -> str:
        """``Deployment/default/web`` (``Namespace/web`` when cluster-scoped), as Flux names objects."""
        return "/".join(p for p in (self.kind, self.namespace, self.name) if p)


R = TypeVar("R", bound=Target)

#: Objects named in a report's message; the rest are counted.
MESSAGE_OBJECTS = 50
# kstatus: a Pending pod is only called unschedulable after this long.
SCHEDULE_WINDOW = timedelta(seconds=15)
_NO_DEADLINE = 2**31 - 1  # the Deployment controller's "no progressDeadlineSeconds"


class Status(StrEnum):
    CURRENT = "Current"
    IN_PROGRESS = "InProgress"
    FAILED = "Failed"
    TERMINATING = "Terminating"
    NOT_FOUND = "NotFound"


@dataclass(frozen=True, slots=True)
class Health:
    status: Status
    message: str

    @property
    def current(self) -> bool:
        return self.status is Status.CURRENT


def _current(message: str) -> Health:
    return Health(Status.CURRENT, message)


def _progressing(message: str) -> Health:
    return Health(Status.IN_PROGRESS, message)


def _failed(message: str) -> Health:
    return Health(Status.FAILED, message)


# --- reading status documents ---------------------------------------------------------------------------------


def _int(obj: Mapping[str, Any], path: str, default: int) -> int:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node if isinstance(node, int) and not isinstance(node, bool) else default


def _str(obj: Mapping[str, Any], path: str, default: str = "") -> str:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node if isinstance(node, str) else default


def _conditions(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = obj.get("status")
    found = status.get("conditions") if isinstance(status, Mapping) else None
    return [c for c in found if isinstance(c, Mapping)] if isinstance(found, list) else []


def _condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in _conditions(obj) if c.get("type") == type_), None)


def _is_true(obj: Mapping[str, Any], type_: str) -> bool:
    found = _condition(obj, type_)
    return found is not None and found.get("status") == "True"


def _parse_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


# --- the rules --------------------------------------------------------------------------------------------------


def _generic(obj: KubeObject) -> Health | None:
    """kstatus checkGenericProperties: deletion, unobserved generation, Reconciling/Stalled conditions."""
    meta = metadata(obj)
    if meta.get("deletionTimestamp"):
        return Health(Status.TERMINATING, "Resource scheduled for deletion")
    generation = meta.get("generation")
    status = obj.get("status")
    observed = status.get("observedGeneration") if isinstance(status, dict) else None
    if isinstance(generation, int) and isinstance(observed, int) and observed != generation:
        kind = obj.get("kind") or "Resource"
        return _progressing(f"{kind} generation is {generation}, but latest observed generation is {observed}")
    for cond in _conditions(obj):
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Reconciling":
            return _progressing(str(cond.get("message") or cond.get("reason") or "Reconciling"))
        if cond.get("type") == "Stalled":
            return _failed(str(cond.get("message") or cond.get("reason") or "Stalled"))
    return None


def _deployment(obj: KubeObject, now: datetime) -> Health:
    progressing = _int(obj, "spec.progressDeadlineSeconds", _NO_DEADLINE) == _NO_DEADLINE
    available = False
    for cond in _conditions(obj):
        if cond.get("type") == "Progressing":
            if cond.get("reason") == "ProgressDeadlineExceeded":
                detail = cond.get("message")
                return _failed(f"Progress deadline exceeded: {detail}" if detail else "Progress deadline exceeded")
            if cond.get("status") == "True" and cond.get("reason") == "NewReplicaSetAvailable":
                progressing = True
        elif cond.get("type") == "Available" and cond.get("status") == "True":
            available = True
    spec = _int(obj, "spec.replicas", 1)
    replicas = _int(obj, "status.replicas", 0)
    updated = _int(obj, "status.updatedReplicas", 0)
    ready = _int(obj, "status.readyReplicas", 0)
    avail = _int(obj, "status.availableReplicas", 0)
    if spec > replicas:
        return _progressing(f"Replicas: {replicas}/{spec}")
    if spec > updated:
        return _progressing(f"Updated: {updated}/{spec}")
    if replicas > spec:
        return _progressing(f"Pending termination: {replicas - spec}")
    if updated > avail:
        return _progressing(f"Available: {avail}/{updated}")
    if spec > ready:
        return _progressing(f"Ready: {ready}/{spec}")
    if not progressing:
        return _progressing("ReplicaSet not Available")
    if not available:
        return _progressing("Deployment not Available")
    return _current(f"Deployment is available. Replicas: {replicas}")


def _statefulset(obj: KubeObject, now: datetime) -> Health:
    if _str(obj, "spec.updateStrategy.type") == "OnDelete":
        return _current("StatefulSet is using the ondelete update strategy")
    spec = _int(obj, "spec.replicas", 1)
    ready = _int(obj, "status.readyReplicas", 0)
    current = _int(obj, "status.currentReplicas", 0)
    updated = _int(obj, "status.updatedReplicas", 0)
    replicas = _int(obj, "status.replicas", 0)
    partition = _int(obj, "spec.updateStrategy.rollingUpdate.partition", -1)
    if spec > replicas:
        return _progressing(f"Replicas: {replicas}/{spec}")
    if spec > ready:
        return _progressing(f"Ready: {ready}/{spec}")
    if replicas > spec:
        return _progressing(f"Pending termination: {replicas - spec}")
    if partition != -1:
        if updated < spec - partition:
            return _progressing(f"updated: {updated}/{spec - partition}")
        return _current(f"Partition rollout complete. updated: {updated}")
    if spec > current:
        return _progressing(f"current: {current}/{spec}")
    if _str(obj, "status.currentRevision") != _str(obj, "status.updateRevision"):
        return _progressing("Waiting for updated revision to match current")
    return _current(f"All replicas scheduled as expected. Replicas: {replicas}")


def _daemonset(obj: KubeObject, now: datetime) -> Health:
    # The controller always writes observedGeneration; without it, it has not looked yet.
    if not isinstance(metadata(obj).get("generation"), int):
        return _progressing("DaemonSet metadata.generation not found")
    if _int(obj, "status.observedGeneration", -1) == -1:
        return _progressing("DaemonSet status.observedGeneration not found")
    desired = _int(obj, "status.desiredNumberScheduled", -1)
    if desired == -1:
        return _progressing("Missing .status.desiredNumberScheduled")
    for label, path in (
        ("Current", "status.currentNumberScheduled"),
        ("Updated", "status.updatedNumberScheduled"),
        ("Available", "status.numberAvailable"),
        ("Ready", "status.numberReady"),
    ):
        have = _int(obj, path, 0)
        if desired > have:
            return _progressing(f"{label}: {have}/{desired}")
    return _current(f"All replicas scheduled as expected. Replicas: {desired}")


def _replicaset(obj: KubeObject, now: datetime) -> Health:
    if _is_true(obj, "ReplicaFailure"):
        return _progressing("Replica Failure condition. Check Pods")
    spec = _int(obj, "spec.replicas", 1)
    for label, path in (
        ("Labelled", "status.fullyLabeledReplicas"),
        ("Available", "status.availableReplicas"),
        ("Ready", "status.readyReplicas"),
    ):
        have = _int(obj, path, 0)
        if spec > have:
            return _progressing(f"{label}: {have}/{spec}")
    replicas = _int(obj, "status.replicas", 0)
    if replicas > spec:
        return _progressing(f"Pending termination: {replicas - spec}")
    return _current(f"ReplicaSet is available. Replicas: {replicas}")


def _job(obj: KubeObject, now: datetime) -> Health:
    """Flux's job reader (runtime/statusreaders): Current only once Complete, unlike kstatus (once started)."""
    parallelism = _int(obj, "spec.parallelism", 1)
    completions = _int(obj, "spec.completions", parallelism)
    for cond in _conditions(obj):
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return _current(f"Job Completed. succeeded: {_int(obj, 'status.succeeded', 0)}/{completions}")
        if cond.get("type") == "Failed":
            detail = cond.get("message")
            suffix = f": {detail}" if detail else ""
            return _failed(f"Job Failed. failed: {_int(obj, 'status.failed', 0)}/{completions}{suffix}")
    return _progressing("Job in progress")


def _pod(obj: KubeObject, now: datetime) -> Health:
    phase = _str(obj, "status.phase")
    if phase == "Succeeded":
        return _current("Pod has completed successfully")
    if phase == "Failed":
        return _current("Pod has completed, but not successfully")
    if phase == "Running":
        if _is_true(obj, "Ready"):
            return _current("Pod is Ready")
        looping = [
            str(cs.get("name"))
            for cs in (obj.get("status") or {}).get("containerStatuses") or ()
            if isinstance(cs, Mapping) and _str(cs, "state.waiting.reason") == "CrashLoopBackOff"
        ]
        if looping:
            return _failed(f"Containers in CrashLoop state: {','.join(looping)}")
        return _progressing("Pod is running but is not Ready")
    if phase == "Pending":
        scheduled = _condition(obj, "PodScheduled")
        if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
            created = _parse_time(str(metadata(obj).get("creationTimestamp") or ""))
            if created is not None and now - created < SCHEDULE_WINDOW:
                return _progressing("Pod has not been scheduled")
            return _failed(f"Pod could not be scheduled: {scheduled.get('message') or 'Unschedulable'}")
        return _progressing("Pod is in the Pending phase")
    return _progressing("Pod phase not available")


def _pvc(obj: KubeObject, now: datetime) -> Health:
    phase = _str(obj, "status.phase", "unknown")
    if phase != "Bound":
        return _progressing(f"PVC is not Bound. phase: {phase}")
    return _current("PVC is Bound")


def _service(obj: KubeObject, now: datetime) -> Health:
    # kstatus: a LoadBalancer needs its cluster IP; other types are ready once they exist.
    if _str(obj, "spec.type", "ClusterIP") == "LoadBalancer" and not _str(obj, "spec.clusterIP"):
        return _progressing("ClusterIP not set. Service type: LoadBalancer")
    return _current("Service is ready")


def _crd(obj: KubeObject, now: datetime) -> Health:
    for cond in _conditions(obj):
        if cond.get("type") == "NamesAccepted" and cond.get("status") == "False":
            return _failed(str(cond.get("message") or cond.get("reason") or "names not accepted"))
        if cond.get("type") == "Established":
            if cond.get("status") == "False" and cond.get("reason") != "Installing":
                return _failed(str(cond.get("message") or cond.get("reason") or "not established"))
            if cond.get("status") == "True":
                return _current("CRD is established")
    return _progressing("Install in progress")


def _namespace(obj: KubeObject, now: datetime) -> Health:
    phase = _str(obj, "status.phase", "Active")
    if phase != "Active":
        return _progressing(f"Namespace is {phase}")
    return _current("Namespace is Active")


def _always(obj: KubeObject, now: datetime) -> Health:
    return _current("Resource is always ready")


_RULES = {
    ("apps", "Deployment"): _deployment,
    ("extensions", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("extensions", "DaemonSet"): _daemonset,
    ("apps", "ReplicaSet"): _replicaset,
    ("extensions", "ReplicaSet"): _replicaset,
    ("batch", "Job"): _job,
    ("batch", "CronJob"): _always,
    ("", "Pod"): _pod,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "Service"): _service,
    ("", "Namespace"): _namespace,
    ("", "ConfigMap"): _always,
    ("", "Secret"): _always,
    ("policy", "PodDisruptionBudget"): _always,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
}


def compute(obj: KubeObject, *, now: datetime | None = None) -> Health:
    """The health of one object as read from the apiserver (with its status).

    kstatus' rules (fluxcd/cli-utils), with Flux's Job reader. For kinds without a rule, a ``Ready`` condition
    decides: True is Current, False or Unknown is InProgress with its message; kstatus would call Ready=False
    Current, which lets a failing custom resource pass a health check. Without one, the object is Current.
    """
    generic = _generic(obj)
    if generic is not None:
        return generic
    group = str(obj.get("apiVersion") or "").rpartition("/")[0]
    rule = _RULES.get((group, str(obj.get("kind") or "")))
    if rule is not None:
        return rule(obj, now or datetime.now(UTC))
    ready = _condition(obj, "Ready")
    if ready is not None:
        message = str(ready.get("message") or ready.get("reason") or "")
        if ready.get("status") == "True":
            return _current(message or "Resource is Ready")
        return _progressing(message or "Resource is not Ready")
    return _current("Resource is current")


# --- checking the cluster ----------------------------------------------------------------------------------------


class Verdict(StrEnum):
    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"


@dataclass(frozen=True)
class HealthReport(Generic[R]):
    """The health of each checked object, in the order asked."""

    results: dict[R, Health] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return all(h.current for h in self.results.values())

    def with_status(self, *statuses: Status) -> list[tuple[R, Health]]:
        return [(ref, h) for ref, h in self.results.items() if h.status in statuses]

    @property
    def failed(self) -> list[tuple[R, Health]]:
        return self.with_status(Status.FAILED)

    @property
    def pending(self) -> list[tuple[R, Health]]:
        return [(ref, h) for ref, h in self.results.items() if h.status not in (Status.CURRENT, Status.FAILED)]

    def verdict(self, *, elapsed: float = 0.0, timeout: float | None = None, fail_fast: bool = True) -> Verdict:
        """What a controller does next: done, requeue, or give up (Flux's WaitForSet, one poll at a time)."""
        if self.healthy:
            return Verdict.HEALTHY
        if fail_fast and self.failed:
            return Verdict.FAILED
        if timeout is not None and elapsed >= timeout:
            return Verdict.TIMED_OUT
        return Verdict.PROGRESSING

    def message(self, verdict: Verdict | None = None) -> str:
        """Flux's wording: ``timeout waiting for: [Deployment/ns/web status: 'InProgress': Ready: 0/2]``."""
        verdict = verdict or self.verdict()
        if verdict is Verdict.HEALTHY:
            return f"{len(self.results)} object(s) healthy"
        listed = self.failed if verdict is Verdict.FAILED else self.failed + self.pending
        items = ", ".join(f"{ref.subject} status: '{h.status}': {h.message}" for ref, h in listed[:MESSAGE_OBJECTS])
        if len(listed) > MESSAGE_OBJECTS:
            # A condition message is bounded (and a status patch too): thousands of objects are summed up.
            items += f", and {len(listed) - MESSAGE_OBJECTS} more"
        prefix = {
            Verdict.FAILED: "failed early due to stalled resources",
            Verdict.TIMED_OUT: "timeout waiting for",
            Verdict.PROGRESSING: "waiting for",
        }[verdict]
        return f"{prefix}: [{items}]"


def is_job(ref: Target) -> bool:
    """A batch Job (helm's ``--wait-for-jobs`` decides whether those are waited for)."""
    return ref.kind == "Job" and ref.api_version.rpartition("/")[0] == "batch"


def _paused(obj: KubeObject) -> bool:
    spec = obj.get("spec")
    return (
        obj.get("apiVersion") == "apps/v1"
        and obj.get("kind") == "Deployment"
        and bool(isinstance(spec, Mapping) and spec.get("paused") is True)
    )


async def check(
    client: KubeClient,
    refs: Iterable[R],
    *,
    concurrency: int = 16,
    now: datetime | None = None,
    skip_paused: bool = False,
) -> HealthReport[R]:
    """One look at each object (a GET each, ``concurrency`` at a time); a missing object is NotFound.

    Never waits: a controller calls it again on requeue until :meth:`HealthReport.verdict` says it is done, so
    a slow rollout holds no worker. Apiserver errors other than 404 are raised. A namespace given for a
    cluster-scoped kind is ignored (a rendered manifest may carry one), as the apiserver would on apply.
    ``skip_paused``: a paused apps/v1 Deployment counts as Current (Helm's wait, and Flux's for releases, skip
    them: a paused rollout never completes).
    """
    targets = list(dict.fromkeys(refs))
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(ref: R) -> Health:
        async with gate:
            try:
                info = await client.resource(ref.api_version, ref.kind)
                namespace = (ref.namespace or None) if info.namespaced else None
                obj = await client.get(ref.api_version, ref.kind, ref.name, namespace=namespace)
            except NotFound:
                return Health(Status.NOT_FOUND, "Resource not found")
        if skip_paused and _paused(obj):
            return Health(Status.CURRENT, "Deployment is paused")
        return compute(obj, now=now)

    found = await asyncio.gather(*(one(ref) for ref in targets))
    return HealthReport(dict(zip(targets, found, strict=True)))


async def wait(
    client: KubeClient,
    refs: Sequence[R],
    *,
    timeout: float,
    poll: float = 0.5,
    fail_fast: bool = True,
) -> tuple[Verdict, HealthReport[R]]:
    """Poll :func:`check` every ``poll`` seconds until healthy, failed (with ``fail_fast``) or ``timeout``.

    For tests and for the short waits inside an apply (CRDs, Namespaces); controllers requeue instead.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        report = await check(client, refs)
        verdict = report.verdict(elapsed=loop.time() - started, timeout=timeout, fail_fast=fail_fast)
        if verdict is not Verdict.PROGRESSING:
            return verdict, report
        await asyncio.sleep(poll)
