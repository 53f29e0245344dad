"""Helm 4 command lines for each action, as Flux sets its SDK up: pure argv mapping, secrets off argv."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from gitops_mesh.errors import InvalidSpec
from gitops_mesh.helmcli import HelmResult
from helm_controller import actions
from helm_controller.actions import Action, ActionRequest, CRDsPolicy, HelmActionFailed, HelmActions, KubeAccess

VALUES = Path("/w/values.yaml")


def req(**over: object) -> ActionRequest:
    base: dict[str, object] = {
        "release_name": "podinfo",
        "target_namespace": "apps",
        "storage_namespace": "apps",
        "chart_path": Path("/c/podinfo-6.5.0.tgz"),
        "values": {"password": "s3cr3t-value"},
        "timeout": 300,
        "max_history": 5,
        "kube": KubeAccess(Path("/k/kubeconfig")),
    }
    base.update(over)
    return ActionRequest(**base)  # type: ignore[arg-type]


def pairs(args: list[str]) -> dict[str, str]:
    return {a: b for a, b in itertools.pairwise(args) if a.startswith("--")}


def test_install_defaults_are_fluxs() -> None:
    args = actions.install_args(req(), VALUES)
    assert args[:3] == ["install", "podinfo", "/c/podinfo-6.5.0.tgz"]
    p = pairs(args)
    assert p["--kubeconfig"] == "/k/kubeconfig"
    assert p["--namespace"] == "apps"
    assert p["--timeout"] == "300s"
    assert p["--values"] == str(VALUES)
    # helm waits for hooks only; resources are the reconciler's to poll.
    assert "--wait=hookOnly" in args
    assert "--server-side=true" in args
    assert "--force-conflicts" in args
    assert "--take-ownership" in args
    # Flux sets SkipCRDs: the chart's crds/ are applied by helm-controller itself (crds.py), by install.crds.
    assert "--skip-crds" in args
    for absent in ("--create-namespace", "--no-hooks", "--kube-as-user", "--replace", "--history-max"):
        assert absent not in args
    assert not any("s3cr3t" in a for a in args)


def test_install_flags() -> None:
    r = req(
        create_namespace=True,
        crds=CRDsPolicy.SKIP,
        disable_hooks=True,
        disable_openapi_validation=True,
        disable_schema_validation=True,
        take_ownership=False,
        replace=True,
        server_side=False,
        description="d",
        labels={"team": "a", "env": "prod"},
        kube=KubeAccess(Path("/k/remote"), as_user="system:serviceaccount:apps:deployer"),
    )
    args = actions.install_args(r, VALUES)
    for flag in (
        "--create-namespace",
        "--skip-crds",
        "--no-hooks",
        "--disable-openapi-validation",
        "--skip-schema-validation",
        "--replace",
        "--server-side=false",
    ):
        assert flag in args
    assert "--take-ownership" not in args
    assert "--force-conflicts" not in args
    p = pairs(args)
    assert p["--kube-as-user"] == "system:serviceaccount:apps:deployer"
    assert p["--kubeconfig"] == "/k/remote"
    assert p["--labels"] == "env=prod,team=a"
    assert p["--description"] == "d"


def test_client_side_openapi_check_skipped_where_the_server_validates() -> None:
    # Helm's check is a round trip that validates nothing on a 1.27+ apiserver (it validates every write).
    validating = KubeAccess(Path("/k/kubeconfig"), server_validates_fields=True)
    assert "--disable-openapi-validation" in actions.install_args(req(kube=validating), VALUES)
    assert "--disable-openapi-validation" in actions.upgrade_args(req(kube=validating), VALUES, last_apply_method="ssa")
    # An older (or unknown) server: helm validates on the client as it would by default.
    assert "--disable-openapi-validation" not in actions.install_args(req(), VALUES)
    assert "--disable-openapi-validation" not in actions.upgrade_args(req(), VALUES, last_apply_method="ssa")


@pytest.mark.parametrize(
    ("last", "server_side", "expected"),
    [
        ("ssa", None, ["--server-side=true", "--force-conflicts"]),
        ("csa", None, ["--server-side=false"]),
        ("", None, ["--server-side=false"]),  # Helm 3 releases applied client-side
        ("csa", True, ["--server-side=true", "--force-conflicts"]),
    ],
)
def test_upgrade_follows_the_last_apply_method(last: str, server_side: bool | None, expected: list[str]) -> None:
    args = actions.upgrade_args(req(server_side=server_side), VALUES, last_apply_method=last)
    assert [a for a in args if a.startswith(("--server-side", "--force-"))] == expected


def test_upgrade_flags() -> None:
    args = actions.upgrade_args(req(force=True, cleanup_on_fail=True, max_history=10), VALUES, last_apply_method="csa")
    assert args[:3] == ["upgrade", "podinfo", "/c/podinfo-6.5.0.tgz"]
    p = pairs(args)
    assert p["--history-max"] == "10"
    assert "--reset-values" in args
    assert "--cleanup-on-fail" in args
    assert "--force-replace" in args  # force replaces only under client-side apply
    assert "--wait=hookOnly" in args
    ssa = actions.upgrade_args(req(force=True), VALUES, last_apply_method="ssa")
    assert "--force-replace" not in ssa


def test_rollback_args() -> None:
    args = actions.rollback_args(req(cleanup_on_fail=True), None, target_apply_method="ssa")
    assert args[:3] == ["rollback", "podinfo", "0"]
    assert "--wait=hookOnly" in args
    assert "--cleanup-on-fail" in args
    assert "--force-conflicts" in args
    assert actions.rollback_args(req(), 2, target_apply_method="csa")[:3] == ["rollback", "podinfo", "2"]


def test_uninstall_args() -> None:
    args = actions.uninstall_args(req(disable_hooks=True), keep_history=True, deletion_propagation="foreground")
    assert args[:2] == ["uninstall", "podinfo"]
    assert pairs(args)["--cascade"] == "foreground"
    assert "--keep-history" in args
    assert "--no-hooks" in args
    default = actions.uninstall_args(req(), keep_history=False, deletion_propagation="")
    assert pairs(default)["--cascade"] == "background"
    assert "--keep-history" not in default
    with pytest.raises(InvalidSpec):
        actions.uninstall_args(req(), keep_history=False, deletion_propagation="sideways")


def test_test_args_with_filters() -> None:
    args = actions.test_args(req(test_filters=(("a", False), ("b", True))))
    assert args[:2] == ["test", "podinfo"]
    assert pairs(args)["--filter"] == "name=a,!name=b"
    assert "--wait=hookOnly" not in args  # helm test has no --wait


def test_labels_are_one_csv_record() -> None:
    assert actions._labels({"a": "x,y"}) == '"a=x,y"'


def test_storage_namespace_must_be_the_target() -> None:
    actions.check_storage(req())
    with pytest.raises(InvalidSpec) as caught:
        actions.check_storage(req(storage_namespace="helm"))
    assert caught.value.reason == "UnsupportedField"


def test_message_is_bounded_redacted_one_line() -> None:
    stderr = "W0101 warning\nError: INSTALLATION FAILED: bad value s3cr3t-value at https://u:p@h/x " + "y" * 900
    msg = actions.helm_message(HelmResult(1, "", stderr), {"s3cr3t-value"})
    assert "s3cr3t" not in msg
    assert "u:p@" not in msg
    assert "\n" not in msg
    assert len(msg) <= actions.MESSAGE_CHARS + 1


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        (Action.INSTALL, "InstallFailed"),
        (Action.UPGRADE, "UpgradeFailed"),
        (Action.TEST, "TestFailed"),
        (Action.ROLLBACK, "RollbackFailed"),
        (Action.UNINSTALL, "UninstallFailed"),
    ],
)
def test_failure_reasons_are_fluxs(action: Action, reason: str) -> None:
    e = HelmActionFailed(action, "boom")
    assert e.reason == reason
    assert e.action is action
    assert e.message == "boom"


def test_service_account_user() -> None:
    assert actions._as_service_account("system:serviceaccount:apps:deployer") == ("apps", "deployer")
    assert actions._as_service_account("alice") is None


async def test_helm_processes_are_bounded(tmp_path: Path) -> None:
    """--helm-processes: no more helm processes at once than the bound, whatever the number of reconciles."""
    log = tmp_path / "log"
    fake = tmp_path / "helm"
    # A stand-in helm that notes its start and end around a short sleep (a real process, as helm is).
    fake.write_text(f"#!/bin/sh\necho start >> {log}\nsleep 0.3\necho end >> {log}\n")
    fake.chmod(0o755)
    actions = HelmActions(fake, tmp_path / "work", max_processes=2)
    req = ActionRequest(
        release_name="r",
        target_namespace="ns",
        storage_namespace="ns",
        chart_path=tmp_path,
        values={},
        timeout=30,
        max_history=5,
        kube=KubeAccess(tmp_path / "kubeconfig"),
    )

    async def one() -> None:
        async with actions._workdir() as work:
            await actions._run(Action.TEST, req, ["test", "r"], work)

    await asyncio.gather(*(one() for _ in range(5)))
    running = most = 0
    for line in log.read_text().split():
        running += 1 if line == "start" else -1
        most = max(most, running)
    assert most == 2
    assert log.read_text().count("end") == 5


def test_crds_policy_defaults_are_fluxs() -> None:
    assert actions.crds_policy(req(), Action.INSTALL) is CRDsPolicy.CREATE
    assert actions.crds_policy(req(), Action.UPGRADE) is CRDsPolicy.SKIP
    assert actions.crds_policy(req(crds=CRDsPolicy.CREATE_REPLACE), Action.UPGRADE) is CRDsPolicy.CREATE_REPLACE
    args = actions.template_crds_args(req(disable_schema_validation=True), VALUES)
    assert args[:3] == ["template", "podinfo", "/c/podinfo-6.5.0.tgz"]
    assert "--include-crds" in args
    assert "--skip-schema-validation" in args
