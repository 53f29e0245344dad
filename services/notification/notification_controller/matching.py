"""Which Alerts an event concerns, and the metadata each Alert adds to it (pure; Flux's rules).

Mirrors fluxcd/notification-controller ``internal/server/event_handlers.go``:

* a suspended Alert matches nothing;
* an event matches an Alert when one of its ``eventSources`` has the event's kind and namespace (the
  source's namespace defaults to the Alert's), its name or ``*``, and — when ``matchLabels`` is set, even
  with a concrete name — the involved object's labels satisfy it (labels come from a cache; an object the
  cache does not know does not match, as Flux's failed ``Get`` does not);
* ``eventSeverity: info`` (the default) takes info and error events, ``error`` only error events;
* with an ``inclusionList`` the message must match one of its regexes; a message matching one of the
  ``exclusionList`` regexes is dropped; a regex that does not compile matches nothing (and is reported);
* with ``--no-cross-namespace-refs`` an Alert never takes events of another namespace (reported, as Flux
  reports it, after matching);
* the notification's metadata combines, from lowest to highest precedence (Flux RFC 0008): keys under
  ``event.toolkit.fluxcd.io/`` (object annotations), ``spec.eventMetadata``, ``spec.summary`` (as
  ``summary``), then the controller's own metadata (unprefixed on our bus, or under the object's API group)
  with the event's ``revision``.

Regexes are Python's ``re`` (a superset of the RE2 syntax Flux accepts), searched unanchored like Go's
``MatchString``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gitops_mesh.bus.envelope import Event, Severity
from gitops_mesh.errors import InvalidSpec
from gitops_mesh.kube.objects import KubeObject, split_api_version
from gitops_mesh.kube.selectors import parse_selector

ALERT_API_VERSION = "notification.toolkit.fluxcd.io/v1beta3"
ALERT_KIND = "Alert"

#: Metadata keys under this prefix come from the involved object's annotations (lowest precedence).
EVENT_GROUP_PREFIX = "event.toolkit.fluxcd.io/"
SUMMARY_KEY = "summary"
REVISION_KEY = "revision"
ORIGIN_REVISION_KEY = "originRevision"
#: Flux's internal metadata key: part of the dedupe key, never sent to a provider.
TOKEN_KEY = "token"
WILDCARD = "*"


class Match(StrEnum):
    """Why an Alert does or does not take an event."""

    MATCHED = "Matched"
    SUSPENDED = "Suspended"
    NO_SOURCE = "NoMatchingSource"
    NOT_INCLUDED = "NotIncluded"
    EXCLUDED = "Excluded"
    CROSS_NAMESPACE = "CrossNamespaceDenied"


@dataclass(frozen=True, slots=True)
class EventSource:
    """One entry of ``spec.eventSources`` with its namespace already defaulted to the Alert's."""

    kind: str
    name: str
    namespace: str
    match_labels: Mapping[str, str] | None = None
    api_version: str = ""


@dataclass(frozen=True, slots=True)
class AlertSpec:
    """An Alert as the matcher sees it; build with :func:`alert_from_object`."""

    namespace: str
    name: str
    provider: str
    severity: Severity = Severity.INFO
    sources: tuple[EventSource, ...] = ()
    inclusion: tuple[re.Pattern[str], ...] = ()
    exclusion: tuple[re.Pattern[str], ...] = ()
    #: Regexes that do not compile: they match nothing (so an inclusion list of only those admits nothing).
    invalid_inclusion: tuple[str, ...] = ()
    invalid_exclusion: tuple[str, ...] = ()
    event_metadata: Mapping[str, str] = field(default_factory=dict)
    summary: str = ""
    suspend: bool = False
    uid: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def invalid_patterns(self) -> tuple[str, ...]:
        return self.invalid_inclusion + self.invalid_exclusion


def _compile(patterns: Iterable[Any]) -> tuple[tuple[re.Pattern[str], ...], tuple[str, ...]]:
    good: list[re.Pattern[str]] = []
    bad: list[str] = []
    for p in patterns:
        try:
            good.append(re.compile(str(p)))
        except re.error:
            bad.append(str(p))
    return tuple(good), tuple(bad)


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def alert_from_object(obj: KubeObject) -> AlertSpec:
    """An Alert object (as the apiserver returns it; the CRD has validated its shape) → ``AlertSpec``."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    namespace = str(meta.get("namespace") or "")
    sources = tuple(
        EventSource(
            kind=str(s.get("kind") or ""),
            name=str(s.get("name") or ""),
            namespace=str(s.get("namespace") or namespace),
            match_labels=_str_map(s["matchLabels"]) if s.get("matchLabels") is not None else None,
            api_version=str(s.get("apiVersion") or ""),
        )
        for s in spec.get("eventSources") or ()
        if isinstance(s, Mapping)
    )
    inclusion, bad_in = _compile(spec.get("inclusionList") or ())
    exclusion, bad_ex = _compile(spec.get("exclusionList") or ())
    severity = Severity.ERROR if spec.get("eventSeverity") == Severity.ERROR else Severity.INFO
    return AlertSpec(
        namespace=namespace,
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        provider=str((spec.get("providerRef") or {}).get("name") or ""),
        severity=severity,
        sources=sources,
        inclusion=inclusion,
        exclusion=exclusion,
        invalid_inclusion=bad_in,
        invalid_exclusion=bad_ex,
        event_metadata=_str_map(spec.get("eventMetadata")),
        summary=str(spec.get("summary") or ""),
        suspend=bool(spec.get("suspend")),
    )


# ---- matching ------------------------------------------------------------------------------------------


def _source_selects(source: EventSource, event: Event) -> bool:
    """Kind, namespace and name (or ``*``): everything but the labels."""
    o = event.involved_object
    if o.namespace != source.namespace or o.kind != source.kind:
        return False
    return source.name == WILDCARD or source.name == o.name


def needs_labels(alert: AlertSpec, event: Event) -> bool:
    """Whether deciding ``alert`` for ``event`` needs the involved object's labels."""
    if alert.suspend or not severity_accepted(alert.severity, event.severity):
        return False
    return any(s.match_labels is not None and _source_selects(s, event) for s in alert.sources)


