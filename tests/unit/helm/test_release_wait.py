"""Waiting for a release's objects, pure: when the plan waits, for how long, and the objects a manifest lists."""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from gitops_mesh.kube.health import ObjectRef
from helm_controller import helmrelease_plan as plan
from helm_controller import status as st
from helm_controller.releases import MAX_MANIFEST_OBJECTS, UnreadableManifest, decode_release, manifest_objects

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
DESIRED = plan.Desired(chart_name="podinfo", chart_version="6.5.0", config_digest="sha256:aaa")


def snap(version: int, status: str = "deployed", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": "podinfo",
        "namespace": "apps",
        "version": version,
        "status": status,
        "chartName": "podinfo",
        "chartVersion": "6.5.0",
        "configDigest": "sha256:aaa",
        "digest": f"sha256:d{version}",
        "lastDeployed": "2026-01-01T11:59:00Z",
    }
    out.update(extra)
    return out


def hr(spec: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "podinfo", "namespace": "apps", "generation": 1}, "spec": spec or {}, "status": status}


def wait_of(obj: dict[str, Any], storage: list[dict[str, Any]]) -> plan.Wait | None:
    return plan.pending_wait(obj, plan.release_state(obj, DESIRED, storage), storage)


# --- when the plan waits ------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["install", "upgrade"])
def test_a_deployed_release_whose_action_has_not_ended_is_waited_for(action: str) -> None:
    latest = snap(2, action=action)
    obj = hr(history=[latest, snap(1, "superseded")], lastAttemptedReleaseAction=action)
    wait = wait_of(obj, [snap(2), snap(1, "superseded")])
    assert wait is not None
    assert wait.action is plan.Action(action)
    assert wait.snapshot["version"] == 2
    assert wait.started == datetime(2026, 1, 1, 11, 59, tzinfo=UTC)  # Helm's lastDeployed: the action's start
    assert (wait.timeout, wait.enabled, wait.jobs) == (300.0, True, True)  # Flux's 5m default
    assert wait.elapsed(NOW) == 60.0


def test_the_actions_own_timeout_and_wait_switches() -> None:
    spec = {"timeout": "10m", "upgrade": {"timeout": "30s", "disableWaitForJobs": True}}
    obj = hr(spec, history=[snap(2, action="upgrade")])
    wait = wait_of(obj, [snap(2)])
    assert wait is not None
    assert (wait.timeout, wait.enabled, wait.jobs) == (30.0, True, False)
    wait = wait_of(hr({"timeout": "10m"}, history=[snap(2, action="upgrade")]), [snap(2)])
    assert wait is not None
    assert wait.timeout == 600.0
    # disableWait set while waiting: the wait ends at once (the reconciler looks at nothing)
    wait = wait_of(hr({"install": {"disableWait": True}}, history=[snap(1, action="install")]), [snap(1)])
    assert wait is not None
    assert not wait.enabled


def test_nothing_is_waited_for_once_the_action_ended_or_storage_moved_on() -> None:
    waiting = [snap(2, action="upgrade")]
    assert wait_of(hr(history=waiting, lastAttemptedReleaseActionDuration="3s"), [snap(2)]) is None
    assert wait_of(hr(history=waiting), [snap(2, "failed")]) is None  # helm or a past wait failed it
    assert wait_of(hr(history=waiting), [snap(3, action="upgrade"), snap(2)]) is None  # another writer
    assert wait_of(hr(history=waiting), [snap(2, digest="sha256:other")]) is None
    assert wait_of(hr(history=waiting), []) is None
    assert wait_of(hr(history=[snap(2)]), [snap(2)]) is None  # not made by a waited action (adopted, unlocked)
    assert wait_of(hr(), [snap(2)]) is None


def test_a_new_chart_or_values_ends_an_upgrade_wait_but_not_a_rollback_wait() -> None:
    changed = plan.Desired(chart_name="podinfo", chart_version="6.6.0", config_digest="sha256:aaa")
    for action, expected in (("upgrade", False), ("install", False), ("rollback", True)):
        obj = hr(history=[snap(3, action=action)])
        state = plan.release_state(obj, changed, [snap(3)])
        assert state.state is plan.State.OUT_OF_SYNC
        assert (plan.pending_wait(obj, state, [snap(3)]) is not None) is expected


def test_a_wait_without_a_start_time_has_no_time_left() -> None:
    obj = hr(history=[snap(1, action="install", lastDeployed=None)])
    wait = wait_of(obj, [snap(1)])
    assert wait is not None
    assert wait.started is None
    assert math.isinf(wait.elapsed(NOW))


def test_polls_come_at_the_poll_interval_or_just_past_the_deadline() -> None:
    wait = plan.Wait(plan.Action.UPGRADE, snap(2), NOW, timeout=10.0, enabled=True, jobs=True)
    assert wait.poll_after(NOW, 2.0) == 2.0
    # The deadline is the timeout past the end of lastDeployed's second (the time is truncated to it).
    assert wait.poll_after(NOW + timedelta(seconds=10), 2.0) == pytest.approx(1.1)
    assert wait.poll_after(NOW + timedelta(seconds=60), 2.0) == 0.1  # overdue: at once, never negative


def test_the_timeout_never_ends_early_for_a_start_time_truncated_to_the_second() -> None:
    # lastDeployed 12:00:00Z may stand for an action that began at 12:00:00.9: its 10 s end at 12:00:10.9 at the
    # earliest, so the timeout counts from the end of that second; the duration still counts from the stamp.
    wait = plan.Wait(plan.Action.UPGRADE, snap(2), NOW, timeout=10.0, enabled=True, jobs=True)
    assert wait.waited(NOW + timedelta(seconds=10)) == pytest.approx(9.0)
    assert wait.waited(NOW + timedelta(seconds=11)) == pytest.approx(10.0)
    assert wait.elapsed(NOW + timedelta(seconds=10)) == pytest.approx(10.0)
    assert wait.waited(NOW) == 0.0


