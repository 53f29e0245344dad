"""Bucket's pure decisions: the no-op, what a new revision leaves on status, what the spec may not ask."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gitops_mesh.bus.envelope import EventKind
from gitops_mesh.errors import InvalidSpec
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.unsupported import unsupported_fields
from source_controller.bucket_plan import Fetch, Observed, fetch_failed, plan, refuse_provider_fields, stored
from source_controller.objectstore.errors import BucketOperationFailed
from source_controller.references import bucket_secrets
from source_controller.status_edits import Done
from source_controller.unsupported import BUCKET

NOW = datetime(2026, 1, 1, tzinfo=UTC)
REV = "sha256:" + "a" * 64


def bucket(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "b", "generation": 1},
        "spec": {"bucketName": "podinfo", "endpoint": "s3:9000", "interval": "5m", **spec},
        "status": status or {},
    }


def artifact(revision: str = REV) -> dict[str, Any]:
    return {"path": "bucket/ns/b/x.tar.gz", "url": "http://h/x", "revision": revision, "digest": "sha256:d", "size": 3}


def test_unchanged_index_with_stored_artifact_is_a_no_op() -> None:
    obj = bucket({"artifact": artifact()})
    step = plan(obj, Observed(REV, artifact_stored=True))
    assert isinstance(step, Done)
    outcome = step.apply(obj, now=NOW)
    assert outcome.announce == ()
    assert outcome.requeue_after == 300
    mark = c.get(obj, c.ConditionType.ARTIFACT_IN_STORAGE)
    assert mark is not None
    assert mark["message"] == f"stored artifact: revision '{REV}'"


def test_missing_artifact_file_rebuilds() -> None:
    assert isinstance(plan(bucket({"artifact": artifact()}), Observed(REV, artifact_stored=False)), Fetch)


def test_new_revision_marks_artifact_outdated_only_when_there_was_one() -> None:
    new = "sha256:" + "b" * 64
    step = plan(bucket({"artifact": artifact()}), Observed(new, artifact_stored=True))
    assert isinstance(step, Fetch)
    (mark,) = step.edit.marks
    assert (mark.type, mark.reason, mark.message) == (
        c.ConditionType.ARTIFACT_OUTDATED,
        "NewRevision",
        f"new upstream revision '{new}'",
    )
    first = plan(bucket(), Observed(new, artifact_stored=False))
    assert isinstance(first, Fetch)
    assert first.edit.marks == ()


def test_stored_announces_fluxs_message_once() -> None:
    obj = bucket(ignore="*.md")
    done = stored(obj, REV, artifact(), "http://h/latest.tar.gz", 16)
    (event,) = done.outcome.announce
    assert event.kind == EventKind.ARTIFACT_READY
    assert event.reason == "NewArtifact"
    assert event.message == "stored artifact with 16 fetched files from 'podinfo' bucket"
    assert event.revision == REV
    done.apply(obj, now=NOW)
    assert obj["status"]["observedIgnore"] == "*.md"
    assert obj["status"]["url"] == "http://h/latest.tar.gz"
    # The same revision again (a rebuilt missing file) is not news.
    assert stored(obj, REV, artifact(), "http://h/latest.tar.gz", 16).outcome.announce == ()


def test_fetch_failure_keeps_the_artifact_and_sets_fetch_failed() -> None:
    obj = bucket({"artifact": artifact()})
    err = BucketOperationFailed("bucket 'podinfo' not found")
    returned = fetch_failed(err).apply(obj, now=NOW)
    assert returned is err
    cond = c.get(obj, c.ConditionType.FETCH_FAILED)
    assert cond is not None
    assert (cond["reason"], cond["message"]) == ("BucketOperationFailed", "bucket 'podinfo' not found")
    assert obj["status"]["artifact"] == artifact()


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"provider": "azure", "certSecretRef": {"name": "tls"}}, "spec.certSecretRef is not supported"),
        ({"provider": "aws"}, "IAM"),
    ],
)
def test_provider_specific_refusals(spec: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidSpec) as e:
        refuse_provider_fields(spec)
    assert words in str(e.value)
    assert e.value.reason == "UnsupportedField"


def test_supported_provider_specs_pass() -> None:
    refuse_provider_fields({"provider": "aws", "secretRef": {"name": "s"}, "prefix": "x/"})
    refuse_provider_fields({"provider": "generic", "certSecretRef": {"name": "tls"}, "prefix": "x/"})
    # Flux lists an Azure container under spec.prefix too (since source-controller's azure prefix fix).
    refuse_provider_fields({"provider": "azure", "secretRef": {"name": "s"}, "prefix": "x/"})


def test_unsupported_table() -> None:
    assert unsupported_fields({"provider": "generic"}, BUCKET) == []
    assert unsupported_fields({"provider": "azure"}, BUCKET) == []
    assert unsupported_fields({"provider": "gcp"}, BUCKET) == []
    (other,) = unsupported_fields({"provider": "oracle"}, BUCKET)
    assert "spec.provider 'oracle' is not supported" in other
    # spec.sts is implemented (objectstore.sts); serviceAccountName is still refused.
    sts = {"provider": "ldap", "endpoint": "https://ldap"}
    (refused,) = unsupported_fields({"sts": sts, "serviceAccountName": "sa"}, BUCKET)
    assert "spec.serviceAccountName" in refused


def test_bucket_secrets_index_values() -> None:
    obj = bucket(secretRef={"name": "a"}, certSecretRef={"name": "b"}, proxySecretRef={"name": "c"})
    assert bucket_secrets(obj) == ["Secret/ns/a", "Secret/ns/b", "Secret/ns/c"]
