"""HelmRelease status, pure: Flux's condition types, reasons and messages, the history, Ready summarised.

Flux's helm-controller (api/v2 condition_types.go, internal/reconcile) is the reference: Released,
TestSuccess and Remediated say what the last action did; Ready is their summary (:func:`summarize`):
the newest of them by observedGeneration, in the order Remediated, TestSuccess (when tests count),
Released; a Remediated on top is never Ready. The history is Flux's ``status.history``: snapshots of
Helm's storage records, newest first.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from gitops_mesh.reconcile import conditions as c

#: Flux keeps this many snapshots when none of them is a deployed release to hold on to.
DEFAULT_MAX_HISTORY = 5

Snapshot = dict[str, Any]


class Condition(StrEnum):
    RELEASED = "Released"
    TEST_SUCCESS = "TestSuccess"
    REMEDIATED = "Remediated"
    DRIFTED = "Drifted"


class Reason(StrEnum):
    INSTALL_SUCCEEDED = "InstallSucceeded"
    INSTALL_FAILED = "InstallFailed"
    UPGRADE_SUCCEEDED = "UpgradeSucceeded"
    UPGRADE_FAILED = "UpgradeFailed"
    TEST_SUCCEEDED = "TestSucceeded"
    TEST_FAILED = "TestFailed"
    ROLLBACK_SUCCEEDED = "RollbackSucceeded"
    ROLLBACK_FAILED = "RollbackFailed"
    UNINSTALL_SUCCEEDED = "UninstallSucceeded"
    UNINSTALL_FAILED = "UninstallFailed"
    ARTIFACT_FAILED = "ArtifactFailed"
    INIT_FAILED = "InitFailed"
    GET_LAST_RELEASE_FAILED = "GetLastReleaseFailed"
    DEPENDENCY_NOT_READY = "DependencyNotReady"
    PENDING_RELEASE = "PendingRelease"
    AWAITING_TESTS = "AwaitingTests"
    RETRIES_EXCEEDED = "RetriesExceeded"
    MISSING_ROLLBACK_TARGET = "MissingRollbackTarget"
    VALUES_FAILED = "ValuesError"
    DRIFT_DETECTED = "DriftDetected"
    NO_DRIFT_DETECTED = "NoDriftDetected"


class ReleaseAction(StrEnum):
    """``status.lastAttemptedReleaseAction``: the release actions that count failures."""

    INSTALL = "install"
    UPGRADE = "upgrade"


# Flux's message formats (internal/reconcile), kept word for word: alerts and users match on them.
def install_success(snap: Mapping[str, Any]) -> str:
    return f"Helm install succeeded for release {full_name(snap)} with chart {chart_of(snap)}"


def install_failure(namespace: str, name: str, chart: str, version: str, error: str) -> str:
    return f"Helm install failed for release {namespace}/{name} with chart {chart}@{version}: {error.strip()}"


def upgrade_success(snap: Mapping[str, Any]) -> str:
    return f"Helm upgrade succeeded for release {full_name(snap)} with chart {chart_of(snap)}"


def upgrade_failure(namespace: str, name: str, chart: str, version: str, error: str) -> str:
    return f"Helm upgrade failed for release {namespace}/{name} with chart {chart}@{version}: {error.strip()}"


def test_pending(snap: Mapping[str, Any]) -> str:
    return f"Helm release {full_name(snap)} with chart {chart_of(snap)} is awaiting tests"


def test_success(snap: Mapping[str, Any]) -> str:
    hooks = len(snap.get("testHooks") or {})
    what = "no test hooks" if hooks == 0 else f"{hooks} test hook{'s' if hooks > 1 else ''} completed successfully"
    return f"Helm test succeeded for release {full_name(snap)} with chart {chart_of(snap)}: {what}"


def test_failure(snap: Mapping[str, Any], error: str) -> str:
    return f"Helm test failed for release {full_name(snap)} with chart {chart_of(snap)}: {error.strip()}"


def rollback_success(snap: Mapping[str, Any]) -> str:
    return f"Helm rollback to previous release {full_name(snap)} with chart {chart_of(snap)} succeeded"


def rollback_failure(snap: Mapping[str, Any], error: str) -> str:
    return f"Helm rollback to previous release {full_name(snap)} with chart {chart_of(snap)} failed: {error.strip()}"


def uninstall_remediation_success(snap: Mapping[str, Any]) -> str:
    return f"Helm uninstall remediation for release {full_name(snap)} with chart {chart_of(snap)} succeeded"


def uninstall_remediation_failure(snap: Mapping[str, Any], error: str) -> str:
    return (
        f"Helm uninstall remediation for release {full_name(snap)} with chart {chart_of(snap)} failed: {error.strip()}"
    )


def unlock_success(snap: Mapping[str, Any], state: str) -> str:
    return f"Unlocked Helm release {full_name(snap)} with chart {chart_of(snap)} in {state} state"


def unlock_failure(snap: Mapping[str, Any], state: str, error: str) -> str:
    return f"Unlock of Helm release {full_name(snap)} with chart {chart_of(snap)} in {state} state failed: {error}"


def running(action: str, timeout: float) -> str:
    """Flux's progress message while an action runs; here also while its objects are waited for."""
    return f"Running '{action}' action with timeout of {go_duration(timeout)}"


