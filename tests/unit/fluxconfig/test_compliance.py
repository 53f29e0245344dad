"""fluxconfig-controller compliance (pure): statuses[], complianceState and the source fields from cached objects."""

from __future__ import annotations

from typing import Any

import pytest

from fluxconfig_controller.compliance import (
    MAX_APPLIED_LISTED,
    MAX_CONDITIONS,
    MAX_MESSAGE,
    ComplianceState,
    Ref,
    applied_refs,
    config_refs,
    helm_release_properties,
    object_compliance,
    observe,
    parse_inventory_id,
    status_conditions,
    summarize,
    synced_commit_id,
)
from gitops_mesh.kube.objects import KubeObject

NS = "tenant-a"
SHA = "0ba6f0d30760d567de0bac86c8c4eec13ce1a590"


def cond(status: str, reason: str = "Succeeded", message: str = "", type: str = "Ready") -> dict[str, str]:
    return {
        "type": type,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-12-03T18:00:00Z",
    }


def flux(kind: str, name: str, *conds: dict[str, str], ns: str = NS, generation: int = 1, **extra: Any) -> KubeObject:
    status: dict[str, Any] = {"conditions": list(conds), "observedGeneration": generation, **extra.pop("status", {})}
    return {
        "kind": kind,
        "metadata": {"name": name, "namespace": ns, "generation": generation},
        "spec": extra.pop("spec", {}),
        "status": status,
    }


def config(*entries: str, generation: int = 1, observed: int | None = 1, **spec: Any) -> KubeObject:
    status: dict[str, Any] = {} if observed is None else {"observedGeneration": observed}
    if "conditions" in spec:
        status["conditions"] = spec.pop("conditions")
    return {
        "apiVersion": "clusterconfig.azure.com/v1alpha1",
        "kind": "FluxConfig",
        "metadata": {"name": "cfg", "namespace": NS, "generation": generation},
        "spec": {"sourceKind": "GitRepository", "kustomizations": {e: {"path": f"./{e}"} for e in entries}, **spec},
        "status": status,
    }


READY = cond("True", "Succeeded", f"stored artifact for revision 'main@sha1:{SHA}'")


def source(*conds: dict[str, str]) -> KubeObject:
    artifact = {"revision": f"main@sha1:{SHA}", "lastUpdateTime": "2026-12-03T18:00:01Z"}
    return flux("GitRepository", "cfg", *(conds or (READY,)), status={"artifact": artifact})


def inventory(*ids: str) -> dict[str, Any]:
    return {"inventory": {"entries": [{"id": i, "v": "v1"} for i in ids]}}


def cache(*objs: KubeObject) -> dict[Ref, KubeObject]:
    return {Ref(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}


# ---- per object ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "state"),
    [
        (None, ComplianceState.PENDING),
        (flux("Kustomization", "k"), ComplianceState.PENDING),  # never reconciled: no Ready
        (flux("Kustomization", "k", cond("True")), ComplianceState.COMPLIANT),
        (flux("Kustomization", "k", cond("Unknown", "Progressing")), ComplianceState.PENDING),
        (
            flux("Kustomization", "k", cond("False", "BuildFailed", "kustomize build failed")),
            ComplianceState.NON_COMPLIANT,
        ),
        (flux("Kustomization", "k", cond("False", "DependencyNotReady")), ComplianceState.PENDING),
        (flux("HelmRelease", "h", cond("False", "SourceNotReady")), ComplianceState.PENDING),
        (flux("HelmRelease", "h", cond("False", "ArtifactFailed")), ComplianceState.NON_COMPLIANT),
        (flux("Kustomization", "k", cond("True"), spec={"suspend": True}), ComplianceState.SUSPENDED),
        (flux("Kustomization", "k", cond("Maybe")), ComplianceState.UNKNOWN),
    ],
)
def test_object_compliance(obj: KubeObject | None, state: ComplianceState) -> None:
    assert object_compliance(obj) is state


def test_a_ready_from_before_a_spec_change_is_pending() -> None:
    obj = flux("Kustomization", "k", cond("True"), generation=2)
    obj["status"]["observedGeneration"] = 1
    assert object_compliance(obj) is ComplianceState.PENDING


# ---- the inventory, the labels ------------------------------------------------------------------------


def test_inventory_ids_parse_exactly() -> None:
    assert parse_inventory_id(f"{NS}_web_helm.toolkit.fluxcd.io_HelmRelease") == (
        NS,
        "web",
        "helm.toolkit.fluxcd.io",
        "HelmRelease",
    )
    assert parse_inventory_id("_ns1__Namespace") == ("", "ns1", "", "Namespace")
    assert parse_inventory_id("not-an-id") is None
    assert parse_inventory_id("a_b_c_d_e") is None