def test_action_duration_is_the_wait_marker() -> None:
    status: dict[str, Any] = {"lastAttemptedReleaseActionDuration": "1s"}
    plan.begin_action(status)
    assert plan.ACTION_DURATION not in status
    plan.end_action(status, 65.5)
    assert status[plan.ACTION_DURATION] == "1m5.5s"
    plan.end_action(status, math.inf)
    assert status[plan.ACTION_DURATION] == "0s"


def test_an_abandoned_wait_ends_unjudged() -> None:
    status: dict[str, Any] = {"history": [snap(2, action="upgrade")]}
    assert plan.end_abandoned_wait(status, NOW)
    assert status[plan.ACTION_DURATION] == "1m0s"
    assert not plan.end_abandoned_wait(status, NOW)  # already ended
    assert not plan.end_abandoned_wait({"history": [snap(2)]}, NOW)
    assert not plan.end_abandoned_wait({}, NOW)


# --- wording --------------------------------------------------------------------------------------------------


def test_messages_as_flux_and_helm_write_them() -> None:
    assert st.running("upgrade", 300) == "Running 'upgrade' action with timeout of 5m0s"
    assert st.helm_wait_failure("upgrade", "web", "timeout") == 'Upgrade "web" failed: timeout'
    assert st.helm_wait_failure("install", "web", "timeout") == 'Release "web" failed: timeout'
    assert st.helm_wait_failure("rollback", "web", "timeout") == 'Release "web" failed: timeout'
    durations = {0: "0s", 0.25: "250ms", 2.5: "2.5s", 300: "5m0s", 3600: "1h0m0s", 5400.5: "1h30m0.5s"}
    assert {k: st.go_duration(k) for k in durations} == durations


# --- the objects a manifest lists ----------------------------------------------------------------------------

MANIFEST = """---
# Source: podinfo/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: web
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: other
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: reader
---
apiVersion: v1
kind: ConfigMapList
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: a}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: a}
---
kind: NoApiVersion
metadata: {name: x}
---
apiVersion: v1
kind: ConfigMap
metadata: {}
---
- just a list
"""


def test_manifest_objects_in_order_with_the_release_namespace() -> None:
    assert manifest_objects(MANIFEST, "apps") == [
        ObjectRef("v1", "Service", "apps", "web"),
        ObjectRef("apps/v1", "Deployment", "other", "web"),
        ObjectRef("rbac.authorization.k8s.io/v1", "ClusterRole", "apps", "reader"),  # scope decided by discovery
        ObjectRef("v1", "ConfigMap", "apps", "a"),  # a List flattened, duplicates once
    ]
    assert manifest_objects("", "apps") == []


def test_a_hostile_or_broken_manifest_is_refused_without_quoting_it() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
    )
    with pytest.raises(UnreadableManifest, match="release manifest"):
        manifest_objects(bomb, "apps")
    with pytest.raises(UnreadableManifest) as broken:
        manifest_objects("password: hunter2\n  : [unclosed", "apps")
    assert "hunter2" not in str(broken.value)
    many = "".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n" for i in range(MAX_MANIFEST_OBJECTS + 1)
    )
    with pytest.raises(UnreadableManifest, match=f"more than {MAX_MANIFEST_OBJECTS} objects"):
        manifest_objects(many, "apps")


def test_a_release_lists_the_objects_of_its_manifest() -> None:
    record = {"name": "web", "namespace": "apps", "version": 1, "info": {"status": "deployed"}, "manifest": MANIFEST}
    release = decode_release(base64.b64encode(orjson.dumps(record)))
    assert [r.subject for r in release.objects()][:2] == ["Service/apps/web", "Deployment/other/web"]
    assert "ClusterRole" not in repr(release)  # the manifest stays out of logs


def test_older_snapshots_follow_the_records_an_action_superseded() -> None:
    hooks = {"t": {"phase": "Succeeded"}}
    status: dict[str, Any] = {"history": [snap(2, action="upgrade"), snap(1, testHooks=hooks, action="install")]}
    stored = [snap(2), snap(1, "superseded", digest="sha256:new1"), snap(0, "superseded")]
    st.follow_storage(status, stored)
    latest, previous = status["history"]
    assert latest == snap(2, action="upgrade")  # the action's own snapshot is left as recorded
    assert (previous["status"], previous["digest"], previous["testHooks"]) == ("superseded", "sha256:new1", hooks)
    # a rollback to it now verifies against storage
    obj = hr(
        {"upgrade": {"remediation": {"retries": 1}}},
        history=[snap(2, "failed", action="upgrade"), previous],
        lastAttemptedReleaseAction="upgrade",
        upgradeFailures=1,
    )
    storage = [snap(2, "failed"), snap(1, "superseded", digest="sha256:new1")]
    decision = plan.decide(obj, plan.release_state(obj, DESIRED, storage), storage)
    assert decision.action is plan.Action.ROLLBACK
    unchanged: dict[str, Any] = {"history": [snap(2), snap(1, "superseded")]}
    st.follow_storage(unchanged, [snap(2), snap(1, "superseded", digest="sha256:other")])
    assert unchanged["history"][1]["digest"] == "sha256:d1"  # same status: nothing to follow
