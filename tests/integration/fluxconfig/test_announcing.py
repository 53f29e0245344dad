"""What Alerts see of a FluxConfig reaching Compliant: one `applied` on the bus, the status feed's, not two.

The reconciler writing the config's objects is not a state change a user is told about; the config becoming
Compliant (everything it made Ready, at a revision) is, and Flux sends one event per state change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.repos import Repo
from tests.integration.fluxconfig.conftest import FluxMesh, b64, configmap, fluxconfig, protected
from tests.support.fixtures import PASSWORD, USERNAME

pytestmark = pytest.mark.stack


def state(obj: KubeObject) -> str:
    return str((obj.get("status") or {}).get("complianceState") or "")


async def test_a_config_reaching_compliant_is_announced_once(
    mesh: FluxMesh, git_https: GitServer, make_repo: Callable[..., Repo]
) -> None:
    kube, ns = mesh.kube, mesh.namespace
    repo = make_repo("main")
    commit = repo.commit({"infra/cm.yaml": configmap("infra-cm"), "apps/cm.yaml": configmap("apps-cm")})
    repo.push()
    assert git_https.tls is not None
    await protected(kube, ns, "cfg", {"httpsKey": PASSWORD})
    spec = {
        "scope": "namespace",
        "gitRepository": {
            "url": git_https.url(repo.name),
            "repositoryRef": {"branch": "main"},
            "httpsUser": USERNAME,
            "httpsCACert": b64(git_https.tls.ca_pem),
        },
        "kustomizations": {"infra": {"path": "./infra"}, "apps": {"path": "./apps", "dependsOn": ["infra"]}},
    }
    await kube.create(fluxconfig(ns, "cfg", spec))

    cfg = await mesh.until_config("cfg", lambda o: state(o) == "Compliant", timeout=90)
    ready = c.get(cfg, c.ConditionType.READY)
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("True", "ReconciliationSucceeded")
    # Whatever else would be said about reaching this state has been published by now (the runner publishes
    # after its status patch, which Compliant needs); give the observer's consumer a moment to read it.
    await asyncio.sleep(2)
    about_config = [e for e in mesh.bus.events if e.involved_object.kind == "FluxConfig"]
    applied = [e for e in about_config if e.kind == "applied"]
    assert [(e.reason, e.involved_object.name) for e in applied] == [("Compliant", "cfg")], about_config
    assert applied[0].message == f"all 3 managed objects are ready at main/{commit}"
    assert applied[0].revision == f"main@sha1:{commit}"
    assert not [e for e in about_config if e.kind == "failed"], "nothing failed on the way"
    # The Kustomizations' own `applied` still reach the bus: only the config's duplicate is gone.
    assert {e.involved_object.name for e in mesh.bus.events if e.kind == "applied"} >= {"cfg-infra", "cfg-apps"}
