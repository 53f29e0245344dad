"""FluxConfig compliance against the real stack: source- and kustomize-controller as processes, Kafka, the feed.

The test plays the core reconciler's part (it makes the config's GitRepository and Kustomization with the
controller's labels, and marks the config's spec reconciled), so the feed is tested on its own: compliance
goes Pending → Compliant, lists what the config's Kustomization applied, turns Non-Compliant within a second
of the `failed` event when an applied Kustomization breaks, says so on the bus, and recovers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from fluxconfig_controller.model import API_VERSION, KIND, NAME_LABEL, NAMESPACE_LABEL
from gitops_mesh.bus.topics import Topics
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.informer import ChangeType, Informer
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh_dev.fluxconfig_feed import feed_running
from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.repos import Repo
from tests.integration.conftest import eventually
from tests.integration.kustomize.controller.conftest import Mesh, mesh, topics  # noqa: F401
from tests.support.fixtures import git_http, git_root, make_repo  # noqa: F401

pytestmark = pytest.mark.stack

SRC = "source.toolkit.fluxcd.io/v1"
KS = "kustomize.toolkit.fluxcd.io/v1"
CFG = "cfg"


def configmap(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: one\n"


def nested_kustomization(namespace: str) -> str:
    """What the config's Kustomization applies: another Kustomization (Azure lists it, appliedBy the first)."""
    return (
        f"apiVersion: {KS}\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: {namespace}\n"
        "spec:\n  interval: 10m\n  path: ./apps\n  prune: true\n"
        f"  targetNamespace: {namespace}\n  sourceRef: {{kind: GitRepository, name: {CFG}}}\n"
    )


def labels(namespace: str) -> dict[str, str]:
    return {"clusterconfig.azure.com/is-managed": "true", NAME_LABEL: CFG, NAMESPACE_LABEL: namespace}


async def make_config(kube: KubeClient, namespace: str, url: str) -> None:
    """The FluxConfig and what the core reconciler would make for it, its spec marked reconciled."""
    config = await kube.create(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": CFG, "namespace": namespace},
            "spec": {
                "scope": "namespace",
                "namespace": namespace,
                "sourceKind": "GitRepository",
                "gitRepository": {"url": url, "repositoryRef": {"branch": "main"}},
                "kustomizations": {"infra": {"path": "./infra", "prune": True}},
            },
        }
    )
    generation = config["metadata"]["generation"]
    await kube.patch_status(API_VERSION, KIND, CFG, {"status": {"observedGeneration": generation}}, namespace=namespace)
    await kube.create(
        {
            "apiVersion": SRC,
            "kind": "GitRepository",
            "metadata": {"name": CFG, "namespace": namespace, "labels": labels(namespace)},
            "spec": {"url": url, "interval": "10m", "ref": {"branch": "main"}},
        }
    )
    await kube.create(
        {
            "apiVersion": KS,
            "kind": "Kustomization",
            "metadata": {"name": f"{CFG}-infra", "namespace": namespace, "labels": labels(namespace)},
            "spec": {
                "interval": "10m",
                "path": "./infra",
                "prune": True,
                "targetNamespace": namespace,
                "sourceRef": {"kind": "GitRepository", "name": CFG},
            },
        }
    )


@dataclass
class Seen:
    """Every complianceState the FluxConfig went through, with when the test's own watch saw it."""

    states: list[tuple[datetime, str]] = field(default_factory=list)
    latest: KubeObject = field(default_factory=dict)

    def on_change(self, change: ChangeType, obj: KubeObject, old: KubeObject | None) -> None:
        state = (obj.get("status") or {}).get("complianceState")
        self.latest = obj
        if state and (not self.states or self.states[-1][1] != state):
            self.states.append((datetime.now(UTC), state))

    def first(self, state: str, after: datetime | None = None) -> datetime | None:
        return next((t for t, s in self.states if s == state and (after is None or t >= after)), None)


@pytest.fixture
async def seen(kube: KubeClient, namespace: str) -> AsyncIterator[Seen]:
    record = Seen()
    informer = Informer(kube, API_VERSION, KIND, namespace=namespace)
    informer.on_event(record.on_change)
    async with informer:
        await informer.wait_synced(30)
        yield record


async def request(kube: KubeClient, namespace: str, token: str) -> None:
    await kube.patch(
        SRC, "GitRepository", CFG, {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}},
        namespace=namespace,
    )  # fmt: skip


def statuses_by_name(obj: KubeObject) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in (obj.get("status") or {}).get("statuses") or []}


