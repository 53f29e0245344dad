"""The bus's wire format: CloudEvents 1.0 structured JSON around a superset of Flux's Event (pure, no I/O)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal, NotRequired, TypedDict

import orjson

from gitops_mesh.errors import TerminalError
from gitops_mesh.timestamps import rfc3339

SPECVERSION = "1.0"
DATACONTENTTYPE = "application/json"
#: The Kafka header CloudEvents' Kafka binding sets in structured mode.
CONTENT_TYPE_HEADER = ("content-type", b"application/cloudevents+json; charset=UTF-8")

_TYPE_PREFIX = "io.gitops-mesh."
_TYPE_SUFFIX = ".v1"
_SOURCE_PREFIX = "/gitops-mesh/"
_KIND_TOKEN = re.compile(r"^[a-z][a-z0-9-]*$")
_TYPE_RE = re.compile(r"^io\.gitops-mesh\.([a-z][a-z0-9-]*)\.v1$")


class Severity(StrEnum):
    """Flux's two event severities."""

    INFO = "info"
    ERROR = "error"


class EventKind(StrEnum):
    """The event kinds the controllers emit; ``type`` is ``io.gitops-mesh.<kind>.v1``.

    Parsing accepts any well-formed kind, so a newer producer does not dead-letter on an older consumer.
    """

    ARTIFACT_READY = "artifact-ready"
    APPLIED = "applied"
    FAILED = "failed"
    PROGRESSING = "progressing"
    INFO = "info"
    WARNING = "warning"
    RECONCILE_REQUESTED = "reconcile-requested"


# ---- wire shapes ---------------------------------------------------------------------------------------


class InvolvedObjectWire(TypedDict):
    apiVersion: str
    kind: str
    namespace: str
    name: str
    uid: str


class ArtifactWire(TypedDict):
    url: str
    digest: str
    revision: str
    size: NotRequired[int]


class EventDataWire(TypedDict):
    """Flux's Event (what a generic webhook receives) plus ``revision`` and ``artifact``."""

    involvedObject: InvolvedObjectWire
    severity: Literal["info", "error"]
    reason: str
    message: str
    revision: str
    metadata: dict[str, str]
    artifact: NotRequired[ArtifactWire]
    reportingController: str
    reportingInstance: str
    timestamp: str


class CloudEvent(TypedDict):
    specversion: str
    id: str
    type: str
    source: str
    subject: str
    time: str
    datacontenttype: str
    data: EventDataWire


# ---- parsed shapes -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The Kubernetes object an event is about."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""


@dataclass(frozen=True, slots=True)
class Artifact:
    """Where a source's artifact can be fetched, and how to verify it."""

    url: str
    digest: str
    revision: str
    size: int | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A parsed envelope: the CloudEvents attributes and the flattened Flux event they carry."""

    id: str
    #: The event's kind from ``type`` (``artifact-ready``); the object's Kind is ``involved_object.kind``.
    kind: str
    source: str
    subject: str
    time: datetime
    involved_object: ObjectRef
    severity: Severity
    reason: str
    message: str
    revision: str
    reporting_controller: str
    reporting_instance: str
    timestamp: datetime
    metadata: Mapping[str, str] = field(default_factory=dict)
    artifact: Artifact | None = None

    @property
    def type(self) -> str:
        return f"{_TYPE_PREFIX}{self.kind}{_TYPE_SUFFIX}"

    @property
    def key(self) -> bytes:
        """The Kafka message key, so one object's events stay in one partition, in order."""
        o = self.involved_object
        return message_key(o.kind, o.namespace, o.name)

    def to_cloudevent(self) -> CloudEvent:
        o = self.involved_object
        data: EventDataWire = {
            "involvedObject": {
                "apiVersion": o.api_version,
                "kind": o.kind,
                "namespace": o.namespace,
                "name": o.name,
                "uid": o.uid,
            },
            "severity": "info" if self.severity is Severity.INFO else "error",
            "reason": self.reason,
            "message": self.message,
            "revision": self.revision,
            "metadata": dict(self.metadata),
            "reportingController": self.reporting_controller,
            "reportingInstance": self.reporting_instance,
            "timestamp": format_timestamp(self.timestamp),
        }
        if self.artifact is not None:
            data["artifact"] = _artifact_wire(self.artifact)
        return {
            "specversion": SPECVERSION,
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "time": format_time(self.time),
            "datacontenttype": DATACONTENTTYPE,
            "data": data,
        }


# ---- errors --------------------------------------------------------------------------------------------


