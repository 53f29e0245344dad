"""conditions: Flux's set rules (transition time, observed generation, order, polarity) on plain dicts."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.conditions import Condition, ConditionType, Reason

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def obj(generation: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": "podinfo", "namespace": "flux-system", "generation": generation}}


def test_mark_true_creates_status_and_stamps_everything() -> None:
    o = obj(generation=3)
    c.mark_true(o, ConditionType.READY, Reason.SUCCEEDED, "stored artifact", now=at(0.7))
    assert o["status"]["conditions"] == [
        {
            "type": "Ready",
            "status": "True",
            "observedGeneration": 3,
            "lastTransitionTime": "2024-01-01T00:00:00Z",
            "reason": "Succeeded",
            "message": "stored artifact",
        }
    ]


def test_enum_values_are_stored_as_plain_strings() -> None:
    # yaml.safe_dump and equality with API responses need str, not StrEnum subclasses.
    o = obj()
    c.mark_false(o, ConditionType.READY, Reason.BUILD_FAILED, "x", now=T0)
    cond = o["status"]["conditions"][0]
    assert all(type(cond[k]) is str for k in ("type", "status", "reason", "message", "lastTransitionTime"))


def test_times_are_utc_truncated_to_the_second() -> None:
    assert c.format_time(datetime(2024, 5, 6, 7, 8, 9, 999999, tzinfo=UTC)) == "2024-05-06T07:08:09Z"
    assert c.format_time(datetime(2024, 5, 6, 7, 8, 9)) == "2024-05-06T07:08:09Z"
    cet = timezone(timedelta(hours=2))
    assert c.format_time(datetime(2024, 5, 6, 9, 8, 9, tzinfo=cet)) == "2024-05-06T07:08:09Z"


def test_same_state_keeps_transition_time_but_takes_the_new_generation() -> None:
    o = obj(generation=1)
    c.mark_true(o, "Ready", "Succeeded", "ok", now=at(0))
    o["metadata"]["generation"] = 2
    c.mark_true(o, "Ready", "Succeeded", "ok", now=at(60))
    ready = c.get(o, "Ready")
    assert ready is not None
    assert ready["lastTransitionTime"] == "2024-01-01T00:00:00Z"
    assert ready["observedGeneration"] == 2


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [("False", "Succeeded", "ok"), ("True", "ReconciliationSucceeded", "ok"), ("True", "Succeeded", "other")],
    ids=["status", "reason", "message"],
)
def test_a_change_of_status_reason_or_message_moves_transition_time(status: str, reason: str, message: str) -> None:
    o = obj()
    c.mark_true(o, "Healthy", "Succeeded", "ok", now=at(0))
    cond: Condition = {
        "type": "Healthy",
        "status": status,
        "lastTransitionTime": "",
        "reason": reason,
        "message": message,
    }
    c.set_condition(o, cond, now=at(60))
    got = c.get(o, "Healthy")
    assert got is not None
    assert got["lastTransitionTime"] == "2024-01-01T00:01:00Z"


def test_a_given_transition_time_survives_first_insertion_only() -> None:
    conds: list[Condition] = []
    mirrored: Condition = {
        "type": "Ready",
        "status": "True",
        "lastTransitionTime": "2023-01-01T00:00:00Z",
        "reason": "Succeeded",
        "message": "",
    }
    c.set_condition(conds, mirrored, now=T0, generation=4)
    assert conds[0]["lastTransitionTime"] == "2023-01-01T00:00:00Z"
    assert conds[0]["observedGeneration"] == 4


def test_a_bare_list_needs_an_explicit_generation() -> None:
    conds: list[Condition] = []
    with pytest.raises(TypeError):
        c.mark_true(conds, "Ready", "Succeeded", now=T0)
    c.mark_true(conds, "Ready", "Succeeded", now=T0, generation=7)
    assert conds[0]["observedGeneration"] == 7


def test_order_is_stalled_reconciling_ready_then_by_type() -> None:
    o = obj()
    for t in ("SourceVerified", "Ready", "ArtifactInStorage", "Healthy"):
        c.mark_true(o, t, "Succeeded", now=T0)
    c.mark_true(o, "Reconciling", "Progressing", now=T0)
    c.mark_true(o, "Stalled", "InvalidSpec", now=T0)
    types = [x["type"] for x in o["status"]["conditions"]]
    assert types == ["Stalled", "Reconciling", "Ready", "ArtifactInStorage", "Healthy", "SourceVerified"]


@pytest.mark.parametrize("ctype", sorted(c.NEGATIVE_POLARITY))
def test_negative_polarity_conditions_exist_only_while_true(ctype: str) -> None:
    o = obj()
    c.mark_true(o, ctype, "Failed", "boom", now=T0)
    assert c.is_true(o, ctype)
    c.mark_false(o, ctype, "Succeeded", now=at(1))
    assert not c.has(o, ctype)
    c.mark_unknown(o, ctype, "Progressing", now=at(2))
    assert not c.has(o, ctype)


def test_positive_conditions_can_be_false_or_unknown() -> None:
    o = obj()
    c.mark_false(o, "Ready", "Failed", now=T0)
    assert c.is_false(o, "Ready")
    c.mark_unknown(o, "Ready", "Progressing", now=T0)
    assert c.is_unknown(o, "Ready")


def test_reconciling_and_stalled_exclude_each_other() -> None:
    o = obj()
    c.mark_reconciling(o, Reason.PROGRESSING, "fetching", now=T0)
    c.mark_stalled(o, "InvalidSpec", "bad url", now=at(1))
    assert c.is_stalled(o)
    assert not c.has(o, "Reconciling")
    c.mark_reconciling(o, Reason.PROGRESSING, "again", now=at(2))
    assert c.is_reconciling(o)
    assert not c.has(o, "Stalled")


def test_getters_on_objects_without_status() -> None:
    o = obj()
    assert c.get(o, "Ready") is None
    assert not c.has(o, "Ready")
    assert not c.is_true(o, "Ready")
    assert not c.is_false(o, "Ready")
    assert c.is_unknown(o, "Ready")  # absent counts as Unknown, as in Flux
    assert c.get_reason(o, "Ready") == ""
    assert c.get_message(o, "Ready") == ""
    assert not c.delete(o, "Ready")
    assert "status" not in o  # reading and deleting never create a status


def test_get_reason_message_and_delete() -> None:
    o = obj()
    c.mark_false(o, "Ready", Reason.ARTIFACT_FAILED, "no artifact", now=T0)
    c.mark_true(o, "Healthy", Reason.SUCCEEDED, now=T0)
    assert c.get_reason(o, "Ready") == "ArtifactFailed"
    assert c.get_message(o, "Ready") == "no artifact"
    assert c.delete(o, "Ready")
    assert not c.delete(o, "Ready")
    assert [x["type"] for x in o["status"]["conditions"]] == ["Healthy"]


def test_is_ready_needs_ready_true_and_no_reconciling_or_stalled() -> None:
    o = obj()
    c.mark_true(o, "Ready", "Succeeded", now=T0)
    assert c.is_ready(o)
    c.mark_reconciling(o, "Progressing", now=T0)
    assert not c.is_ready(o)
    c.mark_stalled(o, "InvalidSpec", now=T0)
    assert not c.is_ready(o)


def test_flux_vocabulary() -> None:
    assert {str(t) for t in ConditionType} >= {
        "Ready",
        "Reconciling",
        "Stalled",
        "Healthy",
        "ArtifactInStorage",
        "ArtifactOutdated",
        "SourceVerified",
        "FetchFailed",
        "BuildFailed",
        "StorageOperationFailed",
    }
    assert {str(r) for r in Reason} >= {
        "Succeeded",
        "Failed",
        "Progressing",
        "ProgressingWithRetry",
        "Suspended",
        "DependencyNotReady",
        "ArtifactFailed",
        "BuildFailed",
        "HealthCheckFailed",
        "PruneFailed",
        "ReconciliationSucceeded",
        "ReconciliationFailed",
    }


# -- properties: a random history of marks against a model of Flux's rules

TYPES = ["Ready", "Healthy", "Stalled", "Reconciling", "FetchFailed", "ArtifactInStorage"]
STATUSES = ["True", "False", "Unknown"]


def flux_order(ctype: str) -> tuple[int, str]:
    weights = {"Stalled": 0, "Reconciling": 1, "Ready": 2}
    return (weights[ctype], "") if ctype in weights else (3, ctype)


mark = st.tuples(
    st.sampled_from(TYPES),
    st.sampled_from(STATUSES),
    st.sampled_from(["Succeeded", "Failed"]),
    st.sampled_from(["", "one", "two"]),
    st.integers(min_value=0, max_value=3),  # seconds since the previous mark
    st.booleans(),  # whether the generation moves on first
)


@given(st.lists(mark, max_size=40))
def test_transition_time_follows_flux_rules(history: list[tuple[str, str, str, str, int, bool]]) -> None:
    o = obj(generation=1)
    now = T0
    model: dict[str, tuple[tuple[str, str, str], datetime, int]] = {}  # type -> (state, changed at, generation)
    for ctype, status, reason, message, step, bump in history:
        now += timedelta(seconds=step)
        if bump:
            o["metadata"]["generation"] += 1
        gen = o["metadata"]["generation"]
        before = copy.deepcopy(c.get(o, ctype))
        cond: Condition = {
            "type": ctype,
            "status": status,
            "lastTransitionTime": "",
            "reason": reason,
            "message": message,
        }
        c.set_condition(o, cond, now=now)

        if ctype in c.NEGATIVE_POLARITY and status != "True":
            model.pop(ctype, None)
        else:
            state = (status, reason, message)
            prev = model.get(ctype)
            changed_at = prev[1] if prev is not None and prev[0] == state else now
            model[ctype] = (state, changed_at, gen)
            after = c.get(o, ctype)
            assert after is not None
            if before is not None and (before["status"], before["reason"], before["message"]) == state:
                assert after["lastTransitionTime"] == before["lastTransitionTime"]

        conds = c.conditions_of(o)
        assert {x["type"] for x in conds} == set(model)
        for x in conds:
            state, changed_at, g = model[x["type"]]
            assert (x["status"], x["reason"], x["message"]) == state
            assert x["lastTransitionTime"] == c.format_time(changed_at)
            assert x["observedGeneration"] == g
            assert x["type"] not in c.NEGATIVE_POLARITY or x["status"] == "True"
        assert [x["type"] for x in conds] == sorted((x["type"] for x in conds), key=flux_order)
