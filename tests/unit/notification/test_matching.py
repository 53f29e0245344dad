"""Alert x Event matching and metadata, rule by rule, as Flux's notification-controller decides."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_mesh.bus.envelope import Severity
from notification_controller.matching import (
    Match,
    alert_from_object,
    combine_metadata,
    match_alert,
    needs_labels,
)
from tests.unit.notification.support import alert_object, make_event

ERR = Severity.ERROR
INFO = Severity.INFO

# (case, alert spec, event overrides, labels, no_cross_namespace_refs, verdict)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, str] | None, bool, Match]] = [
    ("wildcard name", {}, {}, None, False, Match.MATCHED),
    ("exact name", {"eventSources": [{"kind": "Kustomization", "name": "podinfo"}]}, {}, None, False, Match.MATCHED),
    ("other name", {"eventSources": [{"kind": "Kustomization", "name": "other"}]}, {}, None, False, Match.NO_SOURCE),
    ("other kind", {"eventSources": [{"kind": "GitRepository", "name": "*"}]}, {}, None, False, Match.NO_SOURCE),
    ("namespace defaults to the alert's", {}, {"namespace": "other"}, None, False, Match.NO_SOURCE),
    (
        "explicit namespace",
        {"eventSources": [{"kind": "Kustomization", "name": "*", "namespace": "other"}]},
        {"namespace": "other"},
        None,
        False,
        Match.MATCHED,
    ),
    (
        "explicit namespace, event elsewhere",
        {"eventSources": [{"kind": "Kustomization", "name": "*", "namespace": "other"}]},
        {},
        None,
        False,
        Match.NO_SOURCE,
    ),
    (
        "second source matches",
        {"eventSources": [{"kind": "GitRepository", "name": "*"}, {"kind": "Kustomization", "name": "podinfo"}]},
        {},
        None,
        False,
        Match.MATCHED,
    ),
    ("no sources", {"eventSources": []}, {}, None, False, Match.NO_SOURCE),
    ("info alert takes errors", {}, {"severity": ERR}, None, False, Match.MATCHED),
    ("error alert takes errors", {"eventSeverity": "error"}, {"severity": ERR}, None, False, Match.MATCHED),
    ("error alert skips info", {"eventSeverity": "error"}, {"severity": INFO}, None, False, Match.NO_SOURCE),
    (
        "matchLabels satisfied",
        {"eventSources": [{"kind": "Kustomization", "name": "*", "matchLabels": {"team": "a"}}]},
        {},
        {"team": "a", "x": "y"},
        False,
        Match.MATCHED,
    ),
    (
        "matchLabels not satisfied",
        {"eventSources": [{"kind": "Kustomization", "name": "*", "matchLabels": {"team": "a"}}]},
        {},
        {"team": "b"},
        False,
        Match.NO_SOURCE,
    ),
    (
        "matchLabels on an object the cache does not know",
        {"eventSources": [{"kind": "Kustomization", "name": "*", "matchLabels": {"team": "a"}}]},
        {},
        None,
        False,
        Match.NO_SOURCE,
    ),
    (
        "matchLabels checked with a concrete name too",
        {"eventSources": [{"kind": "Kustomization", "name": "podinfo", "matchLabels": {"team": "a"}}]},
        {},
        {"team": "b"},
        False,
        Match.NO_SOURCE,
    ),
    (
        "empty matchLabels needs the object only",
        {"eventSources": [{"kind": "Kustomization", "name": "*", "matchLabels": {}}]},
        {},
        {},
        False,
        Match.MATCHED,
    ),
    (
        # As Flux: LabelSelectorAsSelector fails, the source matches nothing (even labels that would compare equal).
        "matchLabels Kubernetes refuses matches nothing",
        {"eventSources": [{"kind": "Kustomization", "name": "*", "matchLabels": {"team": "a b"}}]},
        {},
        {"team": "a b"},
        False,
        Match.NO_SOURCE,
    ),
    ("suspended", {"suspend": True}, {}, None, False, Match.SUSPENDED),
    ("inclusion matches", {"inclusionList": [r"^Applied"]}, {}, None, False, Match.MATCHED),
    ("inclusion searches unanchored", {"inclusionList": [r"sha1:ab"]}, {}, None, False, Match.MATCHED),
    ("inclusion misses", {"inclusionList": [r"^Health"]}, {}, None, False, Match.NOT_INCLUDED),
    ("any inclusion entry", {"inclusionList": [r"^Health", r"revision"]}, {}, None, False, Match.MATCHED),
    ("invalid inclusion admits nothing", {"inclusionList": [r"(unclosed"]}, {}, None, False, Match.NOT_INCLUDED),
    ("exclusion matches", {"exclusionList": [r"main@"]}, {}, None, False, Match.EXCLUDED),
    ("exclusion misses", {"exclusionList": [r"^Health"]}, {}, None, False, Match.MATCHED),
    ("invalid exclusion excludes nothing", {"exclusionList": [r"[bad"]}, {}, None, False, Match.MATCHED),
    (
        "exclusion wins over inclusion",
        {"inclusionList": ["Applied"], "exclusionList": ["revision"]},
        {},
        None,
        False,
        Match.EXCLUDED,
    ),
    (
        "cross-namespace allowed by default",
        {"eventSources": [{"kind": "Kustomization", "name": "*", "namespace": "other"}]},
        {"namespace": "other"},
        None,
        False,
        Match.MATCHED,
    ),
    (
        "cross-namespace refused by --no-cross-namespace-refs",
        {"eventSources": [{"kind": "Kustomization", "name": "*", "namespace": "other"}]},
        {"namespace": "other"},
        None,
        True,
        Match.CROSS_NAMESPACE,
    ),
    ("same namespace under --no-cross-namespace-refs", {}, {}, None, True, Match.MATCHED),
]


@pytest.mark.parametrize(
    ("spec", "event_args", "labels", "no_cross", "verdict"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_match_alert(
    spec: dict[str, Any], event_args: dict[str, Any], labels: dict[str, str] | None, no_cross: bool, verdict: Match
) -> None:
    alert = alert_from_object(alert_object(**spec))
    event = make_event(**event_args)
    assert match_alert(alert, event, labels=labels, no_cross_namespace_refs=no_cross) is verdict


def test_needs_labels_only_when_a_selecting_source_has_match_labels() -> None:
    by_labels = alert_from_object(
        alert_object(eventSources=[{"kind": "Kustomization", "name": "*", "matchLabels": {"a": "b"}}])
    )
    assert needs_labels(by_labels, make_event())
    assert not needs_labels(by_labels, make_event(kind="GitRepository"))
    assert not needs_labels(alert_from_object(alert_object()), make_event())
    error_only = alert_from_object(
        alert_object(eventSeverity="error", eventSources=[{"kind": "Kustomization", "name": "*", "matchLabels": {}}])
    )
    assert not needs_labels(error_only, make_event(severity=INFO))


def test_alert_from_object_defaults_and_invalid_patterns() -> None:
    alert = alert_from_object(alert_object(inclusionList=["ok", "(bad"], exclusionList=["[bad"]))
    assert alert.severity is Severity.INFO
    assert alert.provider == "p"
    assert alert.sources[0].namespace == "apps"
    assert alert.sources[0].match_labels is None
    assert alert.invalid_patterns == ("(bad", "[bad")
    assert [p.pattern for p in alert.inclusion] == ["ok"]


def test_metadata_precedence_as_rfc_0008() -> None:
    alert = alert_from_object(
        alert_object(eventMetadata={"env": "prod", "summary": "from-metadata", "revision": "alert"}, summary="sum")
    )
    event = make_event(
        revision="main@sha1:" + "a" * 40,
        metadata={
            "event.toolkit.fluxcd.io/env": "annotation",
            "event.toolkit.fluxcd.io/owner": "team-a",
            "kustomize.toolkit.fluxcd.io/originRevision": "v1@sha1:" + "b" * 40,
            "seq": "3",
            "token": "internal",
            "other.group/ignored": "x",
        },
    )
    combined = combine_metadata(alert, event)
    assert combined.metadata == {
        "env": "prod",
        "owner": "team-a",
        "summary": "sum",
        "revision": "main@sha1:" + "a" * 40,
        "originRevision": "v1@sha1:" + "b" * 40,
        "seq": "3",
    }
    assert set(combined.conflicts) == {"env", "revision", "summary"}
    assert combined.conflicts["env"] == ["involved object annotations", "Alert object .spec.eventMetadata"]


def test_metadata_without_extras_is_the_revision_alone() -> None:
    combined = combine_metadata(alert_from_object(alert_object()), make_event(revision="sha1:abc"))
    assert combined.metadata == {"revision": "sha1:abc"}
    assert combined.conflicts == {}
    assert combine_metadata(alert_from_object(alert_object()), make_event()).metadata == {}
