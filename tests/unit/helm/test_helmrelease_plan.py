"""The HelmRelease decision table (Flux's DetermineReleaseState and actionForState), pure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gitops_mesh.reconcile import conditions as c
from helm_controller import helmrelease_plan as plan
from helm_controller import status as st

NOW = datetime(2026, 1, 1, tzinfo=UTC)
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
    }
    out.update(extra)
    return out


def hr(spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "podinfo", "namespace": "apps", "generation": 1, **meta},
        "spec": spec or {},
        "status": status or {},
    }


def state_of(obj: dict[str, Any], storage: list[dict[str, Any]]) -> plan.State:
    return plan.release_state(obj, DESIRED, storage).state


# --- release state -------------------------------------------------------------------------------------


def test_nothing_in_storage_is_absent_and_installs() -> None:
    obj = hr()
    state = plan.release_state(obj, DESIRED, [])
    assert state.state is plan.State.ABSENT
    decision = plan.decide(obj, state)
    assert (decision.verdict, decision.action) == (plan.Verdict.ACT, plan.Action.INSTALL)


@pytest.mark.parametrize("pending", ["pending-install", "pending-upgrade", "pending-rollback"])
def test_a_pending_release_is_locked_and_unlocked(pending: str) -> None:
    obj = hr(status={"history": [snap(1)]})
    state = plan.release_state(obj, DESIRED, [snap(2, pending), snap(1, "superseded")])
    assert state.state is plan.State.LOCKED
    assert pending in state.reason
    assert plan.decide(obj, state).action is plan.Action.UNLOCK


def test_a_release_we_never_recorded_is_unmanaged_and_upgraded_with_a_fresh_history() -> None:
    obj = hr()
    state = plan.release_state(obj, DESIRED, [snap(3)])
    assert state.state is plan.State.UNMANAGED
    decision = plan.decide(obj, state)
    assert decision.action is plan.Action.UPGRADE
    assert decision.history == ()


def test_an_uninstalled_release_without_history_is_absent() -> None:
    assert state_of(hr(), [snap(2, "uninstalled")]) is plan.State.ABSENT


def test_a_release_changed_behind_our_back_is_unmanaged() -> None:
    obj = hr(status={"history": [snap(1)]})
    assert state_of(obj, [snap(2)]) is plan.State.UNMANAGED  # `helm upgrade` by hand: version 2 unseen
    assert state_of(obj, [snap(1, digest="sha256:other")]) is plan.State.UNMANAGED


def test_in_sync_when_chart_and_values_match() -> None:
    obj = hr(status={"history": [snap(1)]})
    state = plan.release_state(obj, DESIRED, [snap(1)])
    assert state.state is plan.State.IN_SYNC
    assert plan.decide(obj, state).verdict is plan.Verdict.DONE


def test_new_chart_version_or_values_are_out_of_sync() -> None:
    obj = hr(status={"history": [snap(1)]})
    newer = plan.Desired("podinfo", "6.6.0", "sha256:aaa")
    assert plan.release_state(obj, newer, [snap(1)]).state is plan.State.OUT_OF_SYNC
    values = plan.Desired("podinfo", "6.5.0", "sha256:bbb")
    state = plan.release_state(obj, values, [snap(1)])
    assert state.state is plan.State.OUT_OF_SYNC
    assert plan.decide(obj, state).action is plan.Action.UPGRADE


def test_untested_release_is_tested_when_tests_are_enabled() -> None:
    obj = hr({"test": {"enable": True}}, {"history": [snap(1)]})
    state = plan.release_state(obj, DESIRED, [snap(1)])
    assert state.state is plan.State.UNTESTED
    assert plan.decide(obj, state).action is plan.Action.TEST
    tested = hr({"test": {"enable": True}}, {"history": [snap(1, testHooks={})]})
    assert state_of(tested, [snap(1)]) is plan.State.IN_SYNC


def test_failed_test_is_a_failed_release_unless_ignored() -> None:
    failed_hooks = {"podinfo-test": {"phase": "Failed"}}
    status = {"history": [snap(1, testHooks=failed_hooks)], "lastAttemptedReleaseAction": "install"}
    assert state_of(hr({"test": {"enable": True}}, status), [snap(1)]) is plan.State.FAILED
    ignored = hr({"test": {"enable": True, "ignoreFailures": True}}, status)
    assert state_of(ignored, [snap(1)]) is plan.State.IN_SYNC
    by_remediation = hr({"test": {"enable": True}, "install": {"remediation": {"ignoreTestFailures": True}}}, status)
    assert state_of(by_remediation, [snap(1)]) is plan.State.IN_SYNC


# --- failed releases: remediation ------------------------------------------------------------------------


def failed_upgrade(spec: dict[str, Any], failures: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    history = [snap(2, "failed", chartVersion="6.5.0"), snap(1, "superseded", chartVersion="6.4.0")]
    obj = hr(
        spec,
        {
            "history": history,
            "lastAttemptedReleaseAction": "upgrade",
            "upgradeFailures": failures,
            "failures": failures,
        },
    )
    return obj, history


def test_failed_upgrade_without_retries_stalls() -> None:
    obj, storage = failed_upgrade({}, 1)
    state = plan.release_state(obj, DESIRED, storage)
    assert state.state is plan.State.FAILED
    decision = plan.decide(obj, state, storage)
    assert decision.verdict is plan.Verdict.STALLED
    assert decision.stall_reason == st.Reason.RETRIES_EXCEEDED


def test_failed_upgrade_with_retries_rolls_back_to_the_previous_release() -> None:
    obj, storage = failed_upgrade({"upgrade": {"remediation": {"retries": 2}}}, 1)
    decision = plan.decide(obj, plan.release_state(obj, DESIRED, storage), storage)
    assert decision.action is plan.Action.ROLLBACK
    assert decision.target is not None
    assert decision.target["version"] == 1


def test_last_failure_is_remediated_by_default_when_upgrade_has_retries() -> None:
    obj, storage = failed_upgrade({"upgrade": {"remediation": {"retries": 1}}}, 2)  # exhausted: 2 > 1
    decision = plan.decide(obj, plan.release_state(obj, DESIRED, storage), storage)
    assert decision.action is plan.Action.ROLLBACK
    no_last, _ = failed_upgrade({"upgrade": {"remediation": {"retries": 1, "remediateLastFailure": False}}}, 2)
    assert plan.decide(no_last, plan.release_state(no_last, DESIRED, storage), storage).verdict is plan.Verdict.STALLED


def test_uninstall_strategy_uninstalls() -> None:
    obj, storage = failed_upgrade({"upgrade": {"remediation": {"retries": 3, "strategy": "uninstall"}}}, 1)
    assert plan.decide(obj, plan.release_state(obj, DESIRED, storage), storage).action is plan.Action.UNINSTALL


def test_a_missing_rollback_target_stalls_and_a_changed_one_upgrades() -> None:
    obj, storage = failed_upgrade({"upgrade": {"remediation": {"retries": 2}}}, 1)
    gone = plan.decide(obj, plan.release_state(obj, DESIRED, storage), storage[:1])
    assert (gone.verdict, gone.stall_reason) == (plan.Verdict.STALLED, st.Reason.MISSING_ROLLBACK_TARGET)
    tampered = [storage[0], {**storage[1], "digest": "sha256:tampered"}]
    assert plan.decide(obj, plan.release_state(obj, DESIRED, tampered), tampered).action is plan.Action.UPGRADE


def test_no_failure_count_means_conditions_changed_so_upgrade_again() -> None:
    obj, storage = failed_upgrade({"upgrade": {"remediation": {"retries": 2}}}, 0)
    assert plan.decide(obj, plan.release_state(obj, DESIRED, storage), storage).action is plan.Action.UPGRADE


def test_retry_on_failure_upgrades_a_failed_release_instead_of_remediating() -> None:
    spec = {"upgrade": {"strategy": {"name": "RetryOnFailure", "retryInterval": "2m"}}}
    obj, storage = failed_upgrade(spec, 5)
    decision = plan.decide(obj, plan.release_state(obj, DESIRED, storage), storage)
    assert decision.action is plan.Action.UPGRADE
    assert plan.active_retry(obj) == 120.0
    assert plan.after_failure(obj) is plan.Next.RETRY_AFTER_INTERVAL
    remediating, _ = failed_upgrade({"upgrade": {"remediation": {"retries": 2}}}, 1)
    # A render failure stores nothing: no quick requeue, the runner's retry interval applies.
    assert plan.after_failure(remediating) is plan.Next.STOP
    assert plan.retry_interval({"install": {"strategy": {"name": "RetryOnFailure"}}}, st.ReleaseAction.INSTALL) == 300


def test_install_out_of_retries_stalls_unless_forced() -> None:
    status = {"lastAttemptedReleaseAction": "install", "installFailures": 1, "failures": 1}
    obj = hr({}, status)
    decision = plan.decide(obj, plan.release_state(obj, DESIRED, []))
    assert (decision.verdict, decision.stall_reason) == (plan.Verdict.STALLED, st.Reason.RETRIES_EXCEEDED)
    forced = hr(
        {}, status, annotations={plan.FORCE_AT: "t1", plan.REQUESTED_AT: "t1"}
    )  # forceAt only counts with requestedAt of the same value
    decision = plan.decide(forced, plan.release_state(forced, DESIRED, []))
    assert (decision.action, decision.forced) == (plan.Action.INSTALL, True)
    handled = hr({}, {**status, "lastHandledForceAt": "t1"}, annotations={plan.FORCE_AT: "t1", plan.REQUESTED_AT: "t1"})
    assert plan.decide(handled, plan.release_state(handled, DESIRED, [])).verdict is plan.Verdict.STALLED
    unrequested = hr({}, status, annotations={plan.FORCE_AT: "t1"})
    assert plan.force_request(unrequested) is None


def test_force_upgrades_an_in_sync_release() -> None:
    obj = hr({}, {"history": [snap(1)]}, annotations={plan.FORCE_AT: "x", plan.REQUESTED_AT: "x"})
    decision = plan.decide(obj, plan.release_state(obj, DESIRED, [snap(1)]))
    assert (decision.action, decision.forced) == (plan.Action.UPGRADE, True)


def test_install_remediation_is_uninstall_and_skips_last_failure_by_default() -> None:
    r = plan.remediation_of({"install": {"remediation": {"retries": 2}}}, st.ReleaseAction.INSTALL)
    assert (r.strategy, r.remediate_last_failure) == ("uninstall", False)
    assert r.retries_exhausted({"installFailures": 3})
    assert not r.retries_exhausted({"installFailures": 2})
    unlimited = plan.remediation_of({"install": {"remediation": {"retries": -1}}}, st.ReleaseAction.INSTALL)
    assert not unlimited.retries_exhausted({"installFailures": 1000})


# --- failure counters reset ------------------------------------------------------------------------------


def attempted(**status: Any) -> dict[str, Any]:
    base = {
        "lastAttemptedGeneration": 1,
        "lastAttemptedRevision": "6.5.0",
        "lastAttemptedConfigDigest": "sha256:aaa",
        "failures": 3,
        "upgradeFailures": 2,
        "installFailures": 1,
    }
    return hr({}, {**base, **status})


def test_counters_kept_for_the_same_attempt() -> None:
    obj = attempted()
    assert plan.apply_reset(obj, DESIRED) is None
    assert obj["status"]["upgradeFailures"] == 2


@pytest.mark.parametrize(
    ("desired", "status", "why"),
    [
        (DESIRED, {"lastAttemptedGeneration": 0}, "generation"),
        (plan.Desired("podinfo", "6.6.0", "sha256:aaa"), {}, "chart version"),
        (plan.Desired("podinfo", "6.5.0", "sha256:bbb"), {}, "values"),
    ],
)
def test_counters_reset_on_a_new_attempt(desired: plan.Desired, status: dict[str, Any], why: str) -> None:
    obj = attempted(**status)
    reason = plan.apply_reset(obj, desired)
    assert reason is not None
    assert why in reason
    assert not {"failures", "installFailures", "upgradeFailures"} & obj["status"].keys()


def test_reset_annotation_clears_counters_once() -> None:
    obj = attempted()
    obj["metadata"]["annotations"] = {plan.RESET_AT: "r1", plan.REQUESTED_AT: "r1"}
    assert plan.apply_reset(obj, DESIRED) == "reset requested through annotation"
    assert obj["status"]["lastHandledResetAt"] == "r1"
    obj["status"]["upgradeFailures"] = 4
    assert plan.apply_reset(obj, DESIRED) is None  # handled: not again
    assert obj["status"]["upgradeFailures"] == 4


# --- the loop's strategy ---------------------------------------------------------------------------------


def test_each_action_type_runs_once_per_reconcile() -> None:
    obj, _ = failed_upgrade({"upgrade": {"remediation": {"retries": 2}}}, 1)
    assert plan.before_action(obj, plan.Action.UPGRADE, []) is plan.Next.CONTINUE
    assert plan.before_action(obj, plan.Action.UPGRADE, [plan.ActionType.RELEASE]) is plan.Next.REQUEUE
    assert plan.before_action(obj, plan.Action.TEST, [plan.ActionType.RELEASE]) is plan.Next.CONTINUE


def test_after_remediation_requeue_while_retries_remain_then_stall() -> None:
    obj, _ = failed_upgrade({"upgrade": {"remediation": {"retries": 2}}}, 1)
    assert plan.after_action(obj, plan.Action.ROLLBACK) is plan.Next.REQUEUE
    assert plan.after_action(obj, plan.Action.UPGRADE) is plan.Next.CONTINUE
    spent, _ = failed_upgrade({"upgrade": {"remediation": {"retries": 2}}}, 3)
    assert plan.after_action(spent, plan.Action.ROLLBACK) is plan.Next.STALL
    assert plan.stall_message(spent) == "Failed to upgrade after 3 attempt(s)"
    uninstall, _ = failed_upgrade({"upgrade": {"remediation": {"retries": 2, "strategy": "uninstall"}}}, 3)
    # An uninstalled release is installed again by the next reconcile: requeue, not stall.
    assert plan.after_action(uninstall, plan.Action.UNINSTALL) is plan.Next.REQUEUE


# --- history and Ready -----------------------------------------------------------------------------------


def test_history_truncated_to_the_previous_deployed_release() -> None:
    snaps = [snap(4, "failed"), snap(3, "failed"), snap(2, "superseded"), snap(1, "superseded")]
    assert [s["version"] for s in st.truncate(snaps, ignore_tests=False)] == [4, 3, 2]
    failed_test = [snap(3), snap(2, "superseded", testHooks={"t": {"phase": "Failed"}}), snap(1, "superseded")]
    assert [s["version"] for s in st.truncate(failed_test, ignore_tests=False)] == [3, 2, 1]
    assert [s["version"] for s in st.truncate(failed_test, ignore_tests=True)] == [3, 2]
    many = [snap(v, "failed") for v in range(9, 0, -1)]
    assert len(st.truncate(many, ignore_tests=False)) == st.DEFAULT_MAX_HISTORY


def test_ready_summarises_released_test_and_remediated() -> None:
    obj = hr({"test": {"enable": True}})
    c.mark_true(obj, st.Condition.RELEASED, st.Reason.INSTALL_SUCCEEDED, "installed", now=NOW)
    c.mark_false(obj, st.Condition.TEST_SUCCESS, st.Reason.TEST_FAILED, "test failed", now=NOW)
    st.summarize(obj, test_enabled=True, ignore_test_failures=False, now=NOW)
    assert (c.get_reason(obj, "Ready"), c.is_false(obj, "Ready")) == (st.Reason.TEST_FAILED, True)
    st.summarize(obj, test_enabled=True, ignore_test_failures=True, now=NOW)
    assert c.get_reason(obj, "Ready") == st.Reason.INSTALL_SUCCEEDED
    c.mark_true(obj, st.Condition.REMEDIATED, st.Reason.ROLLBACK_SUCCEEDED, "rolled back", now=NOW)
    st.summarize(obj, test_enabled=False, ignore_test_failures=False, now=NOW)
    assert c.is_false(obj, "Ready")  # a remediation is a failure of the release
    assert c.get_reason(obj, "Ready") == st.Reason.ROLLBACK_SUCCEEDED
    assert c.get(obj, st.Condition.TEST_SUCCESS) is None  # tests disabled: the condition goes


def test_flux_messages() -> None:
    s = snap(2)
    assert st.upgrade_success(s) == "Helm upgrade succeeded for release apps/podinfo.v2 with chart podinfo@6.5.0"
    assert st.install_failure("apps", "podinfo", "podinfo", "6.5.0", "boom\n") == (
        "Helm install failed for release apps/podinfo with chart podinfo@6.5.0: boom"
    )
    assert st.test_success({**s, "testHooks": {"a": {}, "b": {}}}).endswith("2 test hooks completed successfully")
