"""The HelmRelease's next Helm action, pure: Flux's release state and atomic-release decision table.

Given the HelmRelease (spec and status), the chart about to be released (name and version), the
values' config digest and what Helm's storage holds (snapshots, newest first), :func:`release_state`
says where the release stands (Flux internal/reconcile/state.go) and :func:`decide` what to do next
(atomic_release.go ``actionForState``): install, upgrade, test, roll back or uninstall as remediation,
unlock a release a killed process left pending, or nothing. :func:`after_action` is Flux's
``cleanReleaseStrategy``: one action of each type per reconcile, and a stop after a remediation.

Helm is run with ``--wait=hookOnly``: it never waits for the release's objects. :func:`pending_wait` says
when the latest release still has to be waited for (after install, upgrade or rollback, unless
disableWait), from what status and storage hold, so a restart resumes the wait; the reconciler polls the
objects' health with a requeue and ends the wait healthy or failed as Helm's own wait would have.

Flux's Drifted state is not in this table: drift needs the cluster, so the reconciler looks for it when
the table says the release is in sync (:mod:`helm_controller.drift`) and corrects it once per reconcile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from gitops_mesh.settings import parse_duration
from helm_controller import post_renderers
from helm_controller import status as st
from helm_controller.action_requests import timeout_of

FORCE_AT = "reconcile.fluxcd.io/forceAt"
RESET_AT = "reconcile.fluxcd.io/resetAt"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"

#: Flux's default retry interval of the RetryOnFailure strategy.
DEFAULT_RETRY_INTERVAL = 300.0

PENDING = frozenset({"pending-install", "pending-upgrade", "pending-rollback", "uninstalling"})


class State(StrEnum):
    """Where the release stands against the HelmRelease (Flux's ``ReleaseStatus``)."""

    ABSENT = "Absent"
    UNMANAGED = "Unmanaged"
    OUT_OF_SYNC = "OutOfSync"
    LOCKED = "Locked"
    UNTESTED = "Untested"
    IN_SYNC = "InSync"
    FAILED = "Failed"


class Action(StrEnum):
    INSTALL = "install"
    UPGRADE = "upgrade"
    TEST = "test"
    ROLLBACK = "rollback"
    UNINSTALL = "uninstall"
    UNLOCK = "unlock"


class ActionType(StrEnum):
    """Flux's ``ReconcilerType``: the strategy allows each type once per reconcile."""

    RELEASE = "release"
    TEST = "test"
    REMEDIATE = "remediate"
    UNLOCK = "unlock"


TYPE_OF: dict[Action, ActionType] = {
    Action.INSTALL: ActionType.RELEASE,
    Action.UPGRADE: ActionType.RELEASE,
    Action.TEST: ActionType.TEST,
    Action.ROLLBACK: ActionType.REMEDIATE,
    Action.UNINSTALL: ActionType.REMEDIATE,
    Action.UNLOCK: ActionType.UNLOCK,
}


@dataclass(frozen=True, slots=True)
class ReleaseState:
    state: State
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Desired:
    """What this reconcile would release: the chart's name and version and the values' config digest."""

    chart_name: str
    chart_version: str
    config_digest: str


# --- the spec's strategies -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Remediation:
    """``spec.install.remediation`` or ``spec.upgrade.remediation`` with Flux's defaults."""

    action: st.ReleaseAction
    retries: int
    ignore_test_failures: bool | None
    remediate_last_failure: bool
    strategy: str

    def failure_count(self, status: Mapping[str, Any]) -> int:
        key = "installFailures" if self.action is st.ReleaseAction.INSTALL else "upgradeFailures"
        return int(status.get(key) or 0)

    def counter(self) -> str:
        return "installFailures" if self.action is st.ReleaseAction.INSTALL else "upgradeFailures"

    def retries_exhausted(self, status: Mapping[str, Any]) -> bool:
        """Negative retries are unlimited; otherwise exhausted once failures exceed them."""
        return self.retries >= 0 and self.failure_count(status) > self.retries

    def must_ignore_test_failures(self, default: bool) -> bool:
        return default if self.ignore_test_failures is None else self.ignore_test_failures

    def uninstall_after_upgrade(self) -> bool:
        return self.action is st.ReleaseAction.UPGRADE and self.strategy == "uninstall"


def _section(spec: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = spec.get(name)
    return value if isinstance(value, Mapping) else {}


def remediation_of(spec: Mapping[str, Any], action: st.ReleaseAction) -> Remediation:
    """The remediation for ``action``: install always uninstalls and remediates its last failure only when
    asked; upgrade rolls back by default and remediates its last failure when it has retries."""
    r = _section(_section(spec, action.value), "remediation")
    retries = int(r.get("retries") or 0)
    last = r.get("remediateLastFailure")
    if action is st.ReleaseAction.INSTALL:
        return Remediation(action, retries, r.get("ignoreTestFailures"), bool(last), "uninstall")
    return Remediation(
        action,
        retries,
        r.get("ignoreTestFailures"),
        retries > 0 if last is None else bool(last),
        str(r.get("strategy") or "rollback"),
    )


def last_action(status: Mapping[str, Any]) -> st.ReleaseAction | None:
    value = status.get("lastAttemptedReleaseAction")
    try:
        return st.ReleaseAction(value) if isinstance(value, str) else None
    except ValueError:
        return None


def active_remediation(obj: Mapping[str, Any]) -> Remediation | None:
    """The remediation of the last attempted release action (Flux's ``GetActiveRemediation``)."""
    action = last_action(obj.get("status") or {})
    return None if action is None else remediation_of(obj.get("spec") or {}, action)


def retry_interval(spec: Mapping[str, Any], action: st.ReleaseAction) -> float | None:
    """The RetryOnFailure interval of ``action``'s strategy, or None under RemediateOnFailure (the default)."""
    strategy = _section(_section(spec, action.value), "strategy")
    if strategy.get("name") != "RetryOnFailure":
        return None
    raw = strategy.get("retryInterval")
    return parse_duration(raw) if isinstance(raw, str) and raw else DEFAULT_RETRY_INTERVAL


def active_retry(obj: Mapping[str, Any]) -> float | None:
    """Flux's ``GetActiveRetry``: the retry interval of the last attempted action's strategy, if it retries."""
    action = last_action(obj.get("status") or {})
    return None if action is None else retry_interval(obj.get("spec") or {}, action)


def test_spec(spec: Mapping[str, Any]) -> tuple[bool, bool]:
    """(tests enabled, test failures ignored)."""
    t = _section(spec, "test")
    return bool(t.get("enable")), bool(t.get("ignoreFailures"))


def ignore_test_failures(obj: Mapping[str, Any]) -> bool:
    """Test failures ignored for the active remediation (its own setting, else ``test.ignoreFailures``)."""
    _, ignore = test_spec(obj.get("spec") or {})
    remediation = active_remediation(obj)
    return ignore if remediation is None else remediation.must_ignore_test_failures(ignore)


# --- annotations: force and reset ------------------------------------------------------------------------


def _annotation_request(obj: Mapping[str, Any], annotation: str, handled_key: str) -> str | None:
    """Flux's ``HandleAnnotationRequest``: the annotation's value when it came with a reconcile request of
    the same value and was not handled yet, else None."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value, requested = annotations.get(annotation), annotations.get(REQUESTED_AT)
    if not value or value != requested:
        return None
    return None if (obj.get("status") or {}).get(handled_key) == value else str(value)


def force_request(obj: Mapping[str, Any]) -> str | None:
    """An unhandled ``reconcile.fluxcd.io/forceAt`` (to be echoed in ``status.lastHandledForceAt``)."""
    return _annotation_request(obj, FORCE_AT, "lastHandledForceAt")


def reset_request(obj: Mapping[str, Any]) -> str | None:
    """An unhandled ``reconcile.fluxcd.io/resetAt`` (to be echoed in ``status.lastHandledResetAt``)."""
    return _annotation_request(obj, RESET_AT, "lastHandledResetAt")


def must_reset_failures(obj: Mapping[str, Any], desired: Desired) -> str | None:
    """Why the failure counters start again (Flux's ``MustResetFailures``), or None.

    A new generation, chart version or config digest since the last attempt is a new attempt; so is a
    reset request through the annotation.
    """
    status = obj.get("status") or {}
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    if int(status.get("lastAttemptedGeneration") or 0) != generation:
        return "generation differs from last attempt"
    if (status.get("lastAttemptedRevision") or "") != desired.chart_version:
        return "chart version differs from last attempt"
    last_digest = status.get("lastAttemptedConfigDigest") or ""
    if last_digest and last_digest != desired.config_digest:
        return "values differ from last attempt"
    if reset_request(obj) is not None:
        return "reset requested through annotation"
    return None


# --- the release state -----------------------------------------------------------------------------------


def _same_release(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("name", "namespace", "version"))


def post_render_changed(obj: Mapping[str, Any]) -> str | None:
    """Flux's reason when a new generation changed postRenderers or commonMetadata since the last release.

    Only on a new generation (status.observedGeneration behind), as Flux: the observed digests follow the
    spec after every release action, so a failed one is not retried through this check.
    """
    status = obj.get("status") or {}
    meta = obj.get("metadata") or {}
    if status.get("observedGeneration") == meta.get("generation"):
        return None
    spec = obj.get("spec") or {}
    if post_renderers.post_renderers_digest(spec) != (status.get("observedPostRenderersDigest") or ""):
        return "postrenderers digest has changed"
    if post_renderers.common_metadata_digest(spec) != (status.get("observedCommonMetadataDigest") or ""):
        return "common metadata digest has changed"
    return None


def release_state(obj: Mapping[str, Any], desired: Desired, storage: Sequence[Mapping[str, Any]]) -> ReleaseState:
    """Flux's ``DetermineReleaseState`` over Helm's storage (snapshots of its records, newest first)."""
    if not storage:
        return ReleaseState(State.ABSENT, "no release in storage for object")
    stored = storage[0]
    helm_status = str(stored.get("status") or "")
    if helm_status in PENDING:
        return ReleaseState(State.LOCKED, f"release with status '{helm_status}'")
    status = obj.get("status") or {}
    cur = st.latest(status)
    if cur is None:
        if helm_status == "uninstalled":
            return ReleaseState(State.ABSENT, "found uninstalled release in storage")
        return ReleaseState(State.UNMANAGED, "found existing release in storage")
    # The storage record must be the one we observed last: another writer (`helm upgrade` by hand) made
    # the history unreliable, and an upgrade takes the release back under management.
    if not _same_release(cur, stored):
        return ReleaseState(State.UNMANAGED, "release not observed to be made for object")
    if cur.get("digest") and stored.get("digest") and cur["digest"] != stored["digest"]:
        return ReleaseState(State.UNMANAGED, "release digest verification error")
    if helm_status == "failed":
        return ReleaseState(State.FAILED)
    if helm_status == "uninstalled":
        return ReleaseState(State.ABSENT, "found uninstalled release in storage")
    if helm_status != "deployed":
        return ReleaseState(State.UNMANAGED, f"unable to determine state for release with status '{helm_status}'")
    if stored.get("chartName") != desired.chart_name or stored.get("chartVersion") != desired.chart_version:
        return ReleaseState(State.OUT_OF_SYNC, "release chart changed")
    if cur.get("configDigest") != desired.config_digest:
        return ReleaseState(State.OUT_OF_SYNC, "release config values changed")
    changed = post_render_changed(obj)
    if changed:
        return ReleaseState(State.OUT_OF_SYNC, changed)
    enabled, ignore = test_spec(obj.get("spec") or {})
    if enabled:
        if not st.has_been_tested(cur):
            return ReleaseState(State.UNTESTED)
        remediation = active_remediation(obj)
        if (
            remediation is not None
            and not remediation.must_ignore_test_failures(ignore)
            and st.has_test_in_phase(cur, "Failed")
        ):
            return ReleaseState(State.FAILED, "release has test in failed phase")
    return ReleaseState(State.IN_SYNC)


# --- the decision ----------------------------------------------------------------------------------------


class Verdict(StrEnum):
    ACT = "act"
    #: in sync: nothing to do (the conditions may still need restoring; see ``Decision.restore``)
    DONE = "done"
    #: out of retries or without a rollback target: Stalled with ``stall_reason``
    STALLED = "stalled"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    action: Action | None = None
    reason: str = ""
    #: the history to keep (Flux truncates it as it decides)
    history: tuple[st.Snapshot, ...] = ()
    #: the rollback target, for a rollback
    target: st.Snapshot | None = None
    #: True when an unhandled forceAt was acted on (echo it in lastHandledForceAt)
    forced: bool = False
    stall_reason: str = ""


def _verified_target(target: Mapping[str, Any] | None, storage: Sequence[Mapping[str, Any]]) -> str:
    """Flux's ``VerifySnapshot`` against storage: "ok", "missing" or "changed" (digest or status)."""
    if target is None:
        return "missing"
    for stored in storage:
        if _same_release(target, stored):
            if target.get("digest") and stored.get("digest") and target["digest"] != stored["digest"]:
                return "changed"
            return "ok"
    return "missing"


def decide(obj: Mapping[str, Any], state: ReleaseState, storage: Sequence[Mapping[str, Any]] = ()) -> Decision:
    """The next action for ``state`` (Flux's ``actionForState``)."""
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    snaps = st.history(status)
    forced = force_request(obj) is not None
    s = state.state

    if s is State.IN_SYNC:
        kept = (
            st.truncate_ignoring_previous(snaps)
            if active_retry(obj) is not None
            else st.truncate(snaps, ignore_tests=ignore_test_failures(obj))
        )
        if forced:
            return Decision(
                Verdict.ACT, Action.UPGRADE, "forcing upgrade for in-sync release", tuple(kept), forced=True
            )
        return Decision(Verdict.DONE, reason="release in-sync with desired state", history=tuple(kept))
    if s is State.LOCKED:
        return Decision(Verdict.ACT, Action.UNLOCK, state.reason, tuple(snaps))
    if s is State.ABSENT:
        if remediation_of(spec, st.ReleaseAction.INSTALL).retries_exhausted(status):
            if forced:
                return Decision(Verdict.ACT, Action.INSTALL, "forcing install while out of retries", forced=True)
            return _stalled(st.Reason.RETRIES_EXCEEDED, "cannot install release", snaps)
        return Decision(Verdict.ACT, Action.INSTALL, state.reason or "release not installed", tuple(snaps))
    if s is State.UNMANAGED:
        # The history can no longer be relied on: the upgrade starts it again.
        return Decision(Verdict.ACT, Action.UPGRADE, state.reason, (), forced=forced)
    if s is State.OUT_OF_SYNC:
        if remediation_of(spec, st.ReleaseAction.UPGRADE).retries_exhausted(status):
            if forced:
                return Decision(
                    Verdict.ACT, Action.UPGRADE, "forcing upgrade while out of retries", tuple(snaps), forced=True
                )
            return _stalled(st.Reason.RETRIES_EXCEEDED, "cannot upgrade release", snaps)
        return Decision(Verdict.ACT, Action.UPGRADE, state.reason, tuple(snaps), forced=forced)
    if s is State.UNTESTED:
        return Decision(Verdict.ACT, Action.TEST, "release has not been tested", tuple(snaps))
    return _decide_failed(obj, snaps, storage, forced)


def _stalled(reason: str, message: str, snaps: Sequence[st.Snapshot]) -> Decision:
    return Decision(Verdict.STALLED, reason=message, history=tuple(snaps), stall_reason=reason)


def _decide_failed(
    obj: Mapping[str, Any], snaps: list[st.Snapshot], storage: Sequence[Mapping[str, Any]], forced: bool
) -> Decision:
    status = obj.get("status") or {}
    if active_retry(obj) is not None:
        # RetryOnFailure: as `flux reconcile --force` with no remediation retries.
        return Decision(
            Verdict.ACT,
            Action.UPGRADE,
            "retrying upgrade for failed release",
            tuple(st.truncate_ignoring_previous(snaps)),
        )
    remediation = active_remediation(obj)
    if remediation is None:
        return Decision(Verdict.ACT, Action.UPGRADE, "no active remediation strategy", tuple(snaps))
    if remediation.failure_count(status) <= 0:
        return Decision(Verdict.ACT, Action.UPGRADE, "release conditions have changed since last failure", tuple(snaps))
    if forced:
        return Decision(Verdict.ACT, Action.UPGRADE, "forcing upgrade for failed release", tuple(snaps), forced=True)
    if remediation.retries_exhausted(status) and not remediation.remediate_last_failure:
        return _stalled(st.Reason.RETRIES_EXCEEDED, "cannot remediate failed release", snaps)
    ignore = ignore_test_failures(obj)
    kept = st.truncate(snaps, ignore_tests=ignore)
    if remediation.strategy == "uninstall":
        return Decision(Verdict.ACT, Action.UNINSTALL, "remediating failed release by uninstall", tuple(kept))
    target = st.previous(kept, ignore_tests=ignore)
    verified = _verified_target(target, storage)
    if verified == "missing":
        return _stalled(
            st.Reason.MISSING_ROLLBACK_TARGET,
            "missing target release for rollback: cannot remediate failed release",
            kept,
        )
    if verified == "changed":
        # A corrupt target: the most correct remediation is another upgrade.
        return Decision(Verdict.ACT, Action.UPGRADE, "unable to verify previous release to roll back to", tuple(kept))
    return Decision(Verdict.ACT, Action.ROLLBACK, "remediating failed release by rollback", tuple(kept), target=target)


# --- the loop's strategy ---------------------------------------------------------------------------------


class Next(StrEnum):
    """What the reconcile does after an action, or instead of one the strategy does not allow."""

    CONTINUE = "continue"
    #: RetryOnFailure: try again after the strategy's retry interval
    RETRY_AFTER_INTERVAL = "retry-after-interval"
    #: requeue soon (remediation retries left): Flux's ErrMustRequeue
    REQUEUE = "requeue"
    #: stop here; Ready says the rest
    STOP = "stop"
    #: retries are exhausted after the remediation: Stalled/RetriesExceeded
    STALL = "stall"


def before_action(obj: Mapping[str, Any], action: Action, previous: Sequence[ActionType]) -> Next:
    """Flux's ``MustContinue``: an action type already run in this reconcile is not run again."""
    if TYPE_OF[action] not in previous:
        return Next.CONTINUE
    if active_retry(obj) is not None:
        return Next.RETRY_AFTER_INTERVAL
    remediation = active_remediation(obj)
    if remediation is None or not remediation.retries_exhausted(obj.get("status") or {}):
        return Next.REQUEUE
    return Next.STOP


def after_action(obj: Mapping[str, Any], action: Action) -> Next:
    """Flux's ``MustStop``: after a remediation the reconcile ends, to requeue, retry or stall."""
    if TYPE_OF[action] is not ActionType.REMEDIATE:
        return Next.CONTINUE
    if active_retry(obj) is not None:
        return Next.RETRY_AFTER_INTERVAL
    remediation = active_remediation(obj)
    status = obj.get("status") or {}
    if remediation is None or not remediation.retries_exhausted(status) or remediation.uninstall_after_upgrade():
        return Next.REQUEUE
    return Next.STALL


def after_failure(obj: Mapping[str, Any]) -> Next:
    """An action that failed without a storage record to remediate: retry after the interval under
    RetryOnFailure, else stop and let the error take the runner's retry (retryInterval, else interval)."""
    return Next.RETRY_AFTER_INTERVAL if active_retry(obj) is not None else Next.STOP


def stall_message(obj: Mapping[str, Any]) -> str:
    """Flux's RetriesExceeded message: ``Failed to <action> after <n> attempt(s)``."""
    status = obj.get("status") or {}
    remediation = active_remediation(obj)
    count = remediation.failure_count(status) if remediation else 0
    return f"Failed to {status.get('lastAttemptedReleaseAction') or 'release'} after {count} attempt(s)"


def apply_reset(obj: MutableMapping[str, Any], desired: Desired) -> str | None:
    """Clear the failure counters when :func:`must_reset_failures` says so, echoing a handled resetAt."""
    status = obj.setdefault("status", {})
    token = reset_request(obj)
    reason = must_reset_failures(obj, desired)  # before the token is echoed: it reads the unhandled request
    if token is not None:
        status["lastHandledResetAt"] = token
    if reason is not None:
        st.clear_failures(status)
    return reason


# --- waiting for the release's objects -------------------------------------------------------------------

#: Flux's field, absent while an action is under way: helm has returned but its objects are waited for.
ACTION_DURATION = "lastAttemptedReleaseActionDuration"
WAITED: dict[str, Action] = {"install": Action.INSTALL, "upgrade": Action.UPGRADE, "rollback": Action.ROLLBACK}


#: The resolution of a history snapshot's times (``lastDeployed``): seconds, as Flux writes them.
TIMESTAMP_RESOLUTION: Final = 1.0


@dataclass(frozen=True, slots=True)
class Wait:
    """The latest release (``snapshot``) is waiting for its objects after ``action``."""

    action: Action
    snapshot: st.Snapshot
    #: when Helm made the release (its lastDeployed): the action's timeout runs from there, as Helm's does
    started: datetime | None
    #: the action's timeout (install/upgrade/rollback.timeout, else spec.timeout, else 5m)
    timeout: float
    #: False under disableWait (set after the action began): the wait ends at once
    enabled: bool
    #: False under disableWaitForJobs: Jobs are not waited for
    jobs: bool

    def elapsed(self, now: datetime) -> float:
        """Seconds since the action began; without a start time the wait has no time left (fail closed)."""
        return math.inf if self.started is None else max(0.0, (now - self.started).total_seconds())

    def waited(self, now: datetime) -> float:
        """Seconds the timeout has run. ``lastDeployed`` is written to the second, truncated (Flux's format), so
        the action began up to a second after it: that second is not counted, and the timeout ends at most a
        second late, never early. (The action's duration is :meth:`elapsed`.)"""
        return max(0.0, self.elapsed(now) - TIMESTAMP_RESOLUTION)

    def poll_after(self, now: datetime, poll: float) -> float:
        """The next look: after ``poll``, or just past the deadline when it comes first."""
        left = self.timeout - self.waited(now)
        return max(0.1, min(poll, left + 0.1))


def _started(snap: Mapping[str, Any]) -> datetime | None:
    value = snap.get("lastDeployed")
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def pending_wait(obj: Mapping[str, Any], state: ReleaseState, storage: Sequence[Mapping[str, Any]]) -> Wait | None:
    """The wait the latest release is in, or None.

    Waiting: the action that made the latest snapshot (install, upgrade, rollback) has not ended
    (:data:`ACTION_DURATION` absent) and Helm's storage still holds that release, deployed. A new chart or
    values since an install or upgrade ends its wait (the upgrade that follows waits for itself); a
    rollback is waited for whatever the spec says now, as Flux's synchronous rollback would be.
    """
    status = obj.get("status") or {}
    if status.get(ACTION_DURATION) or not storage:
        return None
    cur = st.latest(status)
    action = WAITED.get(str((cur or {}).get("action") or ""))
    stored = storage[0]
    if cur is None or action is None or not _same_release(cur, stored) or stored.get("status") != "deployed":
        return None
    if cur.get("digest") and stored.get("digest") and cur["digest"] != stored["digest"]:
        return None
    if action is not Action.ROLLBACK and state.state is State.OUT_OF_SYNC:
        return None
    spec = obj.get("spec") or {}
    section = _section(spec, action.value)
    return Wait(
        action=action,
        snapshot=dict(cur),
        started=_started(cur),
        timeout=timeout_of(spec, action.value),
        enabled=not section.get("disableWait"),
        jobs=not section.get("disableWaitForJobs"),
    )


def begin_action(status: MutableMapping[str, Any]) -> None:
    """An install, upgrade or rollback begins: its duration is written when it (and its wait) ends."""
    status.pop(ACTION_DURATION, None)


def end_action(status: MutableMapping[str, Any], seconds: float) -> None:
    """The action ended (failed, or its objects were waited for): Flux's duration, as a Go duration."""
    status[ACTION_DURATION] = st.go_duration(seconds if math.isfinite(seconds) else 0.0)


def end_abandoned_wait(status: MutableMapping[str, Any], now: datetime) -> bool:
    """End a wait :func:`pending_wait` no longer finds (new chart or values, or Helm's storage moved on):
    unjudged, the action that follows writes its own outcome. True when there was one."""
    cur = st.latest(status)
    if status.get(ACTION_DURATION) or cur is None or str(cur.get("action") or "") not in WAITED:
        return False
    started = _started(cur)
    end_action(status, (now - started).total_seconds() if started is not None else 0.0)
    return True
