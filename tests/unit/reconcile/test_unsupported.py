"""unsupported: a table of fields a controller lacks refuses a spec that sets one, and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_mesh.errors import InvalidSpec
from gitops_mesh.reconcile.result import Outcome, OutcomeKind
from gitops_mesh.reconcile.unsupported import UNSUPPORTED_FIELD, Unsupported, refuse_unsupported, unsupported_fields

TABLE = (
    Unsupported("kubeConfig", "remote clusters are not implemented"),
    Unsupported("dependsOn[].readyExpr", "CEL is not implemented"),
    Unsupported("decryption.serviceAccountName", "no workload identity"),
    Unsupported("provider", "only generic", allowed=frozenset({"generic"})),
)


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"kubeConfig": None},
        {"kubeConfig": {}},
        {"kubeConfig": ""},
        {"dependsOn": [{"name": "a"}, {"name": "b", "readyExpr": ""}]},
        {"dependsOn": "not a list"},
        {"dependsOn": [None, "x"]},
        {"decryption": {"provider": "sops"}},
        {"decryption": "not a map"},
        {"provider": "generic"},
        {"provider": ""},
    ],
)
def test_absent_empty_or_allowed_values_pass(spec: dict[str, Any]) -> None:
    assert unsupported_fields(spec, TABLE) == []
    refuse_unsupported(spec, TABLE)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"kubeConfig": {"secretRef": {"name": "remote"}}},
            "spec.kubeConfig is not supported by this controller: remote clusters are not implemented",
        ),
        (
            {"dependsOn": [{"name": "a"}, {"name": "b", "readyExpr": "true"}]},
            "spec.dependsOn[1].readyExpr is not supported by this controller: CEL is not implemented",
        ),
        (
            {"decryption": {"provider": "sops", "serviceAccountName": "kms"}},
            "spec.decryption.serviceAccountName is not supported by this controller: no workload identity",
        ),
        (
            {"provider": "azure"},
            "spec.provider 'azure' is not supported by this controller (supported: generic): only generic",
        ),
    ],
)
def test_a_set_field_is_refused_by_its_path(spec: dict[str, Any], message: str) -> None:
    assert unsupported_fields(spec, TABLE) == [message]
    with pytest.raises(InvalidSpec) as raised:
        refuse_unsupported(spec, TABLE)
    assert str(raised.value) == message
    assert raised.value.reason == UNSUPPORTED_FIELD


def test_every_refusal_is_named_in_one_message() -> None:
    spec = {"kubeConfig": {"configMapRef": {"name": "c"}}, "dependsOn": [{"readyExpr": "a"}, {"readyExpr": "b"}]}
    with pytest.raises(InvalidSpec) as raised:
        refuse_unsupported(spec, TABLE)
    assert str(raised.value).split("; ") == [
        "spec.kubeConfig is not supported by this controller: remote clusters are not implemented",
        "spec.dependsOn[0].readyExpr is not supported by this controller: CEL is not implemented",
        "spec.dependsOn[1].readyExpr is not supported by this controller: CEL is not implemented",
    ]


def test_a_value_of_the_wrong_type_for_an_enum_is_refused() -> None:
    assert unsupported_fields({"provider": ["generic"]}, TABLE) == [
        "spec.provider ['generic'] is not supported by this controller (supported: generic): only generic"
    ]


def test_the_refusal_stalls() -> None:
    """The runner's verdict on it: terminal (Stalled, Ready=False until the spec changes), with our reason."""
    with pytest.raises(InvalidSpec) as raised:
        refuse_unsupported({"kubeConfig": {"secretRef": {"name": "x"}}}, TABLE)
    outcome = Outcome.failed(raised.value)
    assert outcome.kind is OutcomeKind.TERMINAL
    assert outcome.reason == UNSUPPORTED_FIELD
