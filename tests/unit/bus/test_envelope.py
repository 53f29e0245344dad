"""The CloudEvents envelope: building, parsing back, and every way parsing refuses bytes."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_mesh.bus.envelope import (
    Artifact,
    CloudEvent,
    EnvelopeError,
    EnvelopeProblem,
    EventKind,
    ObjectRef,
    Severity,
    build_event,
    encode,
    event_from_dict,
    message_key,
    parse_event,
)
from gitops_mesh.errors import TerminalError

NOW = datetime(2026, 11, 25, 14, 3, 7, 123456, tzinfo=UTC)
REPO = ObjectRef(
    api_version="source.toolkit.fluxcd.io/v1", kind="GitRepository", namespace="flux-system", name="podinfo", uid="u-1"
)
ARTIFACT = Artifact(
    url="http://source-controller/gitrepository/flux-system/podinfo/abc.tar.gz",
    digest="sha256:" + "a" * 64,
    revision="main@sha1:abc",
    size=1234,
)


def sample(**overrides: Any) -> CloudEvent:
    args: dict[str, Any] = {
        "kind": EventKind.ARTIFACT_READY,
        "controller": "source-controller",
        "instance": "source-controller-7d9f-x2",
        "involved_object": REPO,
        "severity": Severity.INFO,
        "reason": "NewArtifact",
        "message": "stored artifact for commit 'abc'",
        "revision": "main@sha1:abc",
        "metadata": {"commit_status": "update"},
        "artifact": ARTIFACT,
        "now": NOW,
    } | overrides
    return build_event(**args)


def test_envelope_has_the_designed_shape() -> None:
    ce = sample(event_id="0b6f9a8e-1111-4222-8333-944455556666")
    assert ce == {
        "specversion": "1.0",
        "id": "0b6f9a8e-1111-4222-8333-944455556666",
        "type": "io.gitops-mesh.artifact-ready.v1",
        "source": "/gitops-mesh/source-controller/source-controller-7d9f-x2",
        "subject": "GitRepository/flux-system/podinfo",
        "time": "2026-11-25T14:03:07.123Z",
        "datacontenttype": "application/json",
        "data": {
            "involvedObject": {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "namespace": "flux-system",
                "name": "podinfo",
                "uid": "u-1",
            },
            "severity": "info",
            "reason": "NewArtifact",
            "message": "stored artifact for commit 'abc'",
            "revision": "main@sha1:abc",
            "metadata": {"commit_status": "update"},
            "artifact": {
                "url": "http://source-controller/gitrepository/flux-system/podinfo/abc.tar.gz",
                "digest": "sha256:" + "a" * 64,
                "revision": "main@sha1:abc",
                "size": 1234,
            },
            "reportingController": "source-controller",
            "reportingInstance": "source-controller-7d9f-x2",
            "timestamp": "2026-11-25T14:03:07Z",
        },
    }


def test_id_is_a_fresh_uuid4() -> None:
    a, b = sample()["id"], sample()["id"]
    assert a != b
    assert uuid.UUID(a).version == 4


def test_round_trip_keeps_everything() -> None:
    ce = sample()
    event = parse_event(encode(ce))
    assert event.to_cloudevent() == ce
    assert event.kind == "artifact-ready"
    assert event.type == "io.gitops-mesh.artifact-ready.v1"
    assert event.involved_object == REPO
    assert event.artifact == ARTIFACT
    assert event.severity is Severity.INFO
    assert event.time == datetime(2026, 11, 25, 14, 3, 7, 123000, tzinfo=UTC)
    assert event.timestamp == datetime(2026, 11, 25, 14, 3, 7, tzinfo=UTC)
    assert event.key == b"GitRepository/flux-system/podinfo"


def test_round_trip_without_artifact_and_defaults() -> None:
    ce = build_event(
        kind="failed",
        controller="kustomize-controller",
        instance="0",
        involved_object=ObjectRef("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "apps", "web"),
        severity=Severity.ERROR,
        reason="HealthCheckFailed",
        message="timeout",
        now=NOW,
    )
    assert "artifact" not in ce["data"]
    assert ce["data"]["revision"] == ""
    assert ce["data"]["metadata"] == {}
    event = parse_event(encode(ce))
    assert event.artifact is None
    assert event.severity is Severity.ERROR
    assert event.to_cloudevent() == ce


def test_time_in_another_zone_is_written_in_utc() -> None:
    ce = sample(now=datetime(2026, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))))
    assert ce["time"] == "2026-01-01T00:00:00.000Z"
    assert ce["data"]["timestamp"] == "2026-01-01T00:00:00Z"


def test_lenient_about_optional_flux_fields() -> None:
    doc: Any = copy.deepcopy(sample())
    for optional in ("revision", "metadata", "reportingInstance"):
        del doc["data"][optional]
    del doc["data"]["involvedObject"]["uid"]
    del doc["data"]["artifact"]["size"]
    del doc["datacontenttype"]
    event = event_from_dict(doc)
    assert (event.revision, dict(event.metadata), event.reporting_instance) == ("", {}, "")
    assert event.involved_object.uid == ""
    assert event.artifact is not None
    assert event.artifact.size is None


def test_unknown_kinds_parse() -> None:
    doc: Any = sample()
    doc["type"] = "io.gitops-mesh.something-new.v1"
    assert event_from_dict(doc).kind == "something-new"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"kind": "Artifact_Ready"}, "lower-case token"),
        ({"controller": "a/b"}, "controller"),
        ({"instance": ""}, "instance"),
        ({"now": datetime(2026, 1, 1)}, "timezone-aware"),
    ],
)
def test_build_refuses_what_parse_would_reject(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sample(**kw)


# ---- every parse failure -------------------------------------------------------------------------------


def _mutated(path: str, value: Any) -> bytes:
    """The sample envelope with ``path`` (dotted) set to ``value``, or removed when value is ``DELETE``."""
    doc: Any = copy.deepcopy(sample())
    *parents, last = path.split(".")
    target = doc
    for p in parents:
        target = target[p]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return orjson.dumps(doc)


DELETE = object()


@pytest.mark.parametrize(
    ("raw", "problem", "field"),
    [
        (b"\x00\xffgarbage", EnvelopeProblem.NOT_JSON, None),
        (b'{"specversion": "1.0",', EnvelopeProblem.NOT_JSON, None),
        (b"", EnvelopeProblem.NOT_JSON, None),
        (None, EnvelopeProblem.NOT_JSON, None),
        (b"[1, 2]", EnvelopeProblem.NOT_OBJECT, None),
        (b'"a string"', EnvelopeProblem.NOT_OBJECT, None),
        (b"null", EnvelopeProblem.NOT_OBJECT, None),
        (_mutated("specversion", DELETE), EnvelopeProblem.MISSING_FIELD, "specversion"),
        (_mutated("specversion", "0.3"), EnvelopeProblem.UNSUPPORTED_SPECVERSION, "specversion"),
        (_mutated("specversion", 1.0), EnvelopeProblem.WRONG_TYPE, "specversion"),
        (_mutated("id", DELETE), EnvelopeProblem.MISSING_FIELD, "id"),
        (_mutated("id", ""), EnvelopeProblem.INVALID_VALUE, "id"),
        (_mutated("id", 7), EnvelopeProblem.WRONG_TYPE, "id"),
        (_mutated("type", DELETE), EnvelopeProblem.MISSING_FIELD, "type"),
        (_mutated("type", "com.example.thing"), EnvelopeProblem.INVALID_VALUE, "type"),
        (_mutated("type", "io.gitops-mesh.artifact-ready.v2"), EnvelopeProblem.INVALID_VALUE, "type"),
        (_mutated("source", DELETE), EnvelopeProblem.MISSING_FIELD, "source"),
        (_mutated("source", "/elsewhere/x/y"), EnvelopeProblem.INVALID_VALUE, "source"),
        (_mutated("source", "/gitops-mesh/only-controller"), EnvelopeProblem.INVALID_VALUE, "source"),
        (_mutated("source", "/gitops-mesh/c/i/extra"), EnvelopeProblem.INVALID_VALUE, "source"),
        (_mutated("subject", DELETE), EnvelopeProblem.MISSING_FIELD, "subject"),
        (_mutated("subject", "GitRepository/flux-system/other"), EnvelopeProblem.INVALID_VALUE, "subject"),
        (_mutated("time", DELETE), EnvelopeProblem.MISSING_FIELD, "time"),
        (_mutated("time", "yesterday"), EnvelopeProblem.INVALID_VALUE, "time"),
        (_mutated("time", "2026-11-25T14:03:07"), EnvelopeProblem.INVALID_VALUE, "time"),
        (_mutated("datacontenttype", "text/plain"), EnvelopeProblem.INVALID_VALUE, "datacontenttype"),
        (_mutated("data", DELETE), EnvelopeProblem.MISSING_FIELD, "data"),
        (_mutated("data", "text"), EnvelopeProblem.WRONG_TYPE, "data"),
        (_mutated("data.involvedObject", DELETE), EnvelopeProblem.MISSING_FIELD, "data.involvedObject"),
        (_mutated("data.involvedObject", []), EnvelopeProblem.WRONG_TYPE, "data.involvedObject"),
        (_mutated("data.involvedObject.kind", DELETE), EnvelopeProblem.MISSING_FIELD, "data.involvedObject.kind"),
        (_mutated("data.involvedObject.name", ""), EnvelopeProblem.INVALID_VALUE, "data.involvedObject.name"),
        (_mutated("data.involvedObject.namespace", 3), EnvelopeProblem.WRONG_TYPE, "data.involvedObject.namespace"),
        (
            _mutated("data.involvedObject.apiVersion", None),
            EnvelopeProblem.MISSING_FIELD,
            "data.involvedObject.apiVersion",
        ),
        (_mutated("data.severity", "warning"), EnvelopeProblem.INVALID_VALUE, "data.severity"),
        (_mutated("data.severity", DELETE), EnvelopeProblem.MISSING_FIELD, "data.severity"),
        (_mutated("data.reason", DELETE), EnvelopeProblem.MISSING_FIELD, "data.reason"),
        (_mutated("data.message", ["x"]), EnvelopeProblem.WRONG_TYPE, "data.message"),
        (_mutated("data.metadata", "k=v"), EnvelopeProblem.WRONG_TYPE, "data.metadata"),
        (_mutated("data.metadata", {"k": 1}), EnvelopeProblem.WRONG_TYPE, "data.metadata"),
        (_mutated("data.artifact", "url"), EnvelopeProblem.WRONG_TYPE, "data.artifact"),
        (_mutated("data.artifact.url", DELETE), EnvelopeProblem.MISSING_FIELD, "data.artifact.url"),
        (_mutated("data.artifact.size", -1), EnvelopeProblem.INVALID_VALUE, "data.artifact.size"),
        (_mutated("data.artifact.size", True), EnvelopeProblem.INVALID_VALUE, "data.artifact.size"),
        (_mutated("data.artifact.size", "12"), EnvelopeProblem.INVALID_VALUE, "data.artifact.size"),
        (_mutated("data.reportingController", DELETE), EnvelopeProblem.MISSING_FIELD, "data.reportingController"),
        (_mutated("data.timestamp", DELETE), EnvelopeProblem.MISSING_FIELD, "data.timestamp"),
        (_mutated("data.timestamp", "2026-13-01T00:00:00Z"), EnvelopeProblem.INVALID_VALUE, "data.timestamp"),
    ],
)
def test_parse_failures_name_the_problem(raw: bytes | None, problem: EnvelopeProblem, field: str | None) -> None:
    with pytest.raises(EnvelopeError) as caught:
        parse_event(raw)
    err = caught.value
    assert err.problem is problem
    assert err.reason == problem.value
    assert err.field == field
    assert str(err).startswith(f"{problem.value}: ")
    if field is not None:
        assert field in str(err)


def test_envelope_error_is_a_terminal_value_error() -> None:
    with pytest.raises(EnvelopeError) as caught:
        parse_event(b"nope")
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, TerminalError)


# ---- keys and properties -------------------------------------------------------------------------------


def test_message_key_format() -> None:
    assert message_key("Kustomization", "apps", "web") == b"Kustomization/apps/web"
    assert message_key("HelmRelease", "", "x") == b"HelmRelease//x"


dns_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
kind_name = st.from_regex(r"[A-Z][A-Za-z]{0,20}", fullmatch=True)
text = st.text(max_size=200)


@given(kind=kind_name, namespace=dns_label, name=dns_label)
def test_message_key_is_the_subject(kind: str, namespace: str, name: str) -> None:
    ce = sample(involved_object=ObjectRef("v1", kind, namespace, name))
    assert message_key(kind, namespace, name) == ce["subject"].encode()
    assert parse_event(encode(ce)).key == message_key(kind, namespace, name)
    assert message_key(kind, namespace, name).decode().split("/") == [kind, namespace, name]


@given(
    kind=st.sampled_from(list(EventKind)),
    obj=st.builds(ObjectRef, st.just("v1"), kind_name, dns_label, dns_label, st.uuids().map(str)),
    severity=st.sampled_from(list(Severity)),
    reason=text,
    message=text,
    revision=text,
    metadata=st.dictionaries(text, text, max_size=5),
    artifact=st.none() | st.builds(Artifact, st.text(min_size=1), text, text, st.none() | st.integers(0, 2**53)),
    now=st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.just(UTC),
    ),
)
def test_any_built_event_round_trips(
    kind: EventKind,
    obj: ObjectRef,
    severity: Severity,
    reason: str,
    message: str,
    revision: str,
    metadata: dict[str, str],
    artifact: Artifact | None,
    now: datetime,
) -> None:
    ce = build_event(
        kind=kind,
        controller="helm-controller",
        instance="helm-controller-0",
        involved_object=obj,
        severity=severity,
        reason=reason,
        message=message,
        revision=revision,
        metadata=metadata,
        artifact=artifact,
        now=now,
    )
    event = parse_event(encode(ce))
    assert event.to_cloudevent() == ce
    assert event.involved_object == obj
    assert event.artifact == artifact
    assert dict(event.metadata) == metadata


@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_refused_with_envelope_error_only(raw: bytes) -> None:
    with pytest.raises(EnvelopeError):
        parse_event(raw)
