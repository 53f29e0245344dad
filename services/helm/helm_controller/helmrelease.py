"""HelmRelease: refuse → dependsOn → HelmChart template → chart artifact → values → plan → Helm actions → status.

The decisions are :mod:`helm_controller.helmrelease_plan`'s (Flux's atomic release, pure); this module only
does the I/O around them: it writes the HelmChart, fetches the chart (digest verified), composes the
values, reads Helm's storage, runs each action the plan picks through the real helm binary, and records
what Helm stored in ``status.history``. As Flux, one reconcile runs each action type at most once and
stops after a remediation; what is left is the next reconcile's.

Helm never waits for the release's objects here (``--wait=hookOnly``): after an install, upgrade or
rollback the reconcile looks at their health once and, while they roll out, returns a short requeue
(``Outcome.progressing``), so no worker is held. The wait lives in the status (see
:func:`helmrelease_plan.pending_wait`), so a restarted controller resumes it; it ends as Helm's would:
healthy (Released/Remediated True) or, past the action's timeout or on a failed object, a failed release
in Helm's storage that the plan then remediates.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from gitops_mesh.artifacts.fetch import fetch
from gitops_mesh.bus.envelope import EventKind, Severity
from gitops_mesh.errors import ApiError, InvalidSpec, NotFound, TerminalError, TransientError
from gitops_mesh.kube import health
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.informer import Informer
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import Announcement, Outcome
from gitops_mesh.runner import interval_of
from helm_controller import drift, post_renderers
from helm_controller import helmrelease_plan as plan
from helm_controller import status as st
from helm_controller.action_requests import action_request, uninstall_options
from helm_controller.actions import HelmActionFailed, HelmActions, KubeAccess
from helm_controller.chart_meta import ChartUnreadable, chart_metadata
from helm_controller.chart_repack import with_version
from helm_controller.chart_revision import chart_revision
from helm_controller.chart_template import chart_current, desired_helmchart, stale_helmchart
from helm_controller.references import (
    API_VERSION,
    KIND,
    SOURCE_API,
    chart_artifact,
    chart_source_key,
    check_cross_namespace,
    check_dependencies,
)
from helm_controller.releases import (
    Release,
    UnreadableManifest,
    history_entry,
    mark_failed,
    release_history,
    release_name,
    storage_namespace,
    target_namespace,
)
from helm_controller.releases import unlock as unlock_release
from helm_controller.settings import HelmSettings
from helm_controller.target import TargetClusters
from helm_controller.unsupported import HELMRELEASE, refuse_unsupported
from helm_controller.values import compose_values, config_digest

FIELD_MANAGER = "helm-controller"
#: Helm's description of a rollback record (pkg/action rollback.go), naming the version rolled back to.
_ROLLBACK_DESCRIPTION = re.compile(r"^Rollback to (\d+)$")
log = get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def released_revision(obj: KubeObject | None) -> str | None:
    """A HelmRelease's released chart version (its `applied` events' revision): the latest snapshot's."""
    snaps = st.history((obj or {}).get("status") or {})
    version = snaps[0].get("chartVersion") if snaps else None
    return version if isinstance(version, str) and version else None


@dataclass(frozen=True, slots=True)
class Chart:
    """The chart this reconcile releases: its file and what its Chart.yaml says (the version with an OCI
    artifact's digest appended, see :mod:`helm_controller.chart_revision`)."""

    path: Path
    name: str
    version: str
    app_version: str
    #: the OCI artifact's digest (status.lastAttemptedRevisionDigest), "" for a HelmChart's chart
    digest: str = ""


