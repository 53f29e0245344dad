"""Runtime health (kube/health.py): kstatus-like health per kind on status documents, the verdict and wording."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gitops_mesh.kube.health import MESSAGE_OBJECTS, Health, HealthReport, ObjectRef, Status, Verdict, compute, is_job
from gitops_mesh.kube.objects import KubeObject

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def doc(
    api_version: str, kind: str, *, spec: dict[str, Any] | None = None, status: Any = None, **meta: Any
) -> KubeObject:
    o: KubeObject = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "namespace": "ns", **meta}}
    if spec is not None:
        o["spec"] = spec
    if status is not None:
        o["status"] = status
    return o


def cond(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def health(o: KubeObject) -> tuple[Status, str]:
    h = compute(o, now=NOW)
    return h.status, h.message


# --- Deployment --------------------------------------------------------------------------------------------------

AVAILABLE = cond("Available", "True", "MinimumReplicasAvailable")
PROGRESSED = cond("Progressing", "True", "NewReplicaSetAvailable")


def deployment(status: dict[str, Any] | None = None, *, replicas: int = 2, generation: int = 1) -> KubeObject:
    return doc(
        "apps/v1",
        "Deployment",
        spec={"replicas": replicas, "progressDeadlineSeconds": 600},
        status={"observedGeneration": 1, **(status or {})},
        generation=generation,
    )


def test_deployment_rollout() -> None:
    assert health(deployment(generation=2)) == (
        Status.IN_PROGRESS,
        "Deployment generation is 2, but latest observed generation is 1",
    )
    assert health(deployment()) == (Status.IN_PROGRESS, "Replicas: 0/2")
    assert health(deployment({"replicas": 2, "updatedReplicas": 1})) == (Status.IN_PROGRESS, "Updated: 1/2")
    assert health(deployment({"replicas": 3, "updatedReplicas": 2})) == (Status.IN_PROGRESS, "Pending termination: 1")
    assert health(deployment({"replicas": 2, "updatedReplicas": 2, "availableReplicas": 1})) == (
        Status.IN_PROGRESS,
        "Available: 1/2",
    )
    full = {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2}
    assert health(deployment(full)) == (Status.IN_PROGRESS, "ReplicaSet not Available")
    assert health(deployment({**full, "conditions": [PROGRESSED]})) == (Status.IN_PROGRESS, "Deployment not Available")
    assert health(deployment({**full, "conditions": [PROGRESSED, AVAILABLE]})) == (
        Status.CURRENT,
        "Deployment is available. Replicas: 2",
    )


def test_deployment_without_deadline_and_zero_replicas() -> None:
    o = doc(
        "apps/v1",
        "Deployment",
        spec={"replicas": 0},
        status={"observedGeneration": 1, "conditions": [AVAILABLE]},
        generation=1,
    )
    assert health(o)[0] is Status.CURRENT


def test_deployment_progress_deadline_exceeded_fails() -> None:
    stuck = cond("Progressing", "False", "ProgressDeadlineExceeded", 'ReplicaSet "x-1" has timed out progressing.')
    assert health(deployment({"replicas": 1, "conditions": [stuck]})) == (
        Status.FAILED,
        'Progress deadline exceeded: ReplicaSet "x-1" has timed out progressing.',
    )


# --- other workloads -----------------------------------------------------------------------------------------------


def test_statefulset() -> None:
    base = {"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "currentReplicas": 2, "updatedReplicas": 2}
    sts = doc("apps/v1", "StatefulSet", spec={"replicas": 2}, generation=1, status=base)
    assert health(sts)[0] is Status.CURRENT
    sts["status"] = {**base, "readyReplicas": 1}
    assert health(sts) == (Status.IN_PROGRESS, "Ready: 1/2")
    sts["status"] = {**base, "currentRevision": "a", "updateRevision": "b"}
    assert health(sts) == (Status.IN_PROGRESS, "Waiting for updated revision to match current")
    sts["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert health(sts)[0] is Status.CURRENT


def test_daemonset() -> None:
    ds = doc("apps/v1", "DaemonSet", generation=1, status={"observedGeneration": 1, "desiredNumberScheduled": 3})
    assert health(ds) == (Status.IN_PROGRESS, "Current: 0/3")
    ds["status"].update(currentNumberScheduled=3, updatedNumberScheduled=3, numberAvailable=3, numberReady=2)
    assert health(ds) == (Status.IN_PROGRESS, "Ready: 2/3")
    ds["status"]["numberReady"] = 3
    assert health(ds)[0] is Status.CURRENT
    assert health(doc("apps/v1", "DaemonSet", generation=1, status={}))[0] is Status.IN_PROGRESS


def test_replicaset() -> None:
    rs = doc("apps/v1", "ReplicaSet", spec={"replicas": 1}, status={"replicas": 1, "fullyLabeledReplicas": 1})
    assert health(rs) == (Status.IN_PROGRESS, "Available: 0/1")
    rs["status"].update(availableReplicas=1, readyReplicas=1)
    assert health(rs)[0] is Status.CURRENT


def test_job_is_current_only_once_complete() -> None:
    job = doc("batch/v1", "Job", spec={"completions": 1}, status={"startTime": "2024-01-01T00:00:00Z", "active": 1})
    assert health(job) == (Status.IN_PROGRESS, "Job in progress")
    job["status"] = {"succeeded": 1, "conditions": [cond("Complete", "True")]}
    assert health(job) == (Status.CURRENT, "Job Completed. succeeded: 1/1")
    job["status"] = {
        "failed": 3,
        "conditions": [cond("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit")],
    }
    assert health(job) == (Status.FAILED, "Job Failed. failed: 3/1: Job has reached the specified backoff limit")


def test_pod() -> None:
    pod = doc("v1", "Pod", status={"phase": "Running", "conditions": [cond("Ready", "True")]})
    assert health(pod)[0] is Status.CURRENT
    pod["status"] = {
        "phase": "Running",
        "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
    }
    assert health(pod) == (Status.FAILED, "Containers in CrashLoop state: app")
    unschedulable = {"phase": "Pending", "conditions": [cond("PodScheduled", "False", "Unschedulable", "0/3 nodes")]}
    young = doc("v1", "Pod", status=unschedulable, creationTimestamp=(NOW - timedelta(seconds=5)).isoformat())
    assert health(young) == (Status.IN_PROGRESS, "Pod has not been scheduled")
    old = doc("v1", "Pod", status=unschedulable, creationTimestamp="2024-05-01T11:00:00Z")
    assert health(old) == (Status.FAILED, "Pod could not be scheduled: 0/3 nodes")
    assert health(doc("v1", "Pod", status={"phase": "Succeeded"}))[0] is Status.CURRENT
    assert health(doc("v1", "Pod"))[0] is Status.IN_PROGRESS


# --- simple kinds ------------------------------------------------------------------------------------------------


def test_pvc_service_namespace_crd() -> None:
    assert health(doc("v1", "PersistentVolumeClaim", status={"phase": "Pending"})) == (
        Status.IN_PROGRESS,
        "PVC is not Bound. phase: Pending",
    )
    assert health(doc("v1", "PersistentVolumeClaim", status={"phase": "Bound"}))[0] is Status.CURRENT
    assert health(doc("v1", "Service", spec={"type": "ClusterIP", "clusterIP": "10.0.0.3"}))[0] is Status.CURRENT
    assert health(doc("v1", "Service", spec={"type": "LoadBalancer"}))[0] is Status.IN_PROGRESS
    assert health(doc("v1", "Namespace", status={"phase": "Active"})) == (Status.CURRENT, "Namespace is Active")
    terminating = doc("v1", "Namespace", status={"phase": "Terminating"}, deletionTimestamp="2024-01-01T00:00:00Z")
    assert health(terminating)[0] is Status.TERMINATING
    crd = doc("apiextensions.k8s.io/v1", "CustomResourceDefinition", status={"conditions": []})
    assert health(crd) == (Status.IN_PROGRESS, "Install in progress")
    crd["status"]["conditions"] = [cond("NamesAccepted", "True"), cond("Established", "True")]
    assert health(crd) == (Status.CURRENT, "CRD is established")
    crd["status"]["conditions"] = [cond("NamesAccepted", "False", "MultipleNamesNotAllowed", "kind clashes")]
    assert health(crd) == (Status.FAILED, "kind clashes")
    for kind in ("ConfigMap", "Secret"):
        assert health(doc("v1", kind))[0] is Status.CURRENT


# --- generic rules -------------------------------------------------------------------------------------------------


def test_custom_resources() -> None:
    ready = doc(
        "example.com/v1",
        "Widget",
        generation=3,
        status={"observedGeneration": 3, "conditions": [cond("Ready", "True", "Succeeded", "done")]},
    )
    assert health(ready) == (Status.CURRENT, "done")
    not_ready = doc("example.com/v1", "Widget", status={"conditions": [cond("Ready", "False", "Failed", "no quota")]})
    assert health(not_ready) == (Status.IN_PROGRESS, "no quota")
    stalled = doc("example.com/v1", "Widget", status={"conditions": [cond("Stalled", "True", "Bad", "bad spec")]})
    assert health(stalled) == (Status.FAILED, "bad spec")
    reconciling = doc("example.com/v1", "Widget", status={"conditions": [cond("Reconciling", "True", "P", "working")]})
    assert health(reconciling) == (Status.IN_PROGRESS, "working")
    unobserved = doc("example.com/v1", "Widget", generation=2, status={"observedGeneration": 1})
    assert health(unobserved)[0] is Status.IN_PROGRESS
    assert health(doc("example.com/v1", "Widget")) == (Status.CURRENT, "Resource is current")


# --- report --------------------------------------------------------------------------------------------------------


def ref(name: str) -> ObjectRef:
    return ObjectRef("apps/v1", "Deployment", "ns", name)


def test_report_verdicts_and_messages() -> None:
    ok = Health(Status.CURRENT, "fine")
    slow = Health(Status.IN_PROGRESS, "Ready: 0/2")
    bad = Health(Status.FAILED, "Progress deadline exceeded")
    assert HealthReport({ref("a"): ok}).verdict() is Verdict.HEALTHY
    assert HealthReport({}).verdict() is Verdict.HEALTHY
    waiting = HealthReport({ref("a"): ok, ref("b"): slow})
    assert waiting.verdict(elapsed=1, timeout=10) is Verdict.PROGRESSING
    assert waiting.verdict(elapsed=10, timeout=10) is Verdict.TIMED_OUT
    assert (
        waiting.message(Verdict.TIMED_OUT) == "timeout waiting for: [Deployment/ns/b status: 'InProgress': Ready: 0/2]"
    )
    broken = HealthReport({ref("a"): bad, ref("b"): slow})
    assert broken.verdict() is Verdict.FAILED
    assert broken.verdict(fail_fast=False) is Verdict.PROGRESSING
    assert broken.message() == (
        "failed early due to stalled resources: [Deployment/ns/a status: 'Failed': Progress deadline exceeded]"
    )
    assert [r.name for r, _ in broken.pending] == ["b"]


@pytest.mark.parametrize("status", [Status.TERMINATING, Status.NOT_FOUND])
def test_missing_or_terminating_is_pending(status: Status) -> None:
    report = HealthReport({ref("a"): Health(status, "m")})
    assert report.verdict(elapsed=0, timeout=5) is Verdict.PROGRESSING
    assert report.pending


def test_object_ref_names_and_jobs() -> None:
    assert ref("web").subject == "Deployment/ns/web"
    assert ref("web").group == "apps"
    assert ObjectRef("v1", "Namespace", "", "team").subject == "Namespace/team"
    assert ObjectRef("v1", "Namespace", "", "team").group == ""
    assert is_job(ObjectRef("batch/v1", "Job", "ns", "migrate"))
    assert not is_job(ObjectRef("example.com/v1", "Job", "ns", "other"))
    assert not is_job(ref("web"))


def test_a_message_names_a_bounded_number_of_objects() -> None:
    slow = Health(Status.IN_PROGRESS, "Ready: 0/1")
    report = HealthReport({ref(f"d{i}"): slow for i in range(MESSAGE_OBJECTS + 7)})
    message = report.message(Verdict.TIMED_OUT)
    assert message.count("status: 'InProgress'") == MESSAGE_OBJECTS
    assert message.endswith(", and 7 more]")