def test_applied_refs_lists_helmreleases_and_kustomizations_only() -> None:
    ks = flux(
        "Kustomization",
        "cfg-infra",
        cond("True"),
        status=inventory(
            f"{NS}_cm__ConfigMap",
            f"{NS}_web_helm.toolkit.fluxcd.io_HelmRelease",
            "other_apps_kustomize.toolkit.fluxcd.io_Kustomization",
            f"{NS}_web_apps_Deployment",
            "garbage",
        ),
    )
    assert applied_refs(ks) == [Ref("HelmRelease", NS, "web"), Ref("Kustomization", "other", "apps")]
    assert applied_refs(None) == []


def test_config_refs_believe_only_the_objects_own_namespace() -> None:
    obj = flux("Kustomization", "cfg-a")
    obj["metadata"]["labels"] = {"clusterconfig.azure.com/name": "cfg", "clusterconfig.azure.com/namespace": NS}
    assert config_refs(obj) == [f"FluxConfig/{NS}/cfg"]
    obj["metadata"]["labels"]["clusterconfig.azure.com/namespace"] = "victim"
    assert config_refs(obj) == [], "a tenant's object cannot claim another namespace's config"
    assert config_refs(flux("Kustomization", "plain")) == []


# ---- revisions ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("revision", "azure"),
    [
        (f"main@sha1:{SHA}", f"main/{SHA}"),
        (f"v1.2.0@sha1:{SHA}", f"v1.2.0/{SHA}"),
        (f"refs/heads/main@sha1:{SHA}", f"refs/heads/main/{SHA}"),
        (f"sha1:{SHA}", f"HEAD/{SHA}"),
        ("sha256:abcdef", "abcdef"),
        ("latest@sha256:abcdef", "latest/abcdef"),
        ("weird", "weird"),
    ],
)
def test_synced_commit_id_is_azures_form(revision: str, azure: str) -> None:
    assert synced_commit_id(revision) == azure


# ---- HelmRelease properties ---------------------------------------------------------------------------


def test_helm_release_properties_from_v2_status() -> None:
    hr = flux(
        "HelmRelease",
        "web",
        cond("False", "UpgradeFailed", "upgrade failed"),
        status={
            "history": [{"version": 3, "status": "failed"}, {"version": 2, "status": "superseded"}],
            "helmChart": f"{NS}/{NS}-web",
            "failures": 2,
            "installFailures": 0,
            "upgradeFailures": 2,
        },
    )
    assert helm_release_properties(hr) == {
        "lastRevisionApplied": 3,
        "helmChartRef": {"name": f"{NS}-web", "namespace": NS},
        "failureCount": 2,
        "installFailureCount": 0,
        "upgradeFailureCount": 2,
    }
    assert helm_release_properties(None) == {}
    assert helm_release_properties(flux("HelmRelease", "x", status={"lastReleaseRevision": 4})) == {
        "lastRevisionApplied": 4
    }


# ---- the summary --------------------------------------------------------------------------------------


def _observed(cfg: KubeObject, *objs: KubeObject) -> Any:
    found = cache(*objs)
    return observe(cfg, found.get)


def test_all_ready_is_compliant_with_azures_shapes() -> None:
    cfg = config("infra", "apps")
    infra = flux(
        "Kustomization",
        "cfg-infra",
        cond("True", "ReconciliationSucceeded", f"Applied revision: main@sha1:{SHA}"),
        status=inventory(f"{NS}_web_helm.toolkit.fluxcd.io_HelmRelease", f"{NS}_cm__ConfigMap"),
    )
    apps = flux("Kustomization", "cfg-apps", cond("True"))
    hr = flux("HelmRelease", "web", cond("True"), status={"history": [{"version": 1}], "helmChart": f"{NS}/{NS}-web"})
    out = summarize(cfg, _observed(cfg, source(), infra, apps, hr))

    assert out.compliance_state is ComplianceState.COMPLIANT
    assert out.error_message == ""
    assert out.source_synced_commit_id == f"main/{SHA}"
    assert out.source_updated_at == "2026-12-03T18:00:01Z"
    assert out.source_revision == f"main@sha1:{SHA}"
    kinds = [(s["kind"], s["name"]) for s in out.statuses]
    assert kinds == [
        ("GitRepository", "cfg"),
        ("Kustomization", "cfg-apps"),
        ("Kustomization", "cfg-infra"),
        ("HelmRelease", "web"),
    ]
    assert "appliedBy" not in out.statuses[0], "the config's own objects were applied by nobody (Azure: null)"
    helm = out.statuses[3]
    assert helm["appliedBy"] == {"name": "cfg-infra", "namespace": NS}
    assert helm["helmReleaseProperties"] == {
        "lastRevisionApplied": 1,
        "helmChartRef": {"name": f"{NS}-web", "namespace": NS},
    }
    assert out.statuses[2]["statusConditions"] == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "ReconciliationSucceeded",
            "message": f"Applied revision: main@sha1:{SHA}",
            "lastTransitionTime": "2026-12-03T18:00:00Z",
        }
    ]
    fields = out.status_fields()
    assert set(fields) == {"complianceState", "statuses", "sourceSyncedCommitId", "sourceUpdatedAt"}
    assert fields["complianceState"] == "Compliant"