class EnvelopeProblem(StrEnum):
    """Why bytes are not an envelope; also the ``reason`` label of dead-lettered messages."""

    NOT_JSON = "NotJSON"
    NOT_OBJECT = "NotObject"
    MISSING_FIELD = "MissingField"
    WRONG_TYPE = "WrongType"
    UNSUPPORTED_SPECVERSION = "UnsupportedSpecVersion"
    INVALID_VALUE = "InvalidValue"


class EnvelopeError(TerminalError, ValueError):
    """The bytes are not a gitops-mesh CloudEvent; retrying cannot help, so the message is dead-lettered."""

    def __init__(self, problem: EnvelopeProblem, detail: str, *, field: str | None = None) -> None:
        super().__init__(f"{problem.value}: {detail}", reason=problem.value)
        self.problem = problem
        self.field = field


# ---- building ------------------------------------------------------------------------------------------


def message_key(kind: str, namespace: str, name: str) -> bytes:
    """``<kind>/<namespace>/<name>``: Kafka's partitioner keeps one object's events in one partition."""
    return f"{kind}/{namespace}/{name}".encode()


def subject_of(obj: ObjectRef) -> str:
    return f"{obj.kind}/{obj.namespace}/{obj.name}"


def format_time(t: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, ``Z`` suffix."""
    return rfc3339(t, "milliseconds")


def format_timestamp(t: datetime) -> str:
    """RFC 3339 in UTC to the second: the form Flux's metav1.Time takes, for Flux-compatible payloads."""
    return rfc3339(t)


def build_event(
    *,
    kind: str,
    controller: str,
    instance: str,
    involved_object: ObjectRef,
    severity: Severity,
    reason: str,
    message: str,
    revision: str = "",
    metadata: Mapping[str, str] | None = None,
    artifact: Artifact | None = None,
    event_id: str | None = None,
    now: datetime | None = None,
) -> CloudEvent:
    """The envelope for one event; ``kind`` is e.g. ``EventKind.ARTIFACT_READY``.

    Raises ``ValueError`` for arguments that would produce an envelope ``parse_event`` rejects: a bug in
    the caller is cheaper to find here than in a dead-letter topic.
    """
    if not _KIND_TOKEN.match(kind):
        raise ValueError(f"event kind {kind!r} is not a lower-case token like 'artifact-ready'")
    for label, value in (("controller", controller), ("instance", instance)):
        if not value or "/" in value:
            raise ValueError(f"{label} {value!r} must be non-empty and contain no '/'")
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    event = Event(
        id=event_id or str(uuid.uuid4()),
        kind=kind,
        source=f"{_SOURCE_PREFIX}{controller}/{instance}",
        subject=subject_of(involved_object),
        time=now,
        involved_object=involved_object,
        severity=Severity(severity),
        reason=reason,
        message=message,
        revision=revision,
        reporting_controller=controller,
        reporting_instance=instance,
        timestamp=now,
        metadata=dict(metadata or {}),
        artifact=artifact,
    )
    return event.to_cloudevent()


def encode(event: CloudEvent) -> bytes:
    """The message value: the envelope as compact JSON."""
    return orjson.dumps(event)


# ---- parsing -------------------------------------------------------------------------------------------


def parse_event(raw: bytes | None) -> Event:
    """Bytes from Kafka -> ``Event``; raises ``EnvelopeError`` naming what is wrong."""
    if raw is None:
        raise EnvelopeError(EnvelopeProblem.NOT_JSON, "the message has no value (a tombstone)")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise EnvelopeError(EnvelopeProblem.NOT_JSON, f"not JSON: {e}") from e
    return event_from_dict(doc)


def event_from_dict(doc: object) -> Event:
    """A decoded JSON document -> ``Event``; raises ``EnvelopeError`` naming what is wrong."""
    if not isinstance(doc, dict):
        raise EnvelopeError(EnvelopeProblem.NOT_OBJECT, f"the envelope is a JSON {_json_type(doc)}, not an object")
    specversion = _str(doc, "specversion", "")
    if specversion != SPECVERSION:
        raise EnvelopeError(
            EnvelopeProblem.UNSUPPORTED_SPECVERSION,
            f"specversion {specversion!r} is not {SPECVERSION!r}",
            field="specversion",
        )
    event_id = _nonempty(doc, "id", "")
    type_ = _str(doc, "type", "")
    m = _TYPE_RE.match(type_)
    if m is None:
        raise _invalid("type", f"{type_!r} is not 'io.gitops-mesh.<kind>.v1'")
    source = _str(doc, "source", "")
    controller, _, instance = source.removeprefix(_SOURCE_PREFIX).partition("/")
    if not source.startswith(_SOURCE_PREFIX) or not controller or not instance or "/" in instance:
        raise _invalid("source", f"{source!r} is not '/gitops-mesh/<controller>/<instance>'")
    subject = _str(doc, "subject", "")
    time = _time(doc, "time", "")
    if "datacontenttype" in doc and doc["datacontenttype"] != DATACONTENTTYPE:
        raise _invalid("datacontenttype", f"{doc['datacontenttype']!r} is not {DATACONTENTTYPE!r}")
    data = _obj(doc, "data", "")

    obj = _obj(data, "involvedObject", "data.")
    where = "data.involvedObject."
    involved = ObjectRef(
        api_version=_str(obj, "apiVersion", where),
        kind=_nonempty(obj, "kind", where),
        namespace=_str(obj, "namespace", where),
        name=_nonempty(obj, "name", where),
        uid=_str(obj, "uid", where, default=""),
    )
    if subject != subject_of(involved):
        raise _invalid("subject", f"{subject!r} does not name the involvedObject {subject_of(involved)!r}")
    severity = _str(data, "severity", "data.")
    if severity not in (Severity.INFO, Severity.ERROR):
        raise _invalid("data.severity", f"{severity!r} is neither 'info' nor 'error'")
    metadata: dict[str, str] = {}
    for k, v in _obj(data, "metadata", "data.", default={}).items():
        if not isinstance(v, str):
            raise EnvelopeError(
                EnvelopeProblem.WRONG_TYPE,
                f"data.metadata[{k!r}] is a {_json_type(v)}, not a string",
                field="data.metadata",
            )
        metadata[k] = v
    artifact = None
    if "artifact" in data:
        a = _obj(data, "artifact", "data.")
        size = a.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise _invalid("data.artifact.size", f"{size!r} is not a non-negative integer")
        artifact = Artifact(
            url=_nonempty(a, "url", "data.artifact."),
            digest=_str(a, "digest", "data.artifact."),
            revision=_str(a, "revision", "data.artifact."),
            size=size,
        )
    return Event(
        id=event_id,
        kind=m.group(1),
        source=source,
        subject=subject,
        time=time,
        involved_object=involved,
        severity=Severity(severity),
        reason=_str(data, "reason", "data."),
        message=_str(data, "message", "data."),
        revision=_str(data, "revision", "data.", default=""),
        reporting_controller=_str(data, "reportingController", "data."),
        reporting_instance=_str(data, "reportingInstance", "data.", default=""),
        timestamp=_time(data, "timestamp", "data."),
        metadata=metadata,
        artifact=artifact,
    )


_MISSING = object()


def _get(doc: dict[str, object], name: str, where: str, default: object) -> object:
    if name in doc and doc[name] is not None:
        return doc[name]
    if default is not _MISSING:
        return default
    raise EnvelopeError(EnvelopeProblem.MISSING_FIELD, f"{where}{name} is missing", field=f"{where}{name}")


def _str(doc: dict[str, object], name: str, where: str, *, default: object = _MISSING) -> str:
    value = _get(doc, name, where, default)
    if not isinstance(value, str):
        raise EnvelopeError(
            EnvelopeProblem.WRONG_TYPE, f"{where}{name} is a {_json_type(value)}, not a string", field=f"{where}{name}"
        )
    return value


def _nonempty(doc: dict[str, object], name: str, where: str) -> str:
    value = _str(doc, name, where)
    if not value:
        raise _invalid(f"{where}{name}", "is empty")
    return value


def _obj(doc: dict[str, object], name: str, where: str, *, default: object = _MISSING) -> dict[str, object]:
    value = _get(doc, name, where, default)
    if not isinstance(value, dict):
        raise EnvelopeError(
            EnvelopeProblem.WRONG_TYPE, f"{where}{name} is a {_json_type(value)}, not an object", field=f"{where}{name}"
        )
    return value


def _time(doc: dict[str, object], name: str, where: str) -> datetime:
    value = _str(doc, name, where)
    try:
        t = datetime.fromisoformat(value)
    except ValueError as e:
        raise _invalid(f"{where}{name}", f"{value!r} is not an RFC 3339 time") from e
    if t.tzinfo is None:
        raise _invalid(f"{where}{name}", f"{value!r} has no time zone offset")
    return t


def _invalid(field: str, detail: str) -> EnvelopeError:
    return EnvelopeError(EnvelopeProblem.INVALID_VALUE, f"{field} {detail}", field=field)


def _json_type(value: object) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "boolean"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
        case dict():
            return "object"
    return type(value).__name__


def _artifact_wire(a: Artifact) -> ArtifactWire:
    wire: ArtifactWire = {"url": a.url, "digest": a.digest, "revision": a.revision}
    if a.size is not None:
        wire["size"] = a.size
    return wire