def helm_wait_failure(action: str, name: str, error: str) -> str:
    """The description Helm gives a release whose wait failed (pkg/action failRelease)."""
    if action == "upgrade":
        return f'Upgrade "{name}" failed: {error}'
    return f'Release "{name}" failed: {error}'


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String`` to the millisecond: ``5m0s``, ``1h0m0s``, ``2.5s``, ``250ms``, ``0s``."""
    ms = round(max(seconds, 0.0) * 1000)
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, frac = divmod(rest, 1000)
    secs = f"{whole}.{frac:03d}".rstrip("0") if frac else str(whole)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def full_name(snap: Mapping[str, Any]) -> str:
    """``<namespace>/<name>.v<version>`` (Flux's ``FullReleaseName``)."""
    return f"{snap.get('namespace', '')}/{snap.get('name', '')}.v{snap.get('version', 0)}"


def chart_of(snap: Mapping[str, Any]) -> str:
    """``<chart>@<version>`` (Flux's ``VersionedChartName``)."""
    return f"{snap.get('chartName', '')}@{snap.get('chartVersion', '')}"


# --- the history -------------------------------------------------------------------------------------


def history(status: Mapping[str, Any]) -> list[Snapshot]:
    """``status.history`` sorted newest first (by release version), as Flux sorts before reading it."""
    snaps = [dict(s) for s in status.get("history") or [] if isinstance(s, Mapping)]
    snaps.sort(key=lambda s: int(s.get("version") or 0), reverse=True)
    return snaps


def latest(status: Mapping[str, Any]) -> Snapshot | None:
    snaps = history(status)
    return snaps[0] if snaps else None


def has_test_in_phase(snap: Mapping[str, Any] | None, phase: str) -> bool:
    hooks = (snap or {}).get("testHooks") or {}
    return any(isinstance(h, Mapping) and h.get("phase") == phase for h in hooks.values())


def has_been_tested(snap: Mapping[str, Any] | None) -> bool:
    """Flux's ``HasBeenTested``: tests ran (an empty map means a chart without tests), one failed, or all
    succeeded."""
    if snap is None or snap.get("testHooks") is None:
        return False
    hooks = snap["testHooks"]
    if not hooks:
        return True
    if has_test_in_phase(snap, "Failed"):
        return True
    return all(isinstance(h, Mapping) and h.get("phase") == "Succeeded" for h in hooks.values())


def _deployed_or_superseded(snap: Mapping[str, Any]) -> bool:
    return snap.get("status") in ("deployed", "superseded")


def previous(snaps: Sequence[Snapshot], *, ignore_tests: bool) -> Snapshot | None:
    """The release to roll back to: the newest deployed or superseded one after the latest, without a failed
    test unless tests are ignored (Flux's ``Snapshots.Previous``)."""
    for snap in snaps[1:]:
        if _deployed_or_superseded(snap) and (ignore_tests or not has_test_in_phase(snap, "Failed")):
            return snap
    return None


def truncate(snaps: Sequence[Snapshot], *, ignore_tests: bool) -> list[Snapshot]:
    """Keep the history up to the previous deployed release (Flux's ``Truncate``), else the newest five."""
    out = list(snaps)
    for i, snap in enumerate(out[1:], start=1):
        if _deployed_or_superseded(snap) and (ignore_tests or not has_test_in_phase(snap, "Failed")):
            return out[: i + 1]
    return out[:DEFAULT_MAX_HISTORY]


def truncate_ignoring_previous(snaps: Sequence[Snapshot]) -> list[Snapshot]:
    """The newest five (Flux's ``TruncateIgnoringPreviousSnapshots``, for RetryOnFailure)."""
    return list(snaps)[:DEFAULT_MAX_HISTORY]


def record(status: MutableMapping[str, Any], snap: Snapshot) -> None:
    """Put ``snap`` at the head of the history, replacing an entry for the same release version."""
    key = (snap.get("name"), snap.get("namespace"), snap.get("version"))
    rest = [s for s in history(status) if (s.get("name"), s.get("namespace"), s.get("version")) != key]
    status["history"] = [snap, *rest]


def follow_storage(status: MutableMapping[str, Any], stored: Sequence[Snapshot]) -> None:
    """The older snapshots follow the records an action rewrote besides its own (Flux's ``recordOnObject``).

    An upgrade or rollback marks the release it replaces superseded, which changes that record's digest; a
    snapshot still saying "deployed" would fail the rollback target's verification. ``stored`` are storage's
    snapshots; a changed status takes the record's snapshot, keeping the test hooks already recorded.
    """
    snaps = history(status)
    fresh = {(s.get("name"), s.get("namespace"), s.get("version")): s for s in stored}
    changed = False
    for i, snap in enumerate(snaps[1:], start=1):
        now = fresh.get((snap.get("name"), snap.get("namespace"), snap.get("version")))
        if now is None or now.get("status") == snap.get("status"):
            continue
        updated = {k: v for k, v in now.items() if k != "testHooks"}
        if snap.get("testHooks") is not None:
            updated["testHooks"] = snap["testHooks"]
        snaps[i] = updated
        changed = True
    if changed:
        status["history"] = snaps


def clear_failures(status: MutableMapping[str, Any]) -> None:
    """Flux's ``ClearFailures``: the three counters go."""
    for key in ("failures", "installFailures", "upgradeFailures"):
        status.pop(key, None)


def increment(status: MutableMapping[str, Any], key: str) -> None:
    status[key] = int(status.get(key) or 0) + 1


# --- Ready, summarised -------------------------------------------------------------------------------


def summarize(obj: MutableMapping[str, Any], *, test_enabled: bool, ignore_test_failures: bool, now: datetime) -> None:
    """Ready from Remediated, TestSuccess and Released (Flux's ``summarize``).

    The condition of the highest generation wins, ties broken in the order Remediated, TestSuccess,
    Released; TestSuccess only counts when tests are enabled and their failures not ignored (and goes
    when tests are disabled). A Remediated on top means the release failed: Ready=False.
    """
    order = [Condition.REMEDIATED, Condition.RELEASED]
    if test_enabled and not ignore_test_failures:
        order = [Condition.REMEDIATED, Condition.TEST_SUCCESS, Condition.RELEASED]
    if not test_enabled:
        c.delete(obj, Condition.TEST_SUCCESS)
    present = [cond for t in order if (cond := c.get(obj, t)) is not None]
    if not present:
        return
    top = max(
        present, key=lambda cond: (int(cond.get("observedGeneration") or 0), -order.index(Condition(cond["type"])))
    )
    status = top["status"]
    if top["type"] == Condition.REMEDIATED:
        status = c.ConditionStatus.FALSE
    if status == c.ConditionStatus.TRUE:
        c.delete(obj, c.ConditionType.STALLED)
    ready: c.Condition = {
        "type": c.ConditionType.READY,
        "status": status,
        "lastTransitionTime": "",
        "reason": top["reason"],
        "message": top["message"],
    }
    c.set_condition(obj, ready, now=now)


def stamp_attempt(
    status: MutableMapping[str, Any],
    *,
    generation: int,
    chart_version: str,
    config_digest: str,
    revision_digest: str = "",
) -> None:
    """``lastAttempted*`` for the chart and values this reconcile works with (Flux drops the old checksum);
    ``lastAttemptedRevisionDigest`` only for a chart from an OCI artifact (see helm_controller.chart_revision)."""
    status["lastAttemptedGeneration"] = generation
    status["lastAttemptedRevision"] = chart_version
    if revision_digest:
        status["lastAttemptedRevisionDigest"] = revision_digest
    else:
        status.pop("lastAttemptedRevisionDigest", None)
    status["lastAttemptedConfigDigest"] = config_digest
    status.pop("lastAttemptedValuesChecksum", None)
    status.pop("lastReleaseRevision", None)
