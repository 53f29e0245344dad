"""result: the finaliser's conditions, observedGeneration, lastHandledReconcileAt and requeue decision."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_mesh.bus.envelope import EventKind
from gitops_mesh.errors import (
    DependencyNotReady,
    Forbidden,
    Invalid,
    InvalidSpec,
    KubeUnavailable,
    NotFound,
    TerminalError,
    TransientError,
)
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import (
    DEFAULT_READY_MESSAGE,
    REQUESTED_AT,
    Announcement,
    Outcome,
    OutcomeKind,
    conclude,
    progressing,
    reconcile_requested,
    requested_at,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def obj(generation: int = 2, observed: int = 1, token: str | None = None) -> dict[str, Any]:
    o: dict[str, Any] = {
        "metadata": {"name": "app", "namespace": "default", "generation": generation},
        "spec": {"interval": "5m"},
        "status": {"observedGeneration": observed},
    }
    if token is not None:
        o["metadata"]["annotations"] = {REQUESTED_AT: token}
    return o


def types(o: dict[str, Any]) -> list[str]:
    return [x["type"] for x in c.conditions_of(o)]


# -- reconcile requests


def test_requested_at_reads_the_annotation_token() -> None:
    assert requested_at(obj()) is None
    assert requested_at(obj(token="whatever-token")) == "whatever-token"


def test_reconcile_requested_until_the_token_is_echoed() -> None:
    o = obj(token="t1")
    assert reconcile_requested(o)
    conclude(o, Outcome.succeeded(requeue_after=60), now=T0)
    assert o["status"]["lastHandledReconcileAt"] == "t1"
    assert not reconcile_requested(o)
    o["metadata"]["annotations"][REQUESTED_AT] = "t2"
    assert reconcile_requested(o)


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome.succeeded(requeue_after=60),
        Outcome.failed(KubeUnavailable("apiserver down")),
        Outcome.failed(DependencyNotReady("dep not ready")),
        Outcome.failed(InvalidSpec("bad")),
        Outcome.suspended(),
    ],
    ids=lambda o: str(o.kind),
)
def test_every_outcome_echoes_the_request_token(outcome: Outcome) -> None:
    o = obj(token="2024-01-01T00:00:00.123Z")
    conclude(o, outcome, now=T0)
    assert o["status"]["lastHandledReconcileAt"] == "2024-01-01T00:00:00.123Z"


# -- outcomes


def test_success_on_a_fresh_object() -> None:
    o = obj()
    done = conclude(o, Outcome.succeeded(requeue_after=300), now=T0)
    assert (done.requeue_after, done.error) == (300, None)
    assert done.result() == 300
    assert types(o) == ["Ready"]
    assert c.get_reason(o, "Ready") == "ReconciliationSucceeded"
    assert c.get_message(o, "Ready") == DEFAULT_READY_MESSAGE
    assert o["status"]["observedGeneration"] == 2


def test_success_after_progress_clears_reconciling_and_takes_the_message() -> None:
    o = obj()
    progressing(o, "Fetching manifests for revision main@sha1:abc", now=T0)
    assert c.is_reconciling(o)
    assert c.is_unknown(o, "Ready")
    conclude(o, Outcome.succeeded(requeue_after=None, message="Applied revision: main@sha1:abc"), now=at(5))
    assert types(o) == ["Ready"]
    assert c.is_true(o, "Ready")
    assert c.get_message(o, "Ready") == "Applied revision: main@sha1:abc"


def test_success_without_message_keeps_a_ready_the_reconcile_set() -> None:
    o = obj()
    c.mark_true(o, "Ready", "Succeeded", "stored artifact for revision 'abc'", now=T0)
    conclude(o, Outcome.succeeded(requeue_after=60), now=at(30))
    ready = c.get(o, "Ready")
    assert ready is not None
    assert (ready["reason"], ready["message"]) == ("Succeeded", "stored artifact for revision 'abc'")
    assert ready["lastTransitionTime"] == c.format_time(T0)


def test_success_with_ready_false_left_behind_is_a_failure() -> None:
    o = obj()
    c.mark_false(o, "Ready", c.Reason.HEALTH_CHECK_FAILED, "deployment not ready", now=T0)
    done = conclude(o, Outcome.succeeded(requeue_after=60), now=at(1))
    assert isinstance(done.error, TransientError)
    assert str(done.error) == "deployment not ready"
    assert done.error.reason == "HealthCheckFailed"
    assert done.requeue_after is None
    assert c.get_reason(o, "Ready") == "HealthCheckFailed"
    assert o["status"]["observedGeneration"] == 1


def test_healthy_periodic_runs_do_not_flap_ready() -> None:
    o = obj()
    conclude(o, Outcome.succeeded(requeue_after=60, message="Applied revision: r1"), now=T0)
    for minute in range(1, 4):
        progressing(o, "Detecting drift", now=at(60 * minute))
        assert c.is_true(o, "Ready")  # progress on a Ready object leaves Ready alone (no drift)
        conclude(o, Outcome.succeeded(requeue_after=60, message="Applied revision: r1"), now=at(60 * minute + 1))
    ready = c.get(o, "Ready")
    assert ready is not None
    assert ready["lastTransitionTime"] == c.format_time(T0)


def test_progress_with_drift_marks_ready_unknown() -> None:
    o = obj()
    conclude(o, Outcome.succeeded(requeue_after=60, message="ok"), now=T0)
    progressing(o, "drift detected", now=at(1), drift=True)
    assert c.is_unknown(o, "Ready")
    assert c.get_reason(o, "Ready") == "Progressing"


def test_transient_failure() -> None:
    o = obj()
    progressing(o, "Building manifests", now=T0)
    err = KubeUnavailable("connection refused")
    done = conclude(o, Outcome.failed(err), now=at(1))
    assert done.error is err
    assert done.requeue_after is None
    with pytest.raises(KubeUnavailable):
        done.result()
    assert types(o) == ["Reconciling", "Ready"]
    assert c.is_false(o, "Ready")
    assert c.get_reason(o, "Ready") == "Failed"
    assert c.get_message(o, "Ready") == "connection refused"
    reconciling = c.get(o, "Reconciling")
    assert reconciling is not None
    assert (reconciling["reason"], reconciling["message"]) == ("ProgressingWithRetry", "Building manifests")
    assert o["status"]["observedGeneration"] == 1  # this generation has not been handled


def test_transient_failure_keeps_the_reconciles_own_ready_false() -> None:
    o = obj()
    c.mark_false(o, "Ready", c.Reason.BUILD_FAILED, "kustomize build failed: x", now=T0)
    conclude(o, Outcome.failed(TransientError("kustomize build failed: x")), now=at(1))
    assert c.get_reason(o, "Ready") == "BuildFailed"


def test_transient_failure_replaces_the_last_cycles_ready_false() -> None:
    o = obj()
    conclude(o, Outcome.failed(DependencyNotReady("dependency 'ns/infra' is not ready")), now=T0)
    before = copy.deepcopy(c.get(o, "Ready"))
    err = TransientError("failed to decode 'apps/web.yaml'", reason="BuildFailed")
    conclude(o, Outcome.failed(err), now=at(1), ready_before=before)
    assert c.get_reason(o, "Ready") == "BuildFailed"
    assert c.get_message(o, "Ready") == "failed to decode 'apps/web.yaml'"


def test_transient_failure_keeps_a_ready_false_the_reconcile_changed() -> None:
    o = obj()
    conclude(o, Outcome.failed(DependencyNotReady("dependency 'ns/infra' is not ready")), now=T0)
    before = copy.deepcopy(c.get(o, "Ready"))
    c.mark_false(o, "Ready", c.Reason.BUILD_FAILED, "kustomize build failed: x", now=at(1))
    conclude(o, Outcome.failed(TransientError("kustomize build failed: x")), now=at(1), ready_before=before)
    assert c.get_reason(o, "Ready") == "BuildFailed"


def test_transient_failure_overrides_ready_true() -> None:
    o = obj()
    conclude(o, Outcome.succeeded(requeue_after=60), now=T0)
    conclude(o, Outcome.failed(TransientError("oops", reason="ArtifactFailed")), now=at(1))
    assert c.is_false(o, "Ready")
    assert c.get_reason(o, "Ready") == "ArtifactFailed"


def test_foreign_errors_are_transient_failures() -> None:
    outcome = Outcome.failed(ValueError("bad value"))
    assert outcome.kind is OutcomeKind.TRANSIENT
    o = obj()
    done = conclude(o, outcome, now=T0)
    assert isinstance(done.error, TransientError)
    assert isinstance(done.error.__cause__, ValueError)
    assert done.error.retry_after is None  # the engine's backoff
    assert (c.get_reason(o, "Ready"), c.get_message(o, "Ready")) == ("Failed", "bad value")
    assert Outcome.failed(RuntimeError()).message == "RuntimeError"


def test_dependency_not_ready_waits_on_the_dependency_interval() -> None:
    o = obj()
    done = conclude(
        o, Outcome.failed(DependencyNotReady("dependency 'default/db' is not ready")), now=T0, requeue_dependency=15
    )
    assert (done.requeue_after, done.error) == (15, None)
    assert done.result() == 15
    assert c.get_reason(o, "Ready") == "DependencyNotReady"
    assert c.get_message(o, "Ready") == "dependency 'default/db' is not ready"
    assert o["status"]["observedGeneration"] == 1


def test_dependency_not_ready_keeps_a_reason_the_error_names() -> None:
    o = obj()
    err = DependencyNotReady("OCIRepository 'apps/web' is not ready: no artifact", reason="SourceNotReady")
    done = conclude(o, Outcome.failed(err), now=T0, requeue_dependency=15)
    assert (done.requeue_after, done.error) == (15, None)  # still a wait, not a failure
    assert c.get_reason(o, "Ready") == "SourceNotReady"


def test_dependency_not_ready_honours_retry_after() -> None:
    done = conclude(obj(), Outcome.failed(DependencyNotReady("source not ready", retry_after=2.5)), now=T0)
    assert done.requeue_after == 2.5


def test_terminal_failure_stalls() -> None:
    o = obj()
    progressing(o, "Fetching", now=T0)
    err = InvalidSpec("spec.url: unsupported scheme 'ftp'")
    done = conclude(o, Outcome.failed(err), now=at(1))
    assert done.error is err
    assert done.requeue_after is None
    assert types(o) == ["Stalled", "Ready"]
    for t in ("Stalled", "Ready"):
        assert c.get_reason(o, t) == "InvalidSpec"
        assert c.get_message(o, t) == "spec.url: unsupported scheme 'ftp'"
    assert c.is_false(o, "Ready")
    assert o["status"]["observedGeneration"] == 2  # handled: retrying this spec cannot help


def test_terminal_reason_defaults_to_failed() -> None:
    o = obj()
    conclude(o, Outcome.failed(TerminalError("cannot work")), now=T0)
    assert c.get_reason(o, "Stalled") == "Failed"


@pytest.mark.parametrize("error", [NotFound("secret 'ns/token' not found"), Forbidden("forbidden"), Invalid("no")])
def test_api_errors_are_retried_not_stalled(error: Exception) -> None:
    """A Secret created later, RBAC granted later, a CRD installed later: Flux retries, so do we."""
    o = obj()
    outcome = Outcome.failed(error)
    assert outcome.kind is OutcomeKind.TRANSIENT
    done = conclude(o, outcome, now=T0)
    assert not c.is_stalled(o)
    assert c.is_false(o, "Ready")
    assert isinstance(done.error, TransientError)
    assert done.error.__cause__ is error
    assert o["status"]["observedGeneration"] == 1  # this generation is not handled yet


def test_transient_failure_retries_after_the_kinds_retry_interval() -> None:
    done = conclude(obj(), Outcome.failed(TransientError("apply failed")), now=T0, retry_interval=120)
    assert isinstance(done.error, TransientError)
    assert done.error.retry_after == 120
    with pytest.raises(TransientError):
        done.result()


def test_an_errors_own_retry_after_wins_over_the_retry_interval() -> None:
    err = TransientError("rate limited", retry_after=7)
    done = conclude(obj(), Outcome.failed(err), now=T0, retry_interval=120)
    assert done.error is err
    assert err.retry_after == 7


def test_outcomes_carry_their_announcements() -> None:
    a = Announcement(EventKind.APPLIED, "ReconciliationSucceeded", "Deployment/apps/web configured", revision="r1")
    outcome = Outcome.succeeded(requeue_after=60, announce=[a])
    assert outcome.announce == (a,)
    assert Outcome.succeeded(requeue_after=60).announce == ()


def test_success_after_stalled_clears_stalled() -> None:
    o = obj()
    conclude(o, Outcome.failed(InvalidSpec("bad")), now=T0)
    o["metadata"]["generation"] = 3
    conclude(o, Outcome.succeeded(requeue_after=60, message="fixed"), now=at(1))
    assert types(o) == ["Ready"]
    assert c.is_ready(o)
    assert o["status"]["observedGeneration"] == 3


def test_transient_after_stalled_clears_stalled() -> None:
    o = obj()
    conclude(o, Outcome.failed(InvalidSpec("bad")), now=T0)
    conclude(o, Outcome.failed(KubeUnavailable("down")), now=at(1))
    assert not c.is_stalled(o)


def test_suspended_leaves_conditions_alone() -> None:
    o = obj()
    c.mark_false(o, "Ready", "Failed", "old failure", now=T0)
    before = copy.deepcopy(c.conditions_of(o))
    done = conclude(o, Outcome.suspended(), now=at(60))
    assert (done.requeue_after, done.error) == (None, None)
    assert c.conditions_of(o) == before
    assert o["status"]["observedGeneration"] == 1


def test_suspended_ready_object_records_the_generation_it_saw() -> None:
    # Setting spec.suspend bumps the generation; a Ready object acknowledges it, as Flux does.
    o = obj(generation=5, observed=4)
    c.mark_true(o, "Ready", "Succeeded", "ok", now=T0)
    conclude(o, Outcome.suspended(), now=at(1))
    assert o["status"]["observedGeneration"] == 5


def test_suspended_without_token_does_not_create_a_status() -> None:
    o: dict[str, Any] = {"metadata": {"name": "x", "generation": 1}}
    conclude(o, Outcome.suspended(), now=T0)
    assert "status" not in o


# -- properties

outcomes = st.one_of(
    st.builds(lambda s: Outcome.succeeded(requeue_after=s), st.sampled_from([None, 60.0])),
    st.builds(lambda m: Outcome.succeeded(requeue_after=60, message=m), st.sampled_from(["r1", "r2"])),
    st.builds(lambda m: Outcome.failed(TransientError(m)), st.sampled_from(["e1", "e2"])),
    st.builds(lambda m: Outcome.failed(TransientError(m, reason="BuildFailed")), st.sampled_from(["e1"])),
    st.builds(lambda m: Outcome.failed(DependencyNotReady(m)), st.sampled_from(["d1"])),
    st.builds(lambda m: Outcome.failed(TerminalError(m, reason="InvalidSpec")), st.sampled_from(["t1", "t2"])),
    st.just(Outcome.suspended()),
)
step = st.tuples(st.booleans(), st.booleans(), outcomes)  # (progress first?, bump generation?, outcome)


def check_kstatus(o: dict[str, Any]) -> None:
    assert not (c.is_stalled(o) and c.is_reconciling(o))
    if c.is_stalled(o):
        assert c.is_false(o, "Ready")
    if c.is_true(o, "Ready"):
        assert not c.has(o, "Reconciling")
        assert not c.has(o, "Stalled")
    if c.is_ready(o) or c.is_stalled(o):
        assert o["status"]["observedGeneration"] == o["metadata"]["generation"]


@given(st.lists(step, max_size=25))
def test_any_history_leaves_a_kstatus_compliant_status(history: list[tuple[bool, bool, Outcome]]) -> None:
    o = obj()
    now = T0
    for progress, bump, outcome in history:
        now += timedelta(seconds=10)
        if bump:
            o["metadata"]["generation"] += 1
        if progress:
            progressing(o, "working", now=now)
        observed_before = o["status"].get("observedGeneration")
        conclude(o, outcome, now=now + timedelta(seconds=1))
        check_kstatus(o)
        if outcome.kind in (OutcomeKind.TRANSIENT, OutcomeKind.DEPENDENCY_NOT_READY):
            assert o["status"].get("observedGeneration") == observed_before


@given(st.lists(step, max_size=10), outcomes)
def test_repeating_an_outcome_changes_nothing(history: list[tuple[bool, bool, Outcome]], outcome: Outcome) -> None:
    # Steady state must not churn the status: the same outcome again, later, is a no-op on the object.
    o = obj()
    now = T0
    for progress, bump, earlier in history:
        now += timedelta(seconds=10)
        if bump:
            o["metadata"]["generation"] += 1
        if progress:
            progressing(o, "working", now=now)
        conclude(o, earlier, now=now)
    conclude(o, outcome, now=now + timedelta(seconds=10))
    settled = copy.deepcopy(o)
    again = conclude(o, outcome, now=now + timedelta(hours=1))
    assert o == settled
    assert again.requeue_after == conclude(copy.deepcopy(o), outcome, now=now).requeue_after


def test_progressing_keeps_ready_unknown_and_requeues_without_observed_generation() -> None:
    from datetime import UTC, datetime

    from gitops_mesh.reconcile import conditions as cond
    from gitops_mesh.reconcile.result import Outcome, conclude

    now = datetime(2026, 1, 1, tzinfo=UTC)
    obj: dict[str, object] = {"metadata": {"generation": 3}, "status": {"observedGeneration": 2}}
    done = conclude(obj, Outcome.progressing("health check in progress", requeue_after=2.0), now=now)
    assert done.result() == 2.0
    assert cond.is_unknown(obj, "Ready")
    assert cond.get_message(obj, "Ready") == "health check in progress"
    assert cond.is_reconciling(obj)
    assert obj["status"]["observedGeneration"] == 2  # type: ignore[index]
