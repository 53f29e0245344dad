"""Events and objects for the notification-controller's unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gitops_mesh.bus.envelope import Event, EventKind, ObjectRef, Severity, build_event, event_from_dict
from gitops_mesh.kube.objects import KubeObject

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
KS_API = "kustomize.toolkit.fluxcd.io/v1"


def make_event(
    *,
    kind: str = "Kustomization",
    name: str = "podinfo",
    namespace: str = "apps",
    api_version: str = KS_API,
    severity: Severity = Severity.INFO,
    reason: str = "ReconciliationSucceeded",
    message: str = "Applied revision: main@sha1:abc",
    revision: str = "",
    metadata: dict[str, str] | None = None,
    event_id: str = "11111111-2222-3333-4444-555555555555",
    event_kind: str = EventKind.APPLIED,
    controller: str = "kustomize-controller",
) -> Event:
    return event_from_dict(
        build_event(
            kind=event_kind,
            controller=controller,
            instance="kc-0",
            involved_object=ObjectRef(api_version, kind, namespace, name, uid="0b1c2d3e-aaaa-bbbb-cccc-000000000001"),
            severity=severity,
            reason=reason,
            message=message,
            revision=revision,
            metadata=metadata,
            event_id=event_id,
            now=NOW,
        )
    )


def alert_object(name: str = "a", namespace: str = "apps", **spec: Any) -> KubeObject:
    spec.setdefault("providerRef", {"name": "p"})
    spec.setdefault("eventSources", [{"kind": "Kustomization", "name": "*"}])
    return {
        "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
        "kind": "Alert",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "spec": spec,
    }


def provider_object(
    name: str = "p", namespace: str = "apps", uid: str = "8f2e0c4a-1111-2222-3333-444444444444", **spec: Any
) -> KubeObject:
    spec.setdefault("type", "generic")
    return {
        "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
        "kind": "Provider",
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
        "spec": spec,
    }