async def test_compliance_follows_the_bus_pending_compliant_non_compliant_and_back(
    kube: KubeClient,
    namespace: str,
    stack_env: dict[str, str],
    topics: Topics,  # noqa: F811
    mesh: Mesh,  # noqa: F811
    seen: Seen,
    git_http: GitServer,  # noqa: F811
    make_repo: Callable[..., Repo],  # noqa: F811
) -> None:
    repo = make_repo("main")
    first = repo.commit(
        {
            "infra/cm.yaml": configmap("infra-cm"),
            "infra/apps.yaml": nested_kustomization(namespace),
            "apps/cm.yaml": configmap("apps-cm"),
        }
    )
    repo.push()
    async with feed_running(
        kubeconfig=stack_env["KUBECONFIG"], bootstrap=stack_env["KAFKA_BOOTSTRAP"], topics=topics, namespace=namespace
    ) as running:
        await running.joined()
        await make_config(kube, namespace, git_http.url(repo.name))

        async def compliant() -> bool:
            return seen.first("Compliant") is not None

        await eventually(compliant, timeout=60)
        assert seen.states[0][1] == "Pending", f"not reconciled yet is Pending first: {seen.states}"
        status = seen.latest["status"]
        assert status["sourceSyncedCommitId"] == f"main/{first}"
        assert status["sourceUpdatedAt"]
        assert status["statusUpdatedAt"]
        assert status["observedGeneration"] == 1, "the core's fields are left alone"
        listed = statuses_by_name(seen.latest)
        assert set(listed) == {CFG, f"{CFG}-infra", "apps"}
        assert listed[CFG]["kind"] == "GitRepository"
        assert "appliedBy" not in listed[CFG]
        assert listed["apps"]["appliedBy"] == {"name": f"{CFG}-infra", "namespace": namespace}
        assert all(s["complianceState"] == "Compliant" for s in listed.values())
        ready = next(c for c in listed["apps"]["statusConditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("True", "ReconciliationSucceeded")

        async def announced(kind: str) -> bool:
            return bool(mesh.bus.of(kind, CFG))

        await eventually(lambda: announced("applied"))
        said = mesh.bus.of("applied", CFG)[0]
        assert (said.involved_object.kind, said.reason) == (KIND, "Compliant")
        assert said.revision == f"main@sha1:{first}"

        # An applied Kustomization breaks: its `failed` on the bus turns the config Non-Compliant at once.
        broke = datetime.now(UTC)
        repo.commit({"apps/broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n"})
        repo.push()
        await request(kube, namespace, "broken")

        async def non_compliant() -> bool:
            return seen.first("Non-Compliant", after=broke) is not None

        await eventually(non_compliant, timeout=60)
        failed_apps = [e for e in mesh.bus.of("failed", "apps") if e.time >= broke]
        assert failed_apps, "kustomize-controller said it on the bus"
        turned = seen.first("Non-Compliant", after=broke)
        assert turned is not None
        latency = (turned - failed_apps[0].time).total_seconds()
        assert latency < 1.0, f"compliance updated {latency:.3f}s after the failed event"
        listed = statuses_by_name(seen.latest)
        assert listed["apps"]["complianceState"] == "Non-Compliant"
        assert listed[f"{CFG}-infra"]["complianceState"] == "Compliant"

        await eventually(lambda: announced("failed"))
        said = mesh.bus.of("failed", CFG)[0]
        assert (said.reason, said.severity) == ("NonCompliant", "error")
        assert said.message.startswith(f"Kustomization/{namespace}/apps: ")

        # Fixed: Compliant again, announced again.
        fixed = datetime.now(UTC)
        repo.commit({"apps/broken.yaml": None})
        repo.push()
        await request(kube, namespace, "fixed")

        async def recovered() -> bool:
            return seen.first("Compliant", after=fixed) is not None and len(mesh.bus.of("applied", CFG)) == 2

        await eventually(recovered, timeout=60)


async def test_with_kafka_away_the_informers_carry_it(
    kube: KubeClient,
    namespace: str,
    stack_env: dict[str, str],
    topics: Topics,  # noqa: F811
    mesh: Mesh,  # noqa: F811
    seen: Seen,
    git_http: GitServer,  # noqa: F811
    make_repo: Callable[..., Repo],  # noqa: F811
) -> None:
    repo = make_repo("main")
    first = repo.commit({"infra/cm.yaml": configmap("infra-cm")})
    repo.push()
    async with feed_running(
        kubeconfig=stack_env["KUBECONFIG"],
        bootstrap=stack_env["KAFKA_BOOTSTRAP"],
        topics=topics,
        namespace=namespace,
        with_bus=False,
    ):
        await make_config(kube, namespace, git_http.url(repo.name))

        async def compliant() -> bool:
            return seen.first("Compliant") is not None

        await eventually(compliant, timeout=60)
        assert seen.latest["status"]["sourceSyncedCommitId"] == f"main/{first}"
        assert set(statuses_by_name(seen.latest)) == {CFG, f"{CFG}-infra"}
