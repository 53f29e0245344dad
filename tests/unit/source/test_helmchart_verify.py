"""HelmChart spec.verify's decisions: only OCI charts are verifiable, Flux's conditions for a failure and a pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_mesh.errors import InvalidSpec, TransientError
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.unsupported import UNSUPPORTED_FIELD
from source_controller.helmchart_plan import Build, BuiltChart, chart_stored, plan, reused
from source_controller.helmchart_verify import (
    CHART_VERIFICATION_ERROR,
    keys_error,
    signature_error,
    verification_failure,
)
from source_controller.ocirepository_plan import refuse_keyless
from source_controller.status_edits import Failure
from source_controller.unsupported import HELM_CHART, refuse_unsupported
from tests.unit.source.test_helmchart_plan import NOW, built_status, chart, observed, ready_chart, source

VERIFY = {"provider": "cosign", "secretRef": {"name": "cosign-keys"}}


@pytest.mark.parametrize(
    ("kind", "src"),
    [
        ("HelmRepository", source()),
        ("GitRepository", source("GitRepository", "main@sha1:" + "a" * 40)),
        ("Bucket", source("Bucket", "sha256:" + "b" * 64)),
    ],
)
def test_verify_on_a_chart_not_from_an_oci_repository_is_refused_never_ignored(kind: str, src: KubeObject) -> None:
    step = plan(chart(kind=kind, verify=VERIFY), observed(src))
    assert isinstance(step, Failure)
    assert isinstance(step.error, InvalidSpec)
    assert step.error.reason == UNSUPPORTED_FIELD
    assert str(step.error).startswith(f"spec.verify is not supported for a chart from a {kind} that is not of type")
    obj = ready_chart(built_status())
    c.mark_true(obj, c.ConditionType.SOURCE_VERIFIED, "Succeeded", "verified signature of version 6.5.0", now=NOW)
    step.apply(obj, now=NOW)
    assert not c.has(obj, c.ConditionType.SOURCE_VERIFIED)  # never left claiming a verification


def test_an_oci_chart_with_verify_builds_and_keeps_its_verdict_until_verified_again() -> None:
    obj = chart(verify=VERIFY)
    c.mark_true(obj, c.ConditionType.SOURCE_VERIFIED, "Succeeded", "verified signature of version 0.1.0", now=NOW)
    step = plan(obj, observed(source(type="oci")))
    assert isinstance(step, Build)
    assert c.ConditionType.SOURCE_VERIFIED not in step.edit.deletes
    # Without spec.verify any verdict goes.
    step = plan(chart(), observed(source(type="oci")))
    assert isinstance(step, Build)
    assert c.ConditionType.SOURCE_VERIFIED in step.edit.deletes


def test_notation_and_keyless_are_refused_clearly() -> None:
    with pytest.raises(InvalidSpec, match=r"spec\.verify\.provider 'notation' is not supported") as raised:
        refuse_unsupported({"verify": {"provider": "notation", "secretRef": {"name": "k"}}}, HELM_CHART)
    assert raised.value.reason == UNSUPPORTED_FIELD
    with pytest.raises(InvalidSpec, match=r"spec\.verify\.matchOIDCIdentity is not supported.*keyless"):
        refuse_unsupported({"verify": {"provider": "cosign", "matchOIDCIdentity": [{"issuer": "i"}]}}, HELM_CHART)
    with pytest.raises(InvalidSpec, match="keyless"):
        refuse_keyless({"verify": {"provider": "cosign"}})
    refuse_unsupported({"verify": VERIFY}, HELM_CHART)
    refuse_keyless({"verify": VERIFY})


def test_a_signature_that_does_not_verify_is_build_failed_and_source_verified_false() -> None:
    error = signature_error("oci://r/charts/demo:0.1.0", TransientError("no matching signatures were found"))
    assert error.reason == CHART_VERIFICATION_ERROR
    failure = verification_failure(error)
    assert failure is not None
    obj = ready_chart(built_status())
    c.mark_true(obj, c.ConditionType.FETCH_FAILED, "ChartPullError", "earlier", now=NOW)
    assert failure.apply(obj, now=NOW) is error
    message = "chart verification error: failed to verify oci://r/charts/demo:0.1.0: no matching signatures were found"
    assert c.get_reason(obj, c.ConditionType.BUILD_FAILED) == "ChartVerificationError"
    assert c.get_message(obj, c.ConditionType.BUILD_FAILED) == message
    verified = c.get(obj["status"]["conditions"], c.ConditionType.SOURCE_VERIFIED)
    assert verified is not None
    assert (verified["status"], verified["reason"], verified["message"]) == ("False", "VerificationError", message)
    assert not c.has(obj, c.ConditionType.FETCH_FAILED)
    assert obj["status"]["artifact"]["revision"] == "6.5.0"  # the previous chart stays


def test_a_verifier_that_cannot_be_made_is_a_verification_error() -> None:
    error = keys_error("no public keys found in secret 'apps/cosign-keys'")
    failure = verification_failure(error)
    assert failure is not None
    obj = chart()
    failure.apply(obj, now=NOW)
    message = (
        "failed to verify the signature using provider 'cosign': no public keys found in secret 'apps/cosign-keys'"
    )
    assert c.get_reason(obj, c.ConditionType.FETCH_FAILED) == "VerificationError"
    assert c.get_message(obj, c.ConditionType.SOURCE_VERIFIED) == message
    assert verification_failure(TransientError("registry down", reason="ChartPullError")) is None


def test_a_verified_chart_says_so_whether_stored_or_kept() -> None:
    obj = ready_chart(built_status("0.1.0"))
    built = BuiltChart("podinfo", "0.2.0", Path("/tmp/podinfo-0.2.0.tgz"), packaged=False, verified=True)
    artifact = {"path": "p", "url": "u", "revision": "0.2.0", "digest": "sha256:ee", "size": 1}
    chart_stored(obj, built, artifact, "l").apply(obj, now=NOW)
    assert c.get_reason(obj, c.ConditionType.SOURCE_VERIFIED) == "Succeeded"
    assert c.get_message(obj, c.ConditionType.SOURCE_VERIFIED) == "verified signature of version 0.2.0"
    kept = ready_chart(built_status("0.2.0"))
    reused(kept, BuiltChart("podinfo", "0.2.0", None, packaged=False, verified=True)).apply(kept, now=NOW)
    assert c.get_message(kept, c.ConditionType.SOURCE_VERIFIED) == "verified signature of version 0.2.0"
    unverified = ready_chart(built_status("0.2.0"))
    reused(unverified, BuiltChart("podinfo", "0.2.0", None, packaged=False)).apply(unverified, now=NOW)
    assert not c.has(unverified, c.ConditionType.SOURCE_VERIFIED)
