"""The apply steps against the real kube-apiserver (and kwok nodes): staging, drift, force, rejection, prune, health."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gitops_mesh.errors import Conflict, NotFound
from gitops_mesh.kube import KubeClient, KubeObject, PatchType
from kustomize_controller.apply import (
    Action,
    ChangeSetError,
    ChangeSetRejected,
    DeletionPolicy,
    ObjectId,
    Owner,
    Status,
    Verdict,
    apply_all,
    check,
    diff,
    finalize,
    prune,
    remaining,
    wait,
)
from kustomize_controller.apply.objects import LAST_APPLIED_ANNOTATION, NAME_LABEL, NAMESPACE_LABEL, cleanup_patch
from kustomize_controller.apply.prune import wait_for_termination
from tests.integration.conftest import until_available

pytestmark = pytest.mark.stack

OWNER = Owner("apps", "flux-system")
SSA = "kustomize.toolkit.fluxcd.io/ssa"
FORCE = "kustomize.toolkit.fluxcd.io/force"
PRUNE = "kustomize.toolkit.fluxcd.io/prune"


def meta(name: str, namespace: str | None = None, **annotations: str) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name}
    if namespace:
        m["namespace"] = namespace
    if annotations:
        m["annotations"] = dict(annotations)
    return m


def configmap(name: str, namespace: str, data: dict[str, str] | None = None, **annotations: str) -> KubeObject:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(name, namespace, **annotations),
        "data": data or {},
    }


def deployment(name: str, namespace: str, *, replicas: int = 0, app: str | None = None, **spec: Any) -> KubeObject:
    app = app or name
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, namespace),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "app", "image": "ghcr.io/stefanprodan/podinfo:6.5.0"}]},
            },
            **spec,
        },
    }


def service_account(name: str, namespace: str) -> KubeObject:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name, namespace)}


def service(name: str, namespace: str) -> KubeObject:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, namespace),
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 9898, "targetPort": 9898}]},
    }


def ingress(name: str, namespace: str) -> KubeObject:
    backend = {"service": {"name": name, "port": {"number": 9898}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta(name, namespace),
        "spec": {
            "rules": [
                {
                    "host": f"{name}.example.com",
                    "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
                }
            ]
        },
    }


def crd(group: str) -> KubeObject:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                        }
                    },
                }
            ],
        },
    }


def actions(change_set: Any) -> dict[str, str]:
    return {e.subject: str(e.action) for e in change_set}


async def kubectl(stack_env: dict[str, str], *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": stack_env["KUBECONFIG"]}
    proc = await asyncio.create_subprocess_exec(
        stack_env["KUBECTL"], *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


@contextlib.asynccontextmanager
async def cluster_scoped(kube: KubeClient, *refs: tuple[str, str, str]) -> AsyncIterator[None]:
    """Delete these cluster-scoped objects (apiVersion, kind, name) when the test ends."""
    try:
        yield
    finally:
        for api_version, kind, name in refs:
            with contextlib.suppress(NotFound):
                await until_available(
                    functools.partial(kube.delete, api_version, kind, name, propagation_policy="Background")
                )


# --- staging -----------------------------------------------------------------------------------------------------


async def test_crd_and_its_custom_resource_in_one_call(kube: KubeClient, namespace: str, unique: str) -> None:
    group = f"{unique}.example.com"
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": meta("w", namespace), "spec": {"size": 3}}
    async with cluster_scoped(kube, ("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"widgets.{group}")):
        # The custom resource comes first in the build; staging applies and waits for its CRD before it.
        change_set = await apply_all(kube, [widget, crd(group)], owner=OWNER)
        assert [str(e) for e in change_set] == [
            f"CustomResourceDefinition/widgets.{group} created",
            f"Widget/{namespace}/w created",
        ]
        assert change_set.inventory() == [
            {"id": f"_widgets.{group}_apiextensions.k8s.io_CustomResourceDefinition", "v": "v1"},
            {"id": f"{namespace}_w_{group}_Widget", "v": "v1"},
        ]
        live = await kube.get(f"{group}/v1", "Widget", "w", namespace=namespace)
        assert live["spec"] == {"size": 3}
        assert live["metadata"]["labels"] == {NAME_LABEL: "apps", NAMESPACE_LABEL: "flux-system"}
        again = await apply_all(kube, [widget, crd(group)], owner=OWNER)
        assert {str(e.action) for e in again} == {"unchanged"}


async def test_namespace_and_objects_in_it(kube: KubeClient, unique: str) -> None:
    ns = f"{unique}-team"
    objects = [
        configmap("settings", ns, {"a": "1"}),
        deployment("web", ns),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
    ]
    async with cluster_scoped(kube, ("v1", "Namespace", ns)):
        change_set = await apply_all(kube, objects, owner=OWNER)
        assert [str(e) for e in change_set] == [
            f"Namespace/{ns} created",
            f"ConfigMap/{ns}/settings created",
            f"Deployment/{ns}/web created",
        ]
        assert (await kube.get("v1", "Namespace", ns))["status"]["phase"] == "Active"


async def test_default_namespace_and_cluster_scoped_namespace_dropped(
    kube: KubeClient, namespace: str, unique: str
) -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"{unique}-reader", "namespace": "ignored"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
    }
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}
    async with cluster_scoped(kube, ("rbac.authorization.k8s.io/v1", "ClusterRole", f"{unique}-reader")):
        change_set = await apply_all(kube, [cm, role], owner=OWNER, default_namespace=namespace)
        assert [e.ref.id for e in change_set] == [
            f"_{unique}-reader_rbac.authorization.k8s.io_ClusterRole",
            f"{namespace}_c__ConfigMap",
        ]
        with pytest.raises(ChangeSetRejected, match=r"ConfigMap/c apply failed: metadata\.namespace is required"):
            await apply_all(kube, [cm], owner=OWNER)


# --- created, unchanged, configured --------------------------------------------------------------------------------


async def test_created_then_unchanged_then_configured(kube: KubeClient, namespace: str) -> None:
    objects = [configmap("settings", namespace, {"a": "1"}), deployment("web", namespace), service("web", namespace)]
    first = await apply_all(kube, objects, owner=OWNER)
    assert actions(first) == {
        f"ConfigMap/{namespace}/settings": "created",
        f"Service/{namespace}/web": "created",
        f"Deployment/{namespace}/web": "created",
    }
    before = await kube.get("apps/v1", "Deployment", "web", namespace=namespace)
    second = await apply_all(kube, objects, owner=OWNER)
    assert {str(e.action) for e in second} == {"unchanged"}
    assert second.change_log() == ""
    changed_objects = copy.deepcopy(objects)
    changed_objects[0]["data"] = {"a": "2"}
    third = await apply_all(kube, changed_objects, owner=OWNER)
    assert actions(third) == {
        f"ConfigMap/{namespace}/settings": "configured",
        f"Service/{namespace}/web": "unchanged",
        f"Deployment/{namespace}/web": "unchanged",
    }
    assert third.change_log() == f"ConfigMap/{namespace}/settings configured"
    assert (await kube.get("v1", "ConfigMap", "settings", namespace=namespace))["data"] == {"a": "2"}
    after = await kube.get("apps/v1", "Deployment", "web", namespace=namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


async def test_annotations_skip_and_if_not_present(kube: KubeClient, namespace: str) -> None:
    once = configmap("once", namespace, {"a": "1"}, **{SSA: "IfNotPresent"})
    ignored = configmap("ignored", namespace, {"a": "1"}, **{SSA: "Ignore"})
    first = await apply_all(kube, [once, ignored], owner=OWNER)
    assert actions(first) == {f"ConfigMap/{namespace}/ignored": "skipped", f"ConfigMap/{namespace}/once": "created"}
    with pytest.raises(NotFound):
        await kube.get("v1", "ConfigMap", "ignored", namespace=namespace)
    once["data"] = {"a": "2"}
    second = await apply_all(kube, [once], owner=OWNER)
    assert actions(second) == {f"ConfigMap/{namespace}/once": "skipped"}
    assert (await kube.get("v1", "ConfigMap", "once", namespace=namespace))["data"] == {"a": "1"}
    # reconcile: disabled on the in-cluster object stops the apply too.
    await kube.patch(
        "v1",
        "ConfigMap",
        "once",
        {"metadata": {"annotations": {"kustomize.toolkit.fluxcd.io/reconcile": "disabled"}}},
        namespace=namespace,
    )
    plain = configmap("once", namespace, {"a": "3"})
    assert actions(await apply_all(kube, [plain], owner=OWNER)) == {f"ConfigMap/{namespace}/once": "skipped"}


# --- drift --------------------------------------------------------------------------------------------------------


async def test_kubectl_drift_is_taken_back(kube: KubeClient, namespace: str, stack_env: dict[str, str]) -> None:
    objects = [deployment("web", namespace)]
    await apply_all(kube, objects, owner=OWNER)
    await kubectl(
        stack_env,
        "-n",
        namespace,
        "patch",
        "deployment",
        "web",
        "-p",
        '{"spec":{"replicas":3,"minReadySeconds":7},"metadata":{"labels":{"edited":"yes"}}}',
    )
    await kubectl(stack_env, "-n", namespace, "annotate", "deployment", "web", f"{LAST_APPLIED_ANNOTATION}={{}}")
    drifted = await kube.get("apps/v1", "Deployment", "web", namespace=namespace)
    assert drifted["spec"]["replicas"] == 3
    change_set = await apply_all(kube, objects, owner=OWNER)
    assert actions(change_set) == {f"Deployment/{namespace}/web": "configured"}
    live = await kube.get("apps/v1", "Deployment", "web", namespace=namespace)
    assert live["spec"]["replicas"] == 0
    assert live["spec"].get("minReadySeconds", 0) == 0  # kubectl's field is gone
    assert "edited" not in live["metadata"]["labels"]
    assert LAST_APPLIED_ANNOTATION not in (live["metadata"].get("annotations") or {})
    assert not [m for m in live["metadata"]["managedFields"] if m["manager"].startswith("kubectl")]
    assert {str(e.action) for e in await apply_all(kube, objects, owner=OWNER)} == {"unchanged"}


async def test_ssa_merge_keeps_what_kubectl_added(kube: KubeClient, namespace: str, stack_env: dict[str, str]) -> None:
    cm = configmap("settings", namespace, {"a": "1"}, **{SSA: "Merge"})
    await apply_all(kube, [cm], owner=OWNER)
    await kubectl(stack_env, "-n", namespace, "patch", "configmap", "settings", "-p", '{"data":{"b":"2"}}')
    assert {str(e.action) for e in await apply_all(kube, [cm], owner=OWNER)} == {"unchanged"}
    live = await kube.get("v1", "ConfigMap", "settings", namespace=namespace)
    assert live["data"] == {"a": "1", "b": "2"}


async def test_cleanup_patch_refuses_a_stale_read(kube: KubeClient, namespace: str, stack_env: dict[str, str]) -> None:
    """The managedFields patch carries the resourceVersion it was computed from: a write in between is a 409."""
    await apply_all(kube, [configmap("settings", namespace, {"a": "1"})], owner=OWNER)
    await kubectl(stack_env, "-n", namespace, "patch", "configmap", "settings", "-p", '{"data":{"b":"2"}}')
    stale = await kube.get("v1", "ConfigMap", "settings", namespace=namespace)
    await kube.patch("v1", "ConfigMap", "settings", {"data": {"c": "3"}}, namespace=namespace)
    with pytest.raises(Conflict):
        await kube.patch(
            "v1", "ConfigMap", "settings", cleanup_patch(stale), namespace=namespace, patch_type=PatchType.JSON
        )


# --- immutable fields ------------------------------------------------------------------------------------------------


async def test_immutable_change_fails_without_force_and_recreates_with_it(kube: KubeClient, namespace: str) -> None:
    await apply_all(kube, [deployment("web", namespace, app="web")], owner=OWNER)
    old_uid = (await kube.get("apps/v1", "Deployment", "web", namespace=namespace))["metadata"]["uid"]
    moved = deployment("web", namespace, app="web-v2")
    with pytest.raises(ChangeSetRejected) as caught:
        await apply_all(kube, [moved], owner=OWNER)
    message = str(caught.value)
    assert message.startswith(f"Deployment/{namespace}/web apply failed: ")
    assert "spec.selector" in message
    assert "field is immutable" in message
    change_set = await apply_all(kube, [moved], owner=OWNER, force=True)
    assert actions(change_set) == {f"Deployment/{namespace}/web": "created"}
    live = await kube.get("apps/v1", "Deployment", "web", namespace=namespace)
    assert live["metadata"]["uid"] != old_uid
    assert live["spec"]["selector"] == {"matchLabels": {"app": "web-v2"}}


async def test_force_annotation_recreates_an_immutable_configmap(kube: KubeClient, namespace: str) -> None:
    frozen = {**configmap("frozen", namespace, {"a": "1"}, **{FORCE: "Enabled"}), "immutable": True}
    await apply_all(kube, [frozen], owner=OWNER)
    thawed = {**frozen, "data": {"a": "2"}}
    assert actions(await apply_all(kube, [thawed], owner=OWNER)) == {f"ConfigMap/{namespace}/frozen": "created"}
    assert (await kube.get("v1", "ConfigMap", "frozen", namespace=namespace))["data"] == {"a": "2"}


# --- bad input ---------------------------------------------------------------------------------------------------------


async def test_rejection_names_the_object_and_keeps_what_was_applied(kube: KubeClient, namespace: str) -> None:
    bad = deployment("broken", namespace, replicas=-1)
    objects = [service_account("app", namespace), configmap("fine", namespace), bad]
    with pytest.raises(ChangeSetRejected) as caught:
        await apply_all(kube, objects, owner=OWNER)
    err = caught.value
    assert str(err).startswith(f"Deployment/{namespace}/broken apply failed: ")
    assert "spec.replicas" in str(err)
    assert [f.subject for f in err.failures] == [f"Deployment/{namespace}/broken"]
    # The service account's wave ran first, the config map alongside the failing deployment.
    assert str(err.change_set) == f"ServiceAccount/{namespace}/app created\nConfigMap/{namespace}/fine created"


async def test_unknown_kind_and_malformed_objects(kube: KubeClient, namespace: str) -> None:
    unknown = {"apiVersion": "nowhere.example.com/v1", "kind": "Ghost", "metadata": meta("g", namespace)}
    with pytest.raises(ChangeSetRejected, match=f"Ghost/{namespace}/g apply failed: .*Ghost") as caught:
        await apply_all(kube, [configmap("c", namespace), unknown], owner=OWNER)
    assert len(caught.value.change_set) == 0  # discovery failed before anything was applied
    with pytest.raises(ChangeSetError, match=r"object #1 \(ConfigMap\): metadata.name is required"):
        await apply_all(
            kube, [configmap("c", namespace), {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}], owner=OWNER
        )
    with pytest.raises(NotFound):
        await kube.get("v1", "ConfigMap", "c", namespace=namespace)


async def test_impersonated_apply_without_rights_is_refused(kube: KubeClient, namespace: str) -> None:
    await kube.create(service_account("nobody", namespace))
    with pytest.raises(ChangeSetRejected, match=f"ConfigMap/{namespace}/c query failed: .*forbidden"):
        await apply_all(kube.impersonate("nobody", namespace), [configmap("c", namespace)], owner=OWNER)


# --- prune -----------------------------------------------------------------------------------------------------------


async def test_prune_removes_stale_objects_but_not_protected_ones(kube: KubeClient, namespace: str) -> None:
    old = [
        configmap("keep", namespace),
        configmap("stale", namespace),
        configmap("protected", namespace, None, **{PRUNE: "disabled"}),
        configmap("adopted", namespace),
        configmap("gone", namespace),
        deployment("web", namespace),
    ]
    before = await apply_all(kube, old, owner=OWNER)
    await kube.delete("v1", "ConfigMap", "gone", namespace=namespace)
    # Another Kustomization took this one over: its labels say so.
    await kube.patch("v1", "ConfigMap", "adopted", {"metadata": {"labels": {NAME_LABEL: "other"}}}, namespace=namespace)
    after = await apply_all(kube, [configmap("keep", namespace)], owner=OWNER)
    stale = diff(before.inventory(), after.inventory())
    assert [r.name for r in stale] == ["web", "stale", "protected", "gone", "adopted"]
    pruned = await prune(kube, stale, owner=OWNER)
    assert actions(pruned) == {
        f"Deployment/{namespace}/web": "deleted",
        f"ConfigMap/{namespace}/stale": "deleted",
        f"ConfigMap/{namespace}/protected": "skipped",
        f"ConfigMap/{namespace}/gone": "deleted",
        f"ConfigMap/{namespace}/adopted": "skipped",
    }
    left = {o["metadata"]["name"] for o in (await kube.list("v1", "ConfigMap", namespace=namespace)).items}
    assert {"keep", "protected", "adopted"} <= left
    assert not {"stale", "gone"} & left


@pytest.mark.parametrize(
    ("policy", "prune_enabled", "deleted"),
    [
        (DeletionPolicy.MIRROR_PRUNE, False, False),
        (DeletionPolicy.MIRROR_PRUNE, True, True),
        (DeletionPolicy.ORPHAN, True, False),
        (DeletionPolicy.DELETE, False, True),
        (DeletionPolicy.WAIT_FOR_TERMINATION, False, True),
    ],
)
async def test_deletion_policies(
    kube: KubeClient, namespace: str, policy: DeletionPolicy, prune_enabled: bool, deleted: bool
) -> None:
    applied = await apply_all(kube, [configmap("a", namespace), deployment("web", namespace)], owner=OWNER)
    refs = applied.refs()
    change_set = await finalize(kube, refs, policy=policy, prune_enabled=prune_enabled, suspended=False, owner=OWNER)
    assert {str(e.action) for e in change_set} == ({"deleted"} if deleted else set())
    if deleted:
        assert await wait_for_termination(kube, refs, timeout=30, poll=0.1) == []
    else:
        assert await remaining(kube, refs) == refs


# --- health ------------------------------------------------------------------------------------------------------------


async def test_deployment_goes_from_in_progress_to_current_on_kwok(kube: KubeClient, namespace: str) -> None:
    change_set = await apply_all(
        kube, [deployment("web", namespace, replicas=2), deployment("idle", namespace, replicas=0)], owner=OWNER
    )
    web = ObjectId("apps", "Deployment", namespace, "web", "v1")
    idle = ObjectId("apps", "Deployment", namespace, "idle", "v1")
    first = await check(kube, [web])
    assert first.results[web].status is Status.IN_PROGRESS
    verdict, report = await wait(kube, change_set.refs(), timeout=60, poll=0.2)
    assert verdict is Verdict.HEALTHY, report.message(verdict)
    assert report.results[web].message == "Deployment is available. Replicas: 2"
    assert report.results[idle].status is Status.CURRENT  # the benchmark's replicas: 0 shape passes wait


async def test_impossible_rollout_fails_with_a_message(kube: KubeClient, namespace: str) -> None:
    stuck = deployment("stuck", namespace, replicas=1, progressDeadlineSeconds=2)
    stuck["spec"]["template"]["spec"]["nodeSelector"] = {"no-such-node": "anywhere"}
    change_set = await apply_all(kube, [stuck], owner=OWNER)
    verdict, report = await wait(kube, change_set.refs(), timeout=90, poll=0.5)
    assert verdict is Verdict.FAILED, report.message(verdict)
    message = report.message(verdict)
    assert message.startswith(f"failed early due to stalled resources: [Deployment/{namespace}/stuck status: 'Failed'")
    assert "Progress deadline exceeded" in message


async def test_job_completes_on_kwok(kube: KubeClient, namespace: str) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta("once", namespace),
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}},
        },
    }
    change_set = await apply_all(kube, [job], owner=OWNER)
    verdict, report = await wait(kube, change_set.refs(), timeout=90, poll=0.2)
    assert verdict is Verdict.HEALTHY, report.message(verdict)
    assert report.results[change_set.refs()[0]].message == "Job Completed. succeeded: 1/1"


async def test_missing_object_is_not_found(kube: KubeClient, namespace: str) -> None:
    ref = ObjectId("apps", "Deployment", namespace, "nope", "v1")
    report = await check(kube, [ref])
    assert report.results[ref].status is Status.NOT_FOUND
    verdict, _ = await wait(kube, [ref], timeout=0.3, poll=0.1)
    assert verdict is Verdict.TIMED_OUT


# --- throughput (printed, not asserted) ----------------------------------------------------------------------------------


def podinfo_set(i: int, namespace: str) -> list[KubeObject]:
    name = f"podinfo-{i}"
    # Headless: the stack's service range is a /24, too small for hundreds of cluster IPs.
    svc = service(name, namespace)
    svc["spec"]["clusterIP"] = "None"
    return [deployment(name, namespace), service_account(name, namespace), svc, ingress(name, namespace)]


async def test_throughput_400_objects(kube: KubeClient, namespace: str, capsys: pytest.CaptureFixture[str]) -> None:
    one_set = [o for i in range(100) for o in podinfo_set(i, namespace)]
    started = time.perf_counter()
    one_call = await apply_all(kube, one_set, owner=OWNER, concurrency=32)
    t_one = time.perf_counter() - started
    started = time.perf_counter()
    again_one = await apply_all(kube, one_set, owner=OWNER, concurrency=32)
    t_one_again = time.perf_counter() - started

    sets = [podinfo_set(i, namespace) for i in range(100, 200)]

    async def each() -> list[Any]:
        return await asyncio.gather(
            *(apply_all(kube, s, owner=Owner(f"ks-{i}", "flux-system")) for i, s in enumerate(sets))
        )

    started = time.perf_counter()
    per_ks = await each()
    t_many = time.perf_counter() - started
    started = time.perf_counter()
    again = await each()
    t_again = time.perf_counter() - started
    assert {str(e.action) for e in one_call} == {"created"}
    assert [str(e) for e in again_one if e.action is not Action.UNCHANGED] == []
    assert {str(e.action) for cs in per_ks for e in cs} == {"created"}
    assert [str(e) for cs in again for e in cs if e.action is not Action.UNCHANGED] == []
    with capsys.disabled():
        print(
            f"\n[throughput] 400 objects (100 x Deployment, ServiceAccount, Service, Ingress): "
            f"one apply_all (concurrency 32) {t_one:.2f}s created, {t_one_again:.2f}s unchanged; "
            f"100 concurrent apply_all of 4 (Kustomization shape) {t_many:.2f}s created, {t_again:.2f}s unchanged"
        )
