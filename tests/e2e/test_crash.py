"""Each controller SIGKILLed mid-flow and started again: the cluster converges and every notification
arrives, none twice beyond the dedupe rule (a restarted notification-controller may repeat a delivery,
with the same X-Gotk-Event-Id, for the receiver to drop)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.e2e.conftest import Flow, content

pytestmark = pytest.mark.stack


async def until_on_bus(flow: Flow, kind: str, name: str, sha: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not any(e.kind == kind and e.revision.endswith(sha) for e in flow.bus.of(kind, name)):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {kind} event for {name} at {sha[:12]} on the bus\n{flow.logs()}")
        await asyncio.sleep(0.01)


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
        await until_on_bus(flow, *when, sha)
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
