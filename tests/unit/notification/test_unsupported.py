"""Provider and Receiver unsupported fields: each refused by its path when set; the Receiver types we refuse are
exactly the CRD's types that the webhook server cannot check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_mesh.errors import InvalidSpec
from gitops_mesh.reconcile.unsupported import UNSUPPORTED_FIELD, Unsupported, unsupported_fields
from notification_controller.receivers import validate
from notification_controller.status import ProviderReconciler
from notification_controller.unsupported import PROVIDER, RECEIVER, RECEIVER_TYPES, refuse_unsupported
from tests.unit.notification.support import provider_object

ROOT = Path(__file__).parents[3]
SAMPLES = ROOT / "tests" / "integration" / "crds" / "samples" / "valid"


def crd_receiver_types() -> set[str]:
    crd = yaml.safe_load((ROOT / "deploy" / "crds" / "notification.toolkit.fluxcd.io_receivers.yaml").read_text())
    [version] = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return set(version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["type"]["enum"])


@pytest.mark.parametrize(
    ("table", "spec", "path"),
    [
        (PROVIDER, {"type": "github", "serviceAccountName": "gh"}, "spec.serviceAccountName"),
        (PROVIDER, {"type": "github", "commitStatusExpr": "event.metadata.id"}, "spec.commitStatusExpr"),
        (RECEIVER, {"type": "generic", "resourceFilter": "res.metadata.name == 'a'"}, "spec.resourceFilter"),
        (RECEIVER, {"type": "quay"}, "spec.type 'quay'"),
    ],
)
def test_each_unsupported_field_is_refused(table: tuple[Unsupported, ...], spec: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidSpec) as raised:
        refuse_unsupported(spec, table)
    assert str(raised.value).startswith(f"{path} is not supported by this controller")
    assert raised.value.reason == UNSUPPORTED_FIELD


@pytest.mark.parametrize("rtype", sorted(crd_receiver_types()))
def test_a_receiver_type_is_refused_exactly_when_requests_of_it_cannot_be_checked(rtype: str) -> None:
    verdict = validate(rtype, {}, b"{}", "token")
    cannot_check = not verdict.valid and "is not supported" in verdict.message
    assert cannot_check == (rtype not in RECEIVER_TYPES)
    assert bool(unsupported_fields({"type": rtype}, RECEIVER)) == cannot_check


def test_receiver_types_are_crd_types() -> None:
    assert crd_receiver_types() >= RECEIVER_TYPES


@pytest.mark.parametrize(
    ("table", "sample"),
    [
        (PROVIDER, "provider-slack.yaml"),
        (PROVIDER, "provider-generic-hmac.yaml"),
        (RECEIVER, "receiver-github.yaml"),
    ],
)
def test_samples_of_implemented_fields_pass(table: tuple[Unsupported, ...], sample: str) -> None:
    spec = yaml.safe_load((SAMPLES / sample).read_text())["spec"]
    assert unsupported_fields(spec, table) == []


def test_empty_values_pass() -> None:
    assert unsupported_fields({"type": "generic", "resourceFilter": ""}, RECEIVER) == []
    assert unsupported_fields({"type": "slack", "commitStatusExpr": None, "serviceAccountName": ""}, PROVIDER) == []


async def test_the_provider_reconciler_refuses_before_anything_else() -> None:
    """Before its Secret is read: the reader here would fail the test if it were called."""

    async def no_secret_reads(namespace: str, name: str) -> dict[str, bytes]:
        raise AssertionError(f"read {namespace}/{name}")

    obj = provider_object(address="https://h/x", secretRef={"name": "s"}, commitStatusExpr="event.metadata.id")
    with pytest.raises(InvalidSpec) as raised:
        await ProviderReconciler(secrets=no_secret_reads).reconcile(obj)
    assert raised.value.reason == UNSUPPORTED_FIELD
    assert str(raised.value).startswith("spec.commitStatusExpr is not supported by this controller")
