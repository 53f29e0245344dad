"""The watches' rules, pure: when a watched object's change wakes the objects that follow it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gitops_mesh.reconcile import conditions as c
from gitops_mesh.watches import (
    appeared,
    applied_revision,
    artifact_revision,
    data_changed,
    is_ready_at_generation,
    new_revision,
    ref_key,
    wakes,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def source(revision: str | None, *, ready: bool = True, generation: int = 1, observed: int = 1) -> dict[str, Any]:
    o: dict[str, Any] = {
        "metadata": {"name": "repo", "namespace": "apps", "generation": generation},
        "status": {"observedGeneration": observed},
    }
    if revision is not None:
        o["status"]["artifact"] = {"revision": revision}
    if ready:
        c.mark_true(o, "Ready", "Succeeded", "stored", now=NOW)
    else:
        c.mark_false(o, "Ready", "GitOperationFailed", "remote hung up", now=NOW)
    return o


def test_a_new_artifact_revision_wakes() -> None:
    changed = new_revision(artifact_revision)
    assert changed(source("main@sha1:b"), source("main@sha1:a"))
    assert changed(source("main@sha1:a"), None)  # first seen (a relist, a restart)
    assert changed(source("main@sha1:a"), source(None))  # first artifact


def test_the_same_revision_wakes_only_when_it_becomes_ready() -> None:
    changed = new_revision(artifact_revision)
    assert not changed(source("main@sha1:a"), source("main@sha1:a"))  # a status-only update of ours
    assert changed(source("main@sha1:a"), source("main@sha1:a", ready=False))  # recovered
    assert not changed(source("main@sha1:a", ready=False), source("main@sha1:a"))  # failing now: nothing new


def test_no_revision_never_wakes() -> None:
    assert not new_revision(artifact_revision)(source(None), source("main@sha1:a"))
    assert not new_revision(artifact_revision)(source(None), None)


def test_the_same_rule_serves_dependencies_by_applied_revision() -> None:
    def ks(applied: str | None, ready: bool = True) -> dict[str, Any]:
        o = source(None, ready=ready)
        if applied:
            o["status"]["lastAppliedRevision"] = applied
        return o

    changed = new_revision(applied_revision)
    assert changed(ks("r2"), ks("r1"))
    assert changed(ks("r1"), ks("r1", ready=False))
    assert not changed(ks("r1"), ks("r1"))
    assert applied_revision(ks("r1")) == "r1"
    assert applied_revision(None) is None


def test_data_changed_ignores_metadata_only_updates() -> None:
    secret = {"metadata": {"name": "s", "resourceVersion": "1"}, "data": {"token": "YQ=="}}
    relabelled = {"metadata": {"name": "s", "resourceVersion": "2", "labels": {"x": "y"}}, "data": {"token": "YQ=="}}
    rotated = {"metadata": {"name": "s", "resourceVersion": "3"}, "data": {"token": "Yg=="}}
    assert data_changed(secret, None)
    assert not data_changed(relabelled, secret)
    assert data_changed(rotated, relabelled)
    assert data_changed({"metadata": {}, "binaryData": {"k": "AA=="}}, {"metadata": {}})


def test_appeared_is_a_first_sighting() -> None:
    provider = {"metadata": {"name": "p", "namespace": "apps", "resourceVersion": "2"}, "spec": {"type": "generic"}}
    assert appeared(provider, None)
    assert not appeared(provider, {**provider, "metadata": {**provider["metadata"], "resourceVersion": "1"}})


def test_a_deletion_wakes_only_the_follows_that_ask_for_deletions() -> None:
    secret = {"metadata": {"name": "s", "namespace": "apps"}, "data": {"token": "YQ=="}}
    # The informer hands a deletion the last state as both obj and old: no predicate can see news in it.
    assert not wakes("DELETED", secret, secret, when=data_changed, on_delete=False)
    assert wakes("DELETED", secret, secret, when=data_changed, on_delete=True)
    assert wakes("DELETED", secret, secret, when=appeared, on_delete=True)


def test_other_changes_are_the_predicate_s_to_judge() -> None:
    old = {"metadata": {"name": "s", "namespace": "apps"}, "data": {"token": "YQ=="}}
    new = {"metadata": {"name": "s", "namespace": "apps"}, "data": {"token": "Yg=="}}
    for on_delete in (False, True):
        assert wakes("ADDED", new, None, when=appeared, on_delete=on_delete)
        assert not wakes("MODIFIED", new, old, when=appeared, on_delete=on_delete)
        assert wakes("MODIFIED", new, old, when=data_changed, on_delete=on_delete)
        assert not wakes("MODIFIED", old, old, when=data_changed, on_delete=on_delete)


def test_ready_at_generation_is_the_one_readiness_rule() -> None:
    assert is_ready_at_generation(source("r"))
    assert not is_ready_at_generation(source("r", generation=2, observed=1))  # spec changed, not handled
    assert not is_ready_at_generation(source("r", ready=False))
    no_status = source("r")
    del no_status["status"]["observedGeneration"]
    assert not is_ready_at_generation(no_status)


def test_ref_key() -> None:
    assert ref_key("GitRepository", "apps", "repo") == "GitRepository/apps/repo"
