"""A bad commit (malformed YAML) is reported as failed to the webhook, the objects of the last good
revision stay as they are, and the next commit fixes it."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Flow, content

pytestmark = pytest.mark.stack

BROKEN = """apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  version: "3
  - oops: [
"""


async def test_malformed_yaml_is_notified_as_failed_keeps_objects_and_recovers(flow: Flow) -> None:
    good = flow.repo.head()
    bad = flow.push({"apps/web.yaml": BROKEN}, "broken manifest")
    await flow.call_receiver()

    (failure,) = await flow.until_notified("Kustomization", "apps", severity="error")
    body = failure.json()
    assert "web.yaml" in body["message"], body["message"]
    apps = await flow.kustomization("apps")
    ready = next(cond for cond in apps["status"]["conditions"] if cond["type"] == "Ready")
    assert ready["status"] == "False"
    assert "web.yaml" in ready["message"]
    assert apps["status"]["lastAttemptedRevision"] == f"main@sha1:{bad}"
    assert apps["status"]["lastAppliedRevision"] == f"main@sha1:{good}"
    # Nothing of the bad revision reached the cluster, nothing of the good one was pruned.
    assert (await flow.configmap("app-config")) == {"version": "1"}
    assert await flow.kube.get("apps/v1", "Deployment", "web", namespace=flow.namespace)
    # infra's files did not change: it applies the new revision with nothing to do.
    await flow.until_applied("infra", bad)

    fixed = flow.push(content(3), "fix the manifest")
    await flow.call_receiver()
    await flow.until_applied("apps", fixed, timeout=60)
    assert (await flow.configmap("app-config")) == {"version": "3"}
    (recovered,) = await flow.until_notified("Kustomization", "apps", fixed, severity="info")
    assert recovered.json()["reason"] == "ReconciliationSucceeded"
    assert len(flow.notified("Kustomization", "apps", severity="error")) == 1
