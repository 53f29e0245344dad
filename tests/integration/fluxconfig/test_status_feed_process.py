"""FluxConfig compliance through the real fluxconfig-controller process: the feed as main.py wires it.

The controller makes the source and Kustomization from the FluxConfig alone; its status feed then reports
what the config's Kustomization applied, Pending → Compliant, and Non-Compliant when an applied
Kustomization breaks, with `applied` / `failed` for the FluxConfig on the bus.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from gitops_mesh.kube.objects import KubeObject
from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.repos import Repo
from tests.integration.conftest import eventually
from tests.integration.fluxconfig.conftest import KS, SRC, FluxMesh, b64, configmap, fluxconfig, protected
from tests.support.fixtures import PASSWORD, USERNAME

pytestmark = pytest.mark.stack


def nested(namespace: str) -> str:
    return (
        f"apiVersion: {KS}\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: {namespace}\n"
        "spec:\n  interval: 10m\n  path: ./apps\n  prune: true\n"
        "  sourceRef: {kind: GitRepository, name: cfg}\n"
    )


def state(obj: KubeObject) -> str:
    return str((obj.get("status") or {}).get("complianceState") or "")


async def test_the_controller_reports_compliance_of_what_its_kustomizations_applied(
    mesh: FluxMesh, git_https: GitServer, make_repo: Callable[..., Repo]
) -> None:
    kube, ns = mesh.kube, mesh.namespace
    repo = make_repo("main")
    first = repo.commit(
        {"infra/cm.yaml": configmap("infra-cm"), "infra/apps.yaml": nested(ns), "apps/cm.yaml": configmap("apps-cm")}
    )
    repo.push()
    assert git_https.tls is not None
    await protected(kube, ns, "cfg", {"httpsKey": PASSWORD})
    spec = {
        "scope": "cluster",
        "gitRepository": {
            "url": git_https.url(repo.name),
            "repositoryRef": {"branch": "main"},
            "httpsUser": USERNAME,
            "httpsCACert": b64(git_https.tls.ca_pem),
        },
        "kustomizations": {"infra": {"path": "./infra", "prune": True}},
    }
    await kube.create(fluxconfig(ns, "cfg", spec))

    cfg = await mesh.until_config("cfg", lambda o: state(o) == "Compliant", timeout=90)
    status = cfg["status"]
    assert status["sourceSyncedCommitId"] == f"main/{first}"
    assert status["provisioningState"] == "Succeeded", "the core's fields beside the feed's"
    listed = {(s["kind"], s["name"]): s for s in status["statuses"]}
    assert set(listed) == {("GitRepository", "cfg"), ("Kustomization", "cfg-infra"), ("Kustomization", "apps")}
    assert listed[("Kustomization", "apps")]["appliedBy"] == {"name": "cfg-infra", "namespace": ns}

    async def announced(kind: str, reason: str) -> bool:
        return any(e.reason == reason for e in mesh.bus.of(kind, "cfg") if e.involved_object.kind == "FluxConfig")

    await eventually(lambda: announced("applied", "Compliant"))

    broke = datetime.now(UTC)
    repo.commit({"apps/broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n"})
    repo.push()
    await kube.patch(
        SRC, "GitRepository", "cfg", {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "broken"}}},
        namespace=ns,
    )  # fmt: skip
    cfg = await mesh.until_config("cfg", lambda o: state(o) == "Non-Compliant", timeout=90)
    apps = next(s for s in cfg["status"]["statuses"] if s["name"] == "apps")
    assert apps["complianceState"] == "Non-Compliant"
    await eventually(lambda: announced("failed", "NonCompliant"))
    said = next(e for e in mesh.bus.of("failed", "cfg") if e.reason == "NonCompliant")
    assert said.time >= broke
    assert said.message.startswith(f"Kustomization/{ns}/apps: ")