def severity_accepted(alert_severity: Severity, event_severity: Severity) -> bool:
    """``info`` takes every event, ``error`` only errors."""
    return alert_severity == Severity.INFO or alert_severity == event_severity


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A ``matchLabels`` selector as Kubernetes evaluates it; one Kubernetes refuses matches nothing, as in Flux."""
    try:
        return parse_selector({"matchLabels": selector}).matches(labels)
    except InvalidSpec:
        return False


def source_matches(source: EventSource, event: Event, labels: Mapping[str, str] | None) -> bool:
    """One event source against the event; ``labels`` None means the object is not known (no match)."""
    if not _source_selects(source, event):
        return False
    if source.match_labels is None:
        return True
    return labels is not None and labels_match(source.match_labels, labels)


def message_included(alert: AlertSpec, message: str) -> bool:
    if not alert.inclusion and not alert.invalid_inclusion:
        return True
    return any(p.search(message) for p in alert.inclusion)


def message_excluded(alert: AlertSpec, message: str) -> bool:
    return any(p.search(message) for p in alert.exclusion)


def match_alert(
    alert: AlertSpec,
    event: Event,
    *,
    labels: Mapping[str, str] | None = None,
    no_cross_namespace_refs: bool = False,
) -> Match:
    """Flux's decision for one Alert, in Flux's order (suspend, sources, inclusion, exclusion, namespace)."""
    if alert.suspend:
        return Match.SUSPENDED
    if not severity_accepted(alert.severity, event.severity) or not any(
        source_matches(s, event, labels) for s in alert.sources
    ):
        return Match.NO_SOURCE
    if not message_included(alert, event.message):
        return Match.NOT_INCLUDED
    if message_excluded(alert, event.message):
        return Match.EXCLUDED
    if no_cross_namespace_refs and event.involved_object.namespace != alert.namespace:
        return Match.CROSS_NAMESPACE
    return Match.MATCHED


# ---- metadata ------------------------------------------------------------------------------------------


def object_group(event: Event) -> str:
    return split_api_version(event.involved_object.api_version)[0]


def controller_metadata(event: Event) -> dict[str, str]:
    """The controller's own metadata, unprefixed: our bus's plain keys, keys under the object's API group,
    and the event's revision (Flux carries it as ``<group>/revision``)."""
    group_prefix = f"{object_group(event)}/"
    out: dict[str, str] = {}
    for k, v in event.metadata.items():
        if k.startswith(EVENT_GROUP_PREFIX):
            continue
        if group_prefix != "/" and k.startswith(group_prefix):
            out[k.removeprefix(group_prefix)] = v
        elif "/" not in k:
            out[k] = v
    if event.revision and REVISION_KEY not in out:
        out[REVISION_KEY] = event.revision
    return out


@dataclass(frozen=True, slots=True)
class CombinedMetadata:
    metadata: dict[str, str]
    #: Keys set by more than one source, with the sources (Flux warns about these with an Event).
    conflicts: dict[str, list[str]]


def combine_metadata(alert: AlertSpec, event: Event) -> CombinedMetadata:
    """The notification's metadata, combined in RFC 0008's order; internal keys (token) left out."""
    layers: list[tuple[str, Mapping[str, str]]] = [
        (
            "involved object annotations",
            {
                k.removeprefix(EVENT_GROUP_PREFIX): v
                for k, v in event.metadata.items()
                if k.startswith(EVENT_GROUP_PREFIX)
            },
        ),
        ("Alert object .spec.eventMetadata", alert.event_metadata),
        ("Alert object .spec.summary", {SUMMARY_KEY: alert.summary} if alert.summary else {}),
        ("involved object controller metadata", controller_metadata(event)),
    ]
    metadata: dict[str, str] = {}
    sources: dict[str, list[str]] = {}
    for source, values in layers:
        for k, v in values.items():
            metadata[k] = v
            sources.setdefault(k, []).append(source)
    metadata.pop(TOKEN_KEY, None)
    conflicts = {k: s for k, s in sorted(sources.items()) if len(s) > 1 and k != TOKEN_KEY}
    return CombinedMetadata(metadata=metadata, conflicts=conflicts)