@dataclass
class HelmReleaseReconciler:
    """HelmRelease's inner work; ``releases`` and ``charts`` are the process's caches (dependsOn and the
    chart's artifact are read there, never with GETs)."""

    kube: KubeClient
    http: aiohttp.ClientSession
    helm: HelmActions
    settings: HelmSettings
    releases: Informer
    charts: Informer
    workdir: Path
    #: the kubeconfig file helm reads (the controller's own identity; impersonation is per action)
    kubeconfig: Path
    #: spec.kubeConfig's remote clusters, bound per reconcile (see :mod:`helm_controller.target`)
    targets: TargetClusters
    #: that cluster's apiserver validates fields itself (see actions.KubeAccess)
    server_validates_fields: bool = False
    #: the caches of the other kinds ``spec.chartRef`` may name (OCIRepository, ExternalArtifact)
    sources: Mapping[str, Informer] = dataclasses.field(default_factory=dict)

    api_version: str = API_VERSION
    kind: str = KIND

    async def reconcile(self, obj: KubeObject) -> Outcome:
        try:
            return await self._reconcile(obj)
        finally:
            await self.targets.release(obj)

    async def _reconcile(self, obj: KubeObject) -> Outcome:
        spec = obj["spec"]
        obj.setdefault("status", {})
        # Before a HelmChart is written or helm runs: an ignored field would change what is released where.
        refuse_unsupported(spec, HELMRELEASE)
        check_storage_namespace(obj)
        check_cross_namespace(obj, allowed=not self.settings.no_cross_namespace_refs)
        check_dependencies(obj, self.releases.get)
        written = await self._chart_template(obj)
        kind, ns, name = chart_source_key(obj)
        cache = self.charts if kind == "HelmChart" else self.sources.get(kind)  # other kinds: refused above
        # A HelmChart just created is not in the cache until its watch event: its apply answer stands in, so a new
        # release waits as "not ready" (SourceNotReady) rather than reporting its own chart as missing.
        artifact = chart_artifact(obj, (cache.get(ns, name) if cache is not None else None) or written)
        async with self._chart(obj, artifact, kind) as chart:
            values = await compose_values(self.kube, obj["metadata"]["namespace"], spec)
            # Where Flux builds its REST client getter: spec.kubeConfig's cluster from here on.
            await self.targets.bind(obj)
            digest = config_digest(values)
            desired = plan.Desired(chart.name, chart.version, digest)
            changed = await self._target_changed(obj)
            if changed:
                return changed
            status = obj["status"]
            status["storageNamespace"] = storage_namespace(obj)
            reset = plan.apply_reset(obj, desired)
            if reset:
                log.debug("failure counters reset", reason=reset)
            st.stamp_attempt(
                status,
                generation=c.generation_of(obj),
                chart_version=chart.version,
                config_digest=digest,
                revision_digest=chart.digest,
            )
            return await self._release(obj, desired, chart, values)

    # --- the chart ---------------------------------------------------------------------------------------

    async def _chart_template(self, obj: KubeObject) -> KubeObject | None:
        """Server-side apply the HelmChart of ``spec.chart`` and delete the one an edit left behind; the apply's
        answer when one was made."""
        status = obj["status"]
        desired = desired_helmchart(obj)
        stale = stale_helmchart(obj, status.get("helmChart") or "")
        if stale is not None:
            with contextlib.suppress(NotFound):
                await self.kube.delete(SOURCE_API, stale.kind, stale.name, namespace=stale.namespace)
        if desired is None:
            status.pop("helmChart", None)
            return None
        meta = desired["metadata"]
        applied = None
        if not chart_current(desired, self.charts.get(meta["namespace"], meta["name"])):
            applied = await self.kube.apply(desired, field_manager=FIELD_MANAGER, force=True)
            await self.charts.observe(applied)
        status["helmChart"] = f"{meta['namespace']}/{meta['name']}"
        return applied

    @contextlib.asynccontextmanager
    async def _chart(self, obj: KubeObject, artifact: Mapping[str, Any], kind: str) -> AsyncIterator[Chart]:
        """The chart artifact fetched into a private directory (digest and size checked), read, then removed.

        From an OCIRepository or ExternalArtifact the chart is released with the artifact's digest in its
        version, as Flux (repacked with that Chart.yaml: helm reads the version from the chart)."""
        where = Path(tempfile.mkdtemp(prefix="chart-", dir=self.workdir))
        try:
            path = await fetch(
                self.http,
                str(artifact["url"]),
                where / "chart.tgz",
                digest=str(artifact["digest"]),
                max_size=self.settings.artifact_max_size,
            )
            try:
                name, version, app_version = await chart_metadata(path)
                released = chart_revision(kind, str(artifact.get("revision") or ""), version)
                if released.version != version:
                    path = await asyncio.to_thread(with_version, path, released.version, where / "released.tgz")
            except ChartUnreadable as e:
                # Flux's ArtifactFailed wording: an OCI artifact that is no chart (not a Helm chart layer) too.
                raise ChartUnreadable(f"Could not load chart: {e}") from None
            yield Chart(path, name, released.version, app_version, released.digest)
        finally:
            shutil.rmtree(where, ignore_errors=True)

    # --- the release -------------------------------------------------------------------------------------

    async def _storage(
        self, obj: KubeObject, known: list[Release] | None = None
    ) -> tuple[list[Release], list[st.Snapshot]]:
        """Helm's records of this release, newest first, and their snapshots (each with its own config digest).

        ``known``: the records as this reconcile just wrote them (a first install's version 1 is the whole
        history), used instead of reading them back."""
        if known is not None:
            records = known
        else:
            records = await release_history(self._cluster(obj), storage_namespace(obj), release_name(obj))
        status = obj["status"]
        return records, [history_snapshot(r, oci_digest=recorded_oci_digest(status, r)) for r in records]

    async def _target_changed(self, obj: KubeObject) -> Outcome | None:
        """Flux's ReleaseTargetChanged: a new release name, target or storage namespace uninstalls the old
        release first (an install beside it would fail on its objects); the next reconcile installs."""
        status = obj["status"]
        cur = st.latest(status)
        if not status.get("storageNamespace") or cur is None:
            return None
        if (
            status["storageNamespace"] == storage_namespace(obj)
            and cur.get("namespace") == target_namespace(obj)
            and cur.get("name") == release_name(obj)
        ):
            return None
        previous = {
            **obj,
            "spec": {
                **obj["spec"],
                "releaseName": cur["name"],
                "targetNamespace": cur["namespace"],
                "storageNamespace": status["storageNamespace"],
            },
        }
        keep, propagation = uninstall_options(obj["spec"])
        with contextlib.suppress(HelmActionFailed):
            await self.helm.uninstall(action_request(previous, "uninstall", kube=self._access(obj)), keep, propagation)
        status.pop("history", None)
        st.clear_failures(status)
        status.pop("storageNamespace", None)
        return Outcome.progressing("release target changed: previous release uninstalled", requeue_after=0.5)

    async def _release(self, obj: KubeObject, desired: plan.Desired, chart: Chart, values: dict[str, Any]) -> Outcome:
        status = obj["status"]
        done: list[plan.ActionType] = []
        announce: list[Announcement] = []
        drifts: list[Announcement] = []  # kept apart: `announce` empty means "nothing released this time"
        known: list[Release] | None = None
        while True:
            records, storage = await self._storage(obj, known)
            known = None
            state = plan.release_state(obj, desired, storage)
            wait = plan.pending_wait(obj, state, storage)
            if wait is not None:
                st.follow_storage(status, storage)  # the release this one superseded: its record changed
                waiting = await self._wait(obj, wait, records[0], announce)
                if waiting is not None:
                    return waiting
                # The action ended with its wait: on to what follows it, as after Helm's own wait.
                step = plan.after_action(obj, wait.action)
                if step is not plan.Next.CONTINUE:
                    return self._stop(obj, step, announce)
                if plan.TYPE_OF[wait.action] not in done:
                    done.append(plan.TYPE_OF[wait.action])
                continue
            plan.end_abandoned_wait(status, _now())
            decision = plan.decide(obj, state, storage)
            status["history"] = list(decision.history)
            if decision.forced:
                status["lastHandledForceAt"] = plan.force_request(obj)
            if decision.verdict is plan.Verdict.DONE:
                # Flux's Drifted state: corrected once, then the state is determined again.
                if records and await self._drift(obj, records[0], drifts, correct=not drifts):
                    continue
                outcome = self._in_sync(obj, chart, desired, announce)
                return dataclasses.replace(outcome, announce=(*outcome.announce, *drifts))
            if decision.verdict is plan.Verdict.STALLED:
                raise self._stalled(obj, decision)
            action = decision.action
            assert action is not None  # ACT always names one
            step = plan.before_action(obj, action, done)
            if step is not plan.Next.CONTINUE:
                return self._stop(obj, step, announce)
            log.info("running helm action", action=action.value, reason=decision.reason)
            written: list[Release] = []
            stored = await self._act(obj, action, decision, records, chart, values, written=written)
            if action is plan.Action.INSTALL and written and written[0].version == 1:
                known = written  # version 1 is the whole history: nothing to read back
            if not stored:
                # Nothing reached Helm's storage (a chart that fails to render): nothing to remediate.
                raise self._failed(obj, plan.after_failure(obj))
            if action.value in plan.WAITED and not status.get(plan.ACTION_DURATION):
                continue  # helm is done; its objects are looked at, at the top of the loop, before anything else
            step = plan.after_action(obj, action)
            if step is not plan.Next.CONTINUE:
                return self._stop(obj, step, announce)
            done.append(plan.TYPE_OF[action])

    async def _act(
        self,
        obj: KubeObject,
        action: plan.Action,
        decision: plan.Decision,
        records: list[Release],
        chart: Chart,
        values: dict[str, Any],
        secrets: frozenset[str] = frozenset(),
        written: list[Release] | None = None,
    ) -> bool:
        """Run one action and record its result; False when it failed without writing Helm's storage.

        ``written`` gets the record an install or upgrade wrote."""
        status = obj["status"]
        cur = st.latest(status) or (history_snapshot(records[0]) if records else {})
        if action is plan.Action.UNLOCK:
            return await self._unlock(obj, records[0])
        if action in (plan.Action.INSTALL, plan.Action.UPGRADE):
            status["lastAttemptedReleaseAction"] = action.value
            plan.begin_action(status)
            began = time.monotonic()
            if action is plan.Action.INSTALL:
                status.pop("history", None)  # an install starts the history again (never roll back past it)
            c.delete(obj, st.Condition.TEST_SUCCESS)
            c.delete(obj, st.Condition.REMEDIATED)
            request = action_request(
                obj, action.value, kube=self._access(obj), chart_path=chart.path, values=values, secrets=secrets
            )
            # The storage was read at the top of this step: an install onto none need not read it again.
            request = dataclasses.replace(request, storage_empty=not records)
            try:
                released = await (self.helm.install if action is plan.Action.INSTALL else self.helm.upgrade)(request)
            except HelmActionFailed as e:
                plan.end_action(status, time.monotonic() - began)
                return await self._release_failed(obj, action, chart, e, records[0].version if records else 0)
            # Released is written once the objects were waited for (:meth:`_wait`), as Flux writes it after
            # Helm's wait: until then the action is under way.
            if written is not None:
                written.append(released)
            st.record(status, history_snapshot(released, action=action.value, oci_digest=_attempted_digest(status)))
            # Flux summarizes after each action: the release made with these post-renderers is theirs, also
            # while its objects are waited for (the out-of-sync check would otherwise upgrade again).
            post_renderers.stamp_observed(status, obj["spec"])
            return True
        if action is plan.Action.TEST:
            return await self._test(obj, cur)
        if action is plan.Action.ROLLBACK:
            return await self._rollback(obj, decision.target or {})
        return await self._uninstall_remediation(obj, cur)

    async def _release_failed(
        self, obj: KubeObject, action: plan.Action, chart: Chart, error: HelmActionFailed, before_version: int
    ) -> bool:
        status, now = obj["status"], _now()
        message = (st.install_failure if action is plan.Action.INSTALL else st.upgrade_failure)(
            target_namespace(obj), release_name(obj), chart.name, chart.version, error.message
        )
        st.increment(status, "failures")
        reason = st.Reason.INSTALL_FAILED if action is plan.Action.INSTALL else st.Reason.UPGRADE_FAILED
        c.mark_false(obj, st.Condition.RELEASED, reason, message, now=now)
        self._summarize(obj)
        newest = error.release
        if newest is None or newest.version <= before_version:
            return False
        # The failed record Helm wrote joins the history and counts against the remediation's retries.
        st.record(status, history_snapshot(newest, action=action.value, oci_digest=_attempted_digest(status)))
        st.increment(status, plan.remediation_of(obj["spec"], st.ReleaseAction(action.value)).counter())
        return True

    async def _test(self, obj: KubeObject, cur: st.Snapshot) -> bool:
        status, now = obj["status"], _now()
        request = action_request(obj, "test", kube=self._access(obj))
        tested: Release | None
        try:
            tested = await self.helm.test(request)
            error = ""
        except HelmActionFailed as e:
            error, tested = e.message, e.release
        if tested is not None and tested.version == cur.get("version"):
            snap = {**cur, "testHooks": {name: dict(h) for name, h in tested.test_hooks.items()}}
            st.record(status, snap)
            cur = snap
        if not error:
            c.mark_true(obj, st.Condition.TEST_SUCCESS, st.Reason.TEST_SUCCEEDED, st.test_success(cur), now=now)
            self._summarize(obj)
            return True
        st.increment(status, "failures")
        c.mark_false(obj, st.Condition.TEST_SUCCESS, st.Reason.TEST_FAILED, st.test_failure(cur, error), now=now)
        self._summarize(obj)
        if not st.has_been_tested(cur):
            return False
        remediation = plan.active_remediation(obj)
        _, ignore = plan.test_spec(obj["spec"])
        if remediation is not None and not remediation.must_ignore_test_failures(ignore):
            st.increment(status, remediation.counter())
        return True

    async def _rollback(self, obj: KubeObject, target: st.Snapshot) -> bool:
        status, now = obj["status"], _now()
        request = action_request(obj, "rollback", kube=self._access(obj))
        plan.begin_action(status)
        began = time.monotonic()
        try:
            rolled = await self.helm.rollback(request, int(target.get("version") or 0) or None)
        except HelmActionFailed as e:
            plan.end_action(status, time.monotonic() - began)
            st.increment(status, "failures")
            c.mark_false(
                obj, st.Condition.REMEDIATED, st.Reason.ROLLBACK_FAILED, st.rollback_failure(target, e.message), now=now
            )
            self._summarize(obj)
            return True
        # Remediated is written once the objects were waited for (:meth:`_wait`).
        st.record(status, history_snapshot(rolled, action="rollback"))
        return True

    async def _uninstall_remediation(self, obj: KubeObject, cur: st.Snapshot) -> bool:
        status, now = obj["status"], _now()
        request = action_request(obj, "uninstall", kube=self._access(obj))
        keep, propagation = uninstall_options(obj["spec"])
        try:
            await self.helm.uninstall(request, keep, propagation)
        except HelmActionFailed as e:
            st.increment(status, "failures")
            message = st.uninstall_remediation_failure(cur, e.message)
            c.mark_false(obj, st.Condition.REMEDIATED, st.Reason.UNINSTALL_FAILED, message, now=now)
            self._summarize(obj)
            return True
        records, snaps = await self._storage(obj)
        if records:
            st.record(status, snaps[0])
        message = st.uninstall_remediation_success(cur)
        c.mark_true(obj, st.Condition.REMEDIATED, st.Reason.UNINSTALL_SUCCEEDED, message, now=now)
        self._summarize(obj)
        return True

    async def _unlock(self, obj: KubeObject, record: Release) -> bool:
        status, now = obj["status"], _now()
        snap = history_snapshot(record)
        try:
            await unlock_release(self._cluster(obj), record)
        except TransientError as e:
            st.increment(status, "failures")
            message = st.unlock_failure(snap, record.status, str(e))
            c.mark_false(obj, st.Condition.RELEASED, st.Reason.PENDING_RELEASE, message, now=now)
            raise
        c.mark_false(
            obj, st.Condition.RELEASED, st.Reason.PENDING_RELEASE, st.unlock_success(snap, record.status), now=now
        )
        records, snaps = await self._storage(obj)
        if records and st.latest(status) and records[0].version == st.latest(status).get("version"):  # type: ignore[union-attr]
            st.record(status, snaps[0])
        return True

    # --- waiting for the release's objects ----------------------------------------------------------

    async def _wait(
        self, obj: KubeObject, wait: plan.Wait, record: Release, announce: list[Announcement]
    ) -> Outcome | None:
        """One look at the release's objects: a requeue while they roll out, else None once the action
        ended (healthy, or failed as Helm's wait would have: past the timeout, or an object Failed)."""
        now = _now()
        elapsed, waited = wait.elapsed(now), wait.waited(now)
        try:
            refs = record.objects() if wait.enabled else []
            if not wait.jobs:
                refs = [r for r in refs if not health.is_job(r)]
            client = self._access(obj).client or self.kube
            report = await health.check(client, refs, now=now, skip_paused=True)  # as Helm's wait
        except UnreadableManifest as e:
            error = str(e)
        except ApiError as e:
            if waited < wait.timeout:
                raise  # retried; the wait's timeout still runs from the action's start
            error = str(e)
        else:
            verdict = report.verdict(elapsed=waited, timeout=wait.timeout)
            if verdict is health.Verdict.PROGRESSING:
                message = f"{st.running(wait.action.value, wait.timeout)}: {report.message(verdict)}"
                return Outcome.progressing(message, requeue_after=wait.poll_after(now, self.settings.health_poll))
            error = "" if verdict is health.Verdict.HEALTHY else report.message(verdict)
        plan.end_action(obj["status"], elapsed)
        if error:
            await self._wait_failed(obj, wait, record, error)
        else:
            self._wait_succeeded(obj, wait, record, announce)
        return None

    def _wait_succeeded(self, obj: KubeObject, wait: plan.Wait, record: Release, announce: list[Announcement]) -> None:
        """The action succeeded, its objects ready: what Flux writes after Helm's wait returned."""
        status, now, snap = obj["status"], _now(), wait.snapshot
        if wait.action is plan.Action.ROLLBACK:
            target = self._rollback_target(obj, record) or snap
            c.mark_true(
                obj, st.Condition.REMEDIATED, st.Reason.ROLLBACK_SUCCEEDED, st.rollback_success(target), now=now
            )
            self._summarize(obj)
            return
        install = wait.action is plan.Action.INSTALL
        success = st.install_success if install else st.upgrade_success
        reason = st.Reason.INSTALL_SUCCEEDED if install else st.Reason.UPGRADE_SUCCEEDED
        c.mark_true(obj, st.Condition.RELEASED, reason, success(snap), now=now)
        enabled, _ = plan.test_spec(obj["spec"])
        if enabled and not st.has_been_tested(snap):
            c.mark_unknown(obj, st.Condition.TEST_SUCCESS, st.Reason.AWAITING_TESTS, st.test_pending(snap), now=now)
        if plan.retry_interval(obj["spec"], st.ReleaseAction(wait.action.value)) is not None:
            st.clear_failures(status)  # under RetryOnFailure failures only count while failed
        self._summarize(obj)
        announce.append(self._announce_released(obj, snap))

    async def _wait_failed(self, obj: KubeObject, wait: plan.Wait, record: Release, error: str) -> None:
        """Helm's wait failure, written as Helm and Flux write it: the release record failed (so ``helm
        history`` and the plan see it), Released or Remediated False, the failure counted."""
        status, now, snap = obj["status"], _now(), wait.snapshot
        message = st.helm_wait_failure(wait.action.value, record.name, error)
        failed = await mark_failed(self._cluster(obj), record, message)
        if failed is not None:
            action = str(snap.get("action") or "")
            st.record(status, history_snapshot(failed, action=action, oci_digest=recorded_oci_digest(status, failed)))
        st.increment(status, "failures")
        if wait.action is plan.Action.ROLLBACK:
            target = self._rollback_target(obj, record) or snap
            message = st.rollback_failure(target, f"release {record.name} failed: {error}")
            c.mark_false(obj, st.Condition.REMEDIATED, st.Reason.ROLLBACK_FAILED, message, now=now)
            self._summarize(obj)
            return
        install = wait.action is plan.Action.INSTALL
        failure = st.install_failure if install else st.upgrade_failure
        message = failure(
            record.namespace, record.name, str(snap.get("chartName") or ""), str(snap.get("chartVersion") or ""), error
        )
        reason = st.Reason.INSTALL_FAILED if install else st.Reason.UPGRADE_FAILED
        c.mark_false(obj, st.Condition.RELEASED, reason, message, now=now)
        if failed is not None:
            # A failed record in storage: it counts against the remediation's retries, as a failed action does.
            st.increment(status, plan.remediation_of(obj["spec"], st.ReleaseAction(wait.action.value)).counter())
        self._summarize(obj)
        log.info("release objects not ready", action=wait.action.value, release=record.full_name, error=error)

    def _rollback_target(self, obj: KubeObject, record: Release) -> st.Snapshot | None:
        """The release a rollback returned to: Helm's description names its version."""
        found = _ROLLBACK_DESCRIPTION.match(record.description)
        version = int(found.group(1)) if found else None
        return next((s for s in st.history(obj["status"]) if s.get("version") == version), None)

    def _cluster(self, obj: KubeObject) -> KubeClient:
        """The release's cluster (spec.kubeConfig's, else ours) as the controller: Helm's storage is read so."""
        remote = self.targets.bound(obj)
        return remote.client if remote is not None else self.kube

    def _access(self, obj: KubeObject) -> KubeAccess:
        """helm's way into the cluster: our kubeconfig, as spec.serviceAccountName or --default-service-account."""
        remote = self.targets.bound(obj)
        if remote is not None:
            return remote.access(obj, self.settings.default_service_account)
        sa = obj["spec"].get("serviceAccountName") or self.settings.default_service_account
        ns = obj["metadata"]["namespace"]
        validates = self.server_validates_fields
        if not sa:
            return KubeAccess(self.kubeconfig, client=self.kube, server_validates_fields=validates)
        return KubeAccess(
            self.kubeconfig,
            as_user=f"system:serviceaccount:{ns}:{sa}",
            client=self.kube.impersonate(sa, ns),
            server_validates_fields=validates,
        )

    # --- endings -----------------------------------------------------------------------------------------

    def _summarize(self, obj: KubeObject) -> None:
        enabled, _ = plan.test_spec(obj["spec"])
        st.summarize(obj, test_enabled=enabled, ignore_test_failures=plan.ignore_test_failures(obj), now=_now())
        post_renderers.stamp_observed(obj["status"], obj["spec"])

    async def _drift(self, obj: KubeObject, release: Release, events: list[Announcement], *, correct: bool) -> bool:
        """Drift detection of an in-sync release (see :mod:`helm_controller.drift`): the Drifted condition and
        Flux's DriftDetected event; under mode enabled the drift is corrected once (True: look again)."""
        settings = drift.drift_detection(obj["spec"])
        if not settings.detects:
            return False
        try:
            documents = release.manifest_documents()
        except UnreadableManifest as e:
            raise drift.DriftDetectionFailed(f"unable to determine cluster state: {e}") from None
        client = self._access(obj).client or self.kube
        report = await drift.detect(
            client, documents, release_name=release.name, release_namespace=release.namespace, settings=settings
        )
        now = _now()
        if not report.drifted:
            c.mark_false(obj, st.Condition.DRIFTED, st.Reason.NO_DRIFT_DETECTED, drift.NO_DRIFT, now=now)
            return False
        log.info("detected changes in cluster state", summary=drift.summarize_brief(report.diffs))
        message = drift.drifted_message(release.full_name, report.diffs)
        c.mark_true(obj, st.Condition.DRIFTED, st.Reason.DRIFT_DETECTED, message, now=now)
        revision = release.chart_version
        events.append(Announcement(EventKind.WARNING, st.Reason.DRIFT_DETECTED, message, revision, Severity.ERROR))
        if settings.mode is not drift.Mode.ENABLED or not correct:
            return False
        done = await drift.correct(client, report.diffs)
        severity, kind = (Severity.ERROR, EventKind.WARNING) if done.failures else (Severity.INFO, EventKind.INFO)
        log.info("corrected cluster state", changes=len(done.changes), failures=len(done.failures))
        events.append(Announcement(kind, done.reason, done.message(release.full_name), revision, severity))
        return True

    def _in_sync(self, obj: KubeObject, chart: Chart, desired: plan.Desired, announce: list[Announcement]) -> Outcome:
        """Nothing left to do: restore Released/Ready a failure left False (Flux's in-sync branch)."""
        now, cur = _now(), st.latest(obj["status"]) or {}
        if c.is_true(obj, st.Condition.REMEDIATED):
            c.delete(obj, st.Condition.REMEDIATED)
            c.mark_true(obj, st.Condition.RELEASED, st.Reason.UPGRADE_SUCCEEDED, st.upgrade_success(cur), now=now)
        reason = c.get_reason(obj, st.Condition.RELEASED)
        if reason == st.Reason.INSTALL_FAILED:
            c.mark_true(obj, st.Condition.RELEASED, st.Reason.INSTALL_SUCCEEDED, st.install_success(cur), now=now)
        elif reason == st.Reason.UPGRADE_FAILED or not c.has(obj, st.Condition.RELEASED):
            c.mark_true(obj, st.Condition.RELEASED, st.Reason.UPGRADE_SUCCEEDED, st.upgrade_success(cur), now=now)
        was_ready = c.is_ready(obj)
        self._summarize(obj)
        if c.is_false(obj, c.ConditionType.READY):
            raise TransientError(c.get_message(obj, c.ConditionType.READY), reason=c.get_reason(obj, "Ready"))
        if not announce and not was_ready:
            announce.append(self._applied(obj, chart, desired))
        ready = c.get(obj, c.ConditionType.READY)
        return Outcome.succeeded(
            requeue_after=interval_of(obj),
            message=ready["message"] if ready else None,
            reason=ready["reason"] if ready else c.Reason.RECONCILIATION_SUCCEEDED,
            announce=announce,
        )

    def _applied(self, obj: KubeObject, chart: Chart, desired: plan.Desired) -> Announcement:
        """`applied` as Flux's event: the chart version as revision, the config digest as token."""
        return _released_event(obj, chart.version, desired.config_digest, chart.app_version, chart.digest)

    def _announce_released(self, obj: KubeObject, snap: st.Snapshot) -> Announcement:
        """`applied` for the release a wait ended healthy for, from its snapshot (same fields as above)."""
        return _released_event(
            obj,
            str(snap.get("chartVersion") or ""),
            str(snap.get("configDigest") or ""),
            str(snap.get("appVersion") or ""),
            str(snap.get("ociDigest") or ""),
        )

    def _stop(self, obj: KubeObject, step: plan.Next, announce: list[Announcement]) -> Outcome:
        """The reconcile ends before its work is done: retry, requeue, or stall (Flux's strategy exits)."""
        if step is plan.Next.STALL:
            raise TerminalError(plan.stall_message(obj), reason=st.Reason.RETRIES_EXCEEDED)
        if step is plan.Next.STOP and not c.is_false(obj, c.ConditionType.READY):
            return Outcome.succeeded(requeue_after=interval_of(obj), announce=announce)
        raise self._failed(obj, step)

    def _failed(self, obj: KubeObject, step: plan.Next) -> TransientError:
        message = c.get_message(obj, c.ConditionType.READY) or "release failed"
        reason = c.get_reason(obj, c.ConditionType.READY) or c.Reason.FAILED
        if step is plan.Next.RETRY_AFTER_INTERVAL:
            return TransientError(message, reason=reason, retry_after=plan.active_retry(obj))
        # Flux's ErrMustRequeue: back soon, the remediation's next step is waiting.
        return TransientError(message, reason=reason, retry_after=1.0 if step is plan.Next.REQUEUE else None)

    def _stalled(self, obj: KubeObject, decision: plan.Decision) -> TerminalError:
        if decision.stall_reason == st.Reason.MISSING_ROLLBACK_TARGET:
            return TerminalError(f"Failed to perform remediation: {decision.reason}", reason=decision.stall_reason)
        return TerminalError(plan.stall_message(obj), reason=decision.stall_reason)

    # --- deletion ----------------------------------------------------------------------------------------

    async def finalize(self, obj: KubeObject) -> None:
        try:
            if not (obj.get("spec") or {}).get("suspend") and (obj.get("status") or {}).get("storageNamespace"):
                await self.targets.bind(obj)  # the release is uninstalled where it lives
            await self._finalize(obj)
        finally:
            await self.targets.release(obj)

    async def _finalize(self, obj: KubeObject) -> None:
        """Uninstall the release (uninstall.keepHistory, deletionPropagation), then delete our HelmChart.

        A suspended HelmRelease keeps both, as in Flux: deleting it then only lets go of the release.
        """
        status = obj.get("status") or {}
        if (obj.get("spec") or {}).get("suspend"):
            return
        if status.get("storageNamespace"):
            namespace = str(status["storageNamespace"])
            records = await release_history(self._cluster(obj), namespace, release_name(obj))
            if records and records[0].status != "uninstalled":
                keep, propagation = uninstall_options(obj["spec"])
                await self.helm.uninstall(action_request(obj, "uninstall", kube=self._access(obj)), keep, propagation)
        chart = status.get("helmChart")
        if isinstance(chart, str) and "/" in chart and (obj.get("spec") or {}).get("chart"):
            ns, name = chart.split("/", 1)
            with contextlib.suppress(NotFound):
                await self.kube.delete(SOURCE_API, "HelmChart", name, namespace=ns)


