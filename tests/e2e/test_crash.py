"""Each controller SIGKILLed mid-flow and started again: the cluster converges and every notification
arrives, none twice beyond the dedupe rule (a restarted notification-controller may repeat a delivery,
with the same X-Gotk-Event-Id, for the receiver to drop)."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conftest import Flow, content

pytestmark = pytest.mark.stack


@pytest.mark.parametrize(
    ("victim", "when"),
    [
        # Right after the Receiver call: the fetch is under way or about to start.
        pytest.param("source", None, id="source-controller mid-fetch"),
        # The new artifact is announced: infra is being applied, apps waits for it.
        pytest.param("kustomize", ("artifact-ready", "repo"), id="kustomize-controller mid-apply"),
        # infra's applied event is out: deliveries are in flight while apps is still rolling out.
        pytest.param("notification", ("applied", "infra"), id="notification-controller mid-delivery"),
    ],
)
async def test_sigkill_mid_flow_then_restart_converges_and_notifies_once(
    flow: Flow, victim: str, when: tuple[str, str] | None
) -> None:
    ctl = getattr(flow.mesh, victim)
    sha = flow.push(content(2, color="red"), "version 2")
    await flow.call_receiver()
    if when is not None:
        await flow.until_on_bus(*when, sha)
    ctl.kill()
    apps = await flow.kustomization("apps")
    assert not apps["status"]["lastAppliedRevision"].endswith(sha), "the kill must land before the flow is done"
    ctl.start()
    await ctl.ready()

    await flow.until_applied("infra", sha, timeout=90)
    await flow.until_applied("apps", sha, timeout=90)
    assert (await flow.configmap("settings")) == {"color": "red"}
    assert (await flow.configmap("app-config")) == {"version": "2"}
    for kind, name in (("GitRepository", "repo"), ("Kustomization", "infra"), ("Kustomization", "apps")):
        await flow.until_notified(kind, name, sha)
    await asyncio.sleep(2)  # time for a late repeat to show up

    repeats = flow.repeats()
    if victim == "notification":
        for key, deliveries in repeats.items():
            ids = {r.headers["X-Gotk-Event-Id"] for r in deliveries}
            assert len(ids) == 1, f"{key} was delivered as {len(ids)} different events"
    else:
        assert not repeats, {k: len(v) for k, v in repeats.items()}
