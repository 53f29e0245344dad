"""HelmRepository's decisions without a Helm repository: Flux's fetch failure wording, no-op, the stored
index's status and announcement, and the static OCI repository."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gitops_mesh.bus.envelope import Artifact, EventKind
from gitops_mesh.errors import GitopsMeshError, TerminalError, TransientError
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from source_controller.helm import InvalidIndex, InvalidRepositoryAuth, RepositoryAuthFailed, RepositoryFetchFailed
from source_controller.helmrepository_plan import (
    OCI_READY_MESSAGE,
    Observed,
    Store,
    fetch_failed,
    holds_artifact,
    index_stored,
    oci_ready,
    plan,
)
from source_controller.status_edits import Done

NOW = datetime(2026, 1, 1, tzinfo=UTC)
OLD = "sha256:" + "1" * 64
NEW = "sha256:" + "2" * 64
URL = "https://charts.example/stable"


def artifact(revision: str = OLD, size: int = 4096) -> dict[str, Any]:
    return {
        "path": f"helmrepository/apps/stable/index-{revision[7:15]}.yaml",
        "url": f"http://storage/helmrepository/apps/stable/index-{revision[7:15]}.yaml",
        "revision": revision,
        "digest": revision,
        "size": size,
    }


def repository(status: dict[str, Any] | None = None, **spec: Any) -> KubeObject:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "HelmRepository",
        "metadata": {"name": "stable", "namespace": "apps", "generation": 1},
        "spec": {"url": URL, "interval": "1h", **spec},
        "status": status if status is not None else {},
    }


@pytest.mark.parametrize(
    ("error", "kind", "reason", "message"),
    [
        (
            InvalidIndex("no apiVersion"),
            TransientError,
            "IndexationFailed",
            "failed to load Helm repository from index YAML: no apiVersion",
        ),
        (
            RepositoryFetchFailed("GET https://charts.example/stable/index.yaml: 404", url=URL, status=404),
            TransientError,
            "Failed",
            "failed to fetch Helm repository index: GET https://charts.example/stable/index.yaml: 404"
            "; spec.url must be the repository root, the directory holding index.yaml",
        ),
        (
            RepositoryAuthFailed("401 Unauthorized", url=URL, status=401),
            TransientError,
            "AuthenticationFailed",
            "failed to fetch Helm repository index: 401 Unauthorized",
        ),
        (
            InvalidRepositoryAuth("secret has a username but no password"),
            TerminalError,
            "AuthenticationFailed",
            "secret has a username but no password",
        ),
    ],
)
def test_a_failed_fetch_is_fetch_failed_in_flux_words(
    error: GitopsMeshError, kind: type[GitopsMeshError], reason: str, message: str
) -> None:
    obj = repository({"artifact": artifact()})
    failure = fetch_failed(error)
    assert isinstance(failure.error, kind)
    assert (failure.error.reason, str(failure.error)) == (reason, message)
    failure.apply(obj, now=NOW)
    assert c.is_true(obj, c.ConditionType.FETCH_FAILED)
    assert c.get_reason(obj, c.ConditionType.FETCH_FAILED) == reason
    assert c.get_message(obj, c.ConditionType.FETCH_FAILED) == message
    assert obj["status"]["artifact"] == artifact(), "a failed fetch leaves the stored index to the charts"


def test_other_errors_are_reported_as_they_are() -> None:
    error = InvalidRepositoryAuth("secret has a username but no password")
    assert fetch_failed(error).error is error


def test_a_fetch_failure_keeps_the_servers_retry_after() -> None:
    failure = fetch_failed(RepositoryFetchFailed("429 Too Many Requests", url=URL, status=429, retry_after=30.0))
    assert isinstance(failure.error, TransientError)
    assert failure.error.retry_after == 30.0


def test_the_stored_index_fetched_again_is_a_no_op() -> None:
    obj = repository({"artifact": artifact(OLD)})
    c.mark_true(obj, c.ConditionType.FETCH_FAILED, "Failed", "earlier", now=NOW)
    step = plan(obj, Observed(OLD, artifact_stored=True))
    assert isinstance(step, Done)
    assert step.outcome.reason == "Succeeded"
    assert step.outcome.message == f"stored artifact: revision '{OLD}'"
    assert step.outcome.requeue_after == 3600.0
    assert step.outcome.announce == ()
    step.apply(obj, now=NOW)
    assert not c.has(obj, c.ConditionType.FETCH_FAILED)
    assert c.get_reason(obj, c.ConditionType.ARTIFACT_IN_STORAGE) == "Succeeded"
    assert c.get_message(obj, c.ConditionType.ARTIFACT_IN_STORAGE) == f"stored artifact: revision '{OLD}'"


@pytest.mark.parametrize(
    ("status", "revision", "stored"),
    [
        ({"artifact": artifact(OLD)}, NEW, True),  # a new index
        ({"artifact": artifact(OLD)}, OLD, False),  # the same one, but its file is gone
        ({}, OLD, False),  # the first fetch
    ],
)
def test_an_index_not_in_storage_is_stored(status: dict[str, Any], revision: str, stored: bool) -> None:
    step = plan(repository(status), Observed(revision, artifact_stored=stored))
    assert isinstance(step, Store)
    assert step.edit.deletes == (c.ConditionType.FETCH_FAILED,)
    assert step.edit.marks == ()


def test_a_new_index_is_recorded_with_its_link_and_announced() -> None:
    obj = repository({"artifact": artifact(OLD)})
    c.mark_true(obj, c.ConditionType.STORAGE_OPERATION_FAILED, "ArchiveOperationFailed", "earlier", now=NOW)
    new = artifact(NEW, size=8192)
    done = index_stored(obj, NEW, new, "http://storage/helmrepository/apps/stable/index.yaml")
    assert done.outcome.message == f"stored artifact: revision '{NEW}'"
    assert done.outcome.reason == "Succeeded"
    [event] = done.outcome.announce
    assert (event.kind, event.reason, event.revision) == (EventKind.ARTIFACT_READY, "NewArtifact", NEW)
    assert event.message == f"stored fetched index of size 8192 from '{URL}'"
    assert event.artifact == Artifact(url=new["url"], digest=NEW, revision=NEW, size=8192)
    done.apply(obj, now=NOW)
    assert obj["status"]["artifact"] == new
    assert obj["status"]["url"] == "http://storage/helmrepository/apps/stable/index.yaml"
    assert c.is_true(obj, c.ConditionType.ARTIFACT_IN_STORAGE)
    assert not c.has(obj, c.ConditionType.STORAGE_OPERATION_FAILED)


def test_the_same_index_stored_again_is_not_announced() -> None:
    obj = repository({"artifact": artifact(OLD)})
    assert index_stored(obj, OLD, artifact(OLD), "link").outcome.announce == ()


def test_an_oci_repository_is_ready_without_artifact_and_checked_every_interval() -> None:
    obj = repository({"artifact": artifact(), "url": "http://storage/x/index.yaml"}, type="oci")
    for cond in (c.ConditionType.ARTIFACT_IN_STORAGE, c.ConditionType.FETCH_FAILED):
        c.mark_true(obj, cond, "Earlier", "from the default type", now=NOW)
    assert holds_artifact(obj)
    done = oci_ready(obj)
    assert done.outcome.message == OCI_READY_MESSAGE == "Helm repository is ready"
    assert done.outcome.reason == "Succeeded"
    assert done.outcome.requeue_after is not None  # the login is checked again at spec.interval
    done.apply(obj, now=NOW)
    assert "artifact" not in obj["status"]
    assert "url" not in obj["status"]
    assert not c.has(obj, c.ConditionType.ARTIFACT_IN_STORAGE)
    assert not c.has(obj, c.ConditionType.FETCH_FAILED)
    assert not holds_artifact(obj)
