"""ChangeSet wording as Flux prints it, the errors that carry a partial change set, and the deletion policies."""

from __future__ import annotations

import pytest

from gitops_mesh.errors import Invalid, InvalidSpec, KubeUnavailable, TerminalError, TransientError
from kustomize_controller.apply.changeset import (
    Action,
    ChangeSet,
    ChangeSetInterrupted,
    ChangeSetRejected,
    ObjectFailure,
    failed,
)
from kustomize_controller.apply.inventory import ObjectId
from kustomize_controller.apply.prune import DeletionPolicy, delete_on_finalize, deletion_policy

DEPLOY = ObjectId("apps", "Deployment", "default", "web", "v1")
NS = ObjectId("", "Namespace", "", "team", "v1")
SVC = ObjectId("", "Service", "default", "web", "v1")


def test_change_set_lines_counts_and_inventory() -> None:
    cs = ChangeSet()
    cs.add(NS, Action.UNCHANGED)
    cs.add(SVC, Action.CREATED)
    cs.add(DEPLOY, Action.CONFIGURED)
    cs.add(ObjectId("", "ConfigMap", "default", "c", "v1"), Action.SKIPPED)
    assert str(cs) == (
        "Namespace/team unchanged\nService/default/web created\nDeployment/default/web configured\n"
        "ConfigMap/default/c skipped"
    )
    assert cs.change_log() == "Service/default/web created\nDeployment/default/web configured"
    assert cs.counts() == {"unchanged": 1, "created": 1, "configured": 1, "skipped": 1}
    assert cs.inventory() == [
        {"id": "_team__Namespace", "v": "v1"},
        {"id": "default_web__Service", "v": "v1"},
        {"id": "default_web_apps_Deployment", "v": "v1"},
        {"id": "default_c__ConfigMap", "v": "v1"},
    ]
    assert cs.refs(Action.CREATED, Action.CONFIGURED) == [SVC, DEPLOY]
    assert len(cs) == 4


def test_a_rejection_is_retried_at_the_retry_interval_and_keeps_the_partial_change_set() -> None:
    done = ChangeSet()
    done.add(NS, Action.CREATED)
    rejected = Invalid('Deployment.apps "web" is invalid: spec.replicas: must be >= 0')
    err = failed([ObjectFailure(DEPLOY.subject, f"apply failed: {rejected}", rejected)], done)
    assert isinstance(err, ChangeSetRejected)
    # Flux retries a rejected apply (a CRD, a namespace, a webhook may change): never Stalled.
    assert isinstance(err, TransientError)
    assert not isinstance(err, TerminalError)
    assert err.retry_after is None  # the Kustomization's retryInterval decides
    assert str(err) == (
        'Deployment/default/web apply failed: Deployment.apps "web" is invalid: spec.replicas: must be >= 0'
    )
    assert err.change_set is done
    assert err.reason == "ReconciliationFailed"


def test_only_transient_failures_make_a_transient_error() -> None:
    away = KubeUnavailable("connection refused", retry_after=3)
    err = failed([ObjectFailure(SVC.subject, f"apply failed: {away}", away)], ChangeSet())
    assert isinstance(err, ChangeSetInterrupted)
    assert isinstance(err, TransientError)
    assert err.retry_after == 3
    mixed = failed(
        [ObjectFailure(SVC.subject, "x", away), ObjectFailure(DEPLOY.subject, "y", Invalid("y"))], ChangeSet()
    )
    assert isinstance(mixed, ChangeSetRejected)


def test_long_failure_lists_are_capped() -> None:
    failures = [ObjectFailure(f"ConfigMap/ns/c{i}", "apply failed: no", Invalid("no")) for i in range(8)]
    message = str(failed(failures, ChangeSet()))
    assert message.count("apply failed") == 5
    assert message.endswith("; and 3 more")


def test_deletion_policy_parse() -> None:
    assert deletion_policy(None) is DeletionPolicy.MIRROR_PRUNE
    assert deletion_policy("") is DeletionPolicy.MIRROR_PRUNE
    assert deletion_policy("WaitForTermination") is DeletionPolicy.WAIT_FOR_TERMINATION
    with pytest.raises(InvalidSpec, match="MirrorPrune, Delete, WaitForTermination, Orphan"):
        deletion_policy("delete")


@pytest.mark.parametrize(
    ("policy", "prune", "suspended", "size", "expected"),
    [
        (DeletionPolicy.MIRROR_PRUNE, True, False, 3, True),
        (DeletionPolicy.MIRROR_PRUNE, False, False, 3, False),
        (DeletionPolicy.DELETE, False, False, 3, True),
        (DeletionPolicy.WAIT_FOR_TERMINATION, False, False, 3, True),
        (DeletionPolicy.ORPHAN, True, False, 3, False),
        (DeletionPolicy.DELETE, True, True, 3, False),  # suspended: never
        (DeletionPolicy.DELETE, True, False, 0, False),  # nothing in the inventory
    ],
)
def test_delete_on_finalize(policy: DeletionPolicy, prune: bool, suspended: bool, size: int, expected: bool) -> None:
    assert delete_on_finalize(policy, prune=prune, suspended=suspended, inventory_size=size) is expected