def test_a_failing_applied_helmrelease_makes_it_non_compliant_and_says_why() -> None:
    cfg = config("infra")
    infra = flux(
        "Kustomization", "cfg-infra", cond("True"), status=inventory(f"{NS}_web_helm.toolkit.fluxcd.io_HelmRelease")
    )
    hr = flux("HelmRelease", "web", cond("False", "InstallFailed", "install retries exhausted"))
    out = summarize(cfg, _observed(cfg, source(), infra, hr))
    assert out.compliance_state is ComplianceState.NON_COMPLIANT
    assert out.error_message == f"HelmRelease/{NS}/web: install retries exhausted"
    assert not out.refused
    assert out.statuses[-1]["complianceState"] == "Non-Compliant"


def test_not_yet_created_or_reconciled_objects_are_pending() -> None:
    cfg = config("infra")
    out = summarize(cfg, _observed(cfg))
    assert out.compliance_state is ComplianceState.PENDING
    assert [(s["kind"], s["complianceState"]) for s in out.statuses] == [
        ("GitRepository", "Pending"),
        ("Kustomization", "Pending"),
    ]
    assert out.source_synced_commit_id is None
    # Non-Compliant wins over Pending.
    bad = flux("Kustomization", "cfg-infra", cond("False", "BuildFailed", "no kustomization.yaml"))
    assert summarize(cfg, _observed(cfg, bad)).compliance_state is ComplianceState.NON_COMPLIANT


def test_the_configs_own_state_comes_first() -> None:
    everything_ready = (source(), flux("Kustomization", "cfg-infra", cond("True")))
    suspended = config("infra", suspend=True)
    assert summarize(suspended, _observed(suspended, *everything_ready)).compliance_state is ComplianceState.SUSPENDED

    refused = config("infra", conditions=[cond("False", "InvalidSpec", "Invalid URL scheme")])
    out = summarize(refused, _observed(refused, *everything_ready))
    assert out.compliance_state is ComplianceState.NON_COMPLIANT
    assert out.error_message == "Invalid URL scheme"
    assert out.refused

    new_spec = config("infra", generation=2, observed=1)
    assert summarize(new_spec, _observed(new_spec, *everything_ready)).compliance_state is ComplianceState.PENDING
    never = config("infra", observed=None)
    assert summarize(never, _observed(never, *everything_ready)).compliance_state is ComplianceState.PENDING


def test_suspended_objects_do_not_count_unless_all_are() -> None:
    cfg = config("infra")
    off = flux("Kustomization", "cfg-infra", cond("True"), spec={"suspend": True})
    assert summarize(cfg, _observed(cfg, source(), off)).compliance_state is ComplianceState.COMPLIANT
    src_off = source()
    src_off["spec"]["suspend"] = True
    assert summarize(cfg, _observed(cfg, src_off, off)).compliance_state is ComplianceState.SUSPENDED


def test_azureblob_is_a_bucket_and_the_listing_is_capped() -> None:
    cfg = config("infra", sourceKind="AzureBlob")
    ids = [f"{NS}_hr{i}_helm.toolkit.fluxcd.io_HelmRelease" for i in range(MAX_APPLIED_LISTED + 5)]
    infra = flux("Kustomization", "cfg-infra", cond("True"), status=inventory(*ids))
    releases = [flux("HelmRelease", f"hr{i}", cond("True")) for i in range(MAX_APPLIED_LISTED + 4)]
    releases.append(flux("HelmRelease", f"hr{MAX_APPLIED_LISTED + 4}", cond("False", "InstallFailed", "x" * 5000)))
    bucket = flux("Bucket", "cfg", cond("True"), status={"artifact": {"revision": "sha256:abc"}})
    out = summarize(cfg, _observed(cfg, bucket, infra, *releases))
    assert out.statuses[0]["kind"] == "Bucket"
    assert out.source_synced_commit_id == "abc"
    assert len(out.statuses) == 2 + MAX_APPLIED_LISTED
    assert out.not_listed == 5
    # Compliance counts the unlisted ones too, and a tenant's long message is cut.
    assert out.compliance_state is ComplianceState.NON_COMPLIANT
    assert len(out.error_message) <= MAX_MESSAGE


def test_status_conditions_are_capped() -> None:
    many = [cond("True", type=f"T{i}", message="m" * 5000) for i in range(MAX_CONDITIONS + 3)]
    out = status_conditions(flux("HelmRelease", "x", *many))
    assert len(out) == MAX_CONDITIONS
    assert all(len(c.get("message", "")) <= MAX_MESSAGE for c in out)
    assert status_conditions(None) == []
