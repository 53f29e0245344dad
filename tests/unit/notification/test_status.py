"""Ready on Alerts and Providers: the spec-level problems and the condition they become (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gitops_mesh.reconcile import conditions as c
from notification_controller.status import alert_problem, provider_problem, with_ready
from tests.unit.notification.support import alert_object, provider_object

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"type": "generic", "address": "https://h/x"}, None),
        ({"type": "slack", "secretRef": {"name": "s"}}, None),
        ({"type": "github", "address": "git@github.com:a/b.git", "secretRef": {"name": "s"}}, None),
        ({"type": "telegram", "address": "https://h/x"}, "InvalidProviderConfig"),
        ({"type": "github", "address": "https://github.com/a/b"}, "InvalidProviderConfig"),
        ({"type": "generic"}, "InvalidProviderConfig"),
        ({"type": "generic", "address": "hooks.example.com/x"}, "InvalidProviderConfig"),
    ],
)
def test_provider_problem(spec: dict[str, Any], reason: str | None) -> None:
    problem = provider_problem(provider_object(**spec))
    assert (problem[0] if problem else None) == reason


def test_alert_problem() -> None:
    assert alert_problem(alert_object(), provider_exists=True) is None
    assert alert_problem(alert_object(), provider_exists=False) == (
        "ProviderNotFound",
        "Provider 'apps/p' does not exist",
    )
    bad = alert_problem(alert_object(exclusionList=["(x"]), provider_exists=True)
    assert bad is not None
    assert bad[0] == "InvalidConfig"
    assert "'(x'" in bad[1]


def test_with_ready_sets_the_condition_and_observed_generation() -> None:
    obj = provider_object()
    obj["metadata"]["generation"] = 3
    status = with_ready(obj, None, now=NOW)
    assert status["observedGeneration"] == 3
    [ready] = status["conditions"]
    assert (ready["type"], ready["status"], ready["reason"], ready["message"]) == (
        "Ready",
        "True",
        "Succeeded",
        "Initialized",
    )
    assert ready["lastTransitionTime"] == "2026-01-02T03:04:05Z"
    obj["status"] = status
    again = with_ready(obj, None, now=datetime(2027, 1, 1, tzinfo=UTC))
    assert again == status
    failed = with_ready(obj, ("InvalidConfig", "bad"), now=NOW)
    assert c.is_false({"status": failed}, "Ready")