def _released_event(obj: KubeObject, revision: str, token: str, app_version: str, oci_digest: str = "") -> Announcement:
    reason = c.get_reason(obj, st.Condition.RELEASED) or st.Reason.UPGRADE_SUCCEEDED
    metadata = {"token": token}
    if app_version:
        metadata["app-version"] = app_version
    if oci_digest:
        metadata["oci-digest"] = oci_digest  # Flux's addOCIDigest
    return Announcement(
        EventKind.APPLIED,
        reason,
        c.get_message(obj, st.Condition.RELEASED),
        revision=revision,
        severity=Severity.INFO,
        metadata=metadata,
    )


def history_snapshot(r: Release, *, action: str = "", oci_digest: str = "") -> st.Snapshot:
    """Flux's snapshot of a stored release, its config digest computed from the values it was made with;
    ``oci_digest`` is the OCI artifact's digest it was made from (part of the snapshot's digest, as Flux)."""
    return dict(history_entry(r, config_digest(dict(r.config)), oci_digest=oci_digest, action=action))


def recorded_oci_digest(status: Mapping[str, Any], r: Release) -> str:
    """The ``ociDigest`` status.history holds for this stored release (Flux's releaseToObservation keeps the
    snapshot's: Helm's record does not know it), "" when none."""
    for snap in st.history(status):
        if snap.get("name") == r.name and snap.get("namespace") == r.namespace and snap.get("version") == r.version:
            return str(snap.get("ociDigest") or "")
    return ""


def _attempted_digest(status: Mapping[str, Any]) -> str:
    """A release made by this install or upgrade carries the digest attempted (Flux's mutateOCIDigest)."""
    return str(status.get("lastAttemptedRevisionDigest") or "")


def check_storage_namespace(obj: KubeObject) -> None:
    """The helm CLI stores a release where it installs it: a storageNamespace apart from the target is refused
    before anything is written (Stalled until the spec changes), not found failing at every action."""
    storage, target = storage_namespace(obj), target_namespace(obj)
    if storage != target:
        raise InvalidSpec(
            f"spec.storageNamespace '{storage}' differs from the target namespace '{target}': this controller runs "
            "the helm CLI, which stores a release in the namespace it installs into; leave storageNamespace unset "
            "or equal to the target namespace",
            reason="UnsupportedField",
        )
