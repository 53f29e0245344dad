"""GitRepository's decisions without a git server: no-op, re-fetch, includes, and the status each step leaves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gitops_mesh.bus.envelope import Artifact, EventKind
from gitops_mesh.errors import DependencyNotReady, InvalidSpec
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from source_controller.git import GitOperationFailed, SignatureVerificationFailed
from source_controller.git.remote import sparse_directories
from source_controller.gitrepository import included_repositories
from source_controller.gitrepository_plan import (
    FETCHED,
    NOT_VERIFIED,
    Fetch,
    Observed,
    fetch_failed,
    included_artifacts,
    is_up_to_date,
    observed_config,
    plan,
    stored,
    verification_failed,
    verification_secret,
    verified,
)
from source_controller.status_edits import Done

NOW = datetime(2026, 1, 1, tzinfo=UTC)
OLD = "main@sha1:" + "a" * 40
NEW = "main@sha1:" + "b" * 40


def artifact(revision: str = OLD, digest: str = "sha256:aa") -> dict[str, Any]:
    return {
        "path": f"gitrepository/apps/app/{revision[-40:]}.tar.gz",
        "url": f"http://storage/gitrepository/apps/app/{revision[-40:]}.tar.gz",
        "revision": revision,
        "digest": digest,
        "lastUpdateTime": "2026-01-01T00:00:00Z",
        "size": 123,
    }


def repository(status: dict[str, Any] | None = None, **spec: Any) -> KubeObject:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "app", "namespace": "apps", "generation": 4},
        "spec": {"url": "https://git.example/app.git", "interval": "5m", "ref": {"branch": "main"}, **spec},
        "status": status if status is not None else {},
    }


def ready_repository(name: str, art: dict[str, Any] | None, generation: int = 1, observed: int = 1) -> KubeObject:
    obj = repository({"observedGeneration": observed})
    obj["metadata"] = {"name": name, "namespace": "apps", "generation": generation}
    if art is not None:
        obj["status"]["artifact"] = art
    c.mark_true(obj, c.ConditionType.READY, "Succeeded", "stored", now=NOW)
    return obj


# --- observed* -----------------------------------------------------------------------------------------


def test_observed_config_records_only_the_content_shaping_fields_that_are_set() -> None:
    assert observed_config({"url": "u", "ref": {"branch": "main"}, "recurseSubmodules": False}) == {}
    include = [{"repository": {"name": "lib"}, "toPath": "vendor/lib"}]
    assert observed_config(
        {"ignore": "/docs\n", "recurseSubmodules": True, "sparseCheckout": ["deploy"], "include": include}
    ) == {
        "observedIgnore": "/docs\n",
        "observedRecurseSubmodules": True,
        "observedSparseCheckout": ["deploy"],
        "observedInclude": include,
    }
    # An empty ignore is still a choice (it replaces the default exclusions): recorded.
    assert observed_config({"ignore": ""}) == {"observedIgnore": ""}


# --- the plan ------------------------------------------------------------------------------------------


def test_the_stored_artifact_of_the_resolved_revision_is_a_no_op() -> None:
    obj = repository({"artifact": artifact(OLD)})
    c.mark_true(obj, c.ConditionType.FETCH_FAILED, "GitOperationFailed", "earlier", now=NOW)
    step = plan(obj, Observed(OLD, artifact_stored=True))
    assert isinstance(step, Done)
    assert step.edit.deletes == (c.ConditionType.FETCH_FAILED, c.ConditionType.ARTIFACT_OUTDATED)
    assert step.edit.marks == ()
    assert step.edit.writes == {}
    assert step.outcome.message == f"stored artifact for revision '{OLD}'"
    assert step.outcome.requeue_after == 300.0
    assert step.outcome.announce == ()
    step.apply(obj, now=NOW)
    assert not c.has(obj, c.ConditionType.FETCH_FAILED)
    assert obj["status"]["artifact"] == artifact(OLD)


def test_a_new_revision_is_fetched_and_streamed_when_nothing_needs_files() -> None:
    step = plan(repository({"artifact": artifact(OLD)}), Observed(NEW, artifact_stored=True))
    assert step == Fetch(streamed=True, recurse_submodules=False, sparse=())


def test_the_same_revision_is_fetched_again_when_its_file_is_gone() -> None:
    step = plan(repository({"artifact": artifact(OLD)}), Observed(OLD, artifact_stored=False))
    assert isinstance(step, Fetch)


def test_a_first_reconcile_fetches() -> None:
    assert isinstance(plan(repository(), Observed(OLD, artifact_stored=False)), Fetch)


@pytest.mark.parametrize(
    ("spec", "status"),
    [
        ({"ignore": "/docs\n"}, {}),
        ({"ignore": "/docs\n"}, {"observedIgnore": "/tests\n"}),
        ({}, {"observedIgnore": "/docs\n"}),
        ({"recurseSubmodules": True}, {}),
        ({}, {"observedRecurseSubmodules": True}),
        ({"sparseCheckout": ["deploy"]}, {"observedSparseCheckout": ["apps"]}),
        ({"include": [{"repository": {"name": "lib"}}]}, {}),
    ],
)
def test_a_changed_content_shaping_spec_refetches_the_same_revision(
    spec: dict[str, Any], status: dict[str, Any]
) -> None:
    obj = repository({"artifact": artifact(OLD), **status}, **spec)
    includes = [artifact("main@sha1:" + "c" * 40, "sha256:cc")] if spec.get("include") else []
    assert not is_up_to_date(obj["status"], OLD, obj["spec"], includes)
    assert isinstance(plan(obj, Observed(OLD, True, includes)), Fetch)


def test_an_unchanged_content_shaping_spec_is_up_to_date() -> None:
    spec = {"ignore": "/docs\n", "sparseCheckout": ["deploy"]}
    obj = repository({"artifact": artifact(OLD), **observed_config(spec)}, **spec)
    assert isinstance(plan(obj, Observed(OLD, True)), Done)


def test_an_included_repository_with_a_new_artifact_refetches() -> None:
    include = [{"repository": {"name": "lib"}}]
    lib_old, lib_new = artifact(OLD, "sha256:11"), artifact(NEW, "sha256:22")
    obj = repository(
        {"artifact": artifact(OLD), "observedInclude": include, "includedArtifacts": [lib_old]}, include=include
    )
    assert isinstance(plan(obj, Observed(OLD, True, [lib_old])), Done)
    step = plan(obj, Observed(OLD, True, [lib_new]))
    assert step == Fetch(streamed=False, recurse_submodules=False, sparse=())


def test_verify_asked_refetches_until_the_commit_is_verified() -> None:
    verify = {"mode": "HEAD", "secretRef": {"name": "keys"}}
    obj = repository({"artifact": artifact(OLD)}, verify=verify)
    assert isinstance(plan(obj, Observed(OLD, True)), Fetch)
    c.mark_true(obj, c.ConditionType.SOURCE_VERIFIED, "Succeeded", "verified", now=NOW)
    assert isinstance(plan(obj, Observed(OLD, True)), Done)


@pytest.mark.parametrize(
    ("spec", "fetch"),
    [
        ({"recurseSubmodules": True}, Fetch(streamed=False, recurse_submodules=True, sparse=())),
        (
            {"sparseCheckout": ["deploy", "charts"]},
            Fetch(streamed=False, recurse_submodules=False, sparse=("deploy", "charts")),
        ),
        ({"include": [{"repository": {"name": "lib"}}]}, Fetch(streamed=False, recurse_submodules=False, sparse=())),
    ],
)
def test_include_submodules_and_sparse_checkout_need_a_worktree(spec: dict[str, Any], fetch: Fetch) -> None:
    assert plan(repository(**spec), Observed(NEW, False)) == fetch


@pytest.mark.parametrize(
    ("directory", "why"),
    [
        ("../../../etc", "'..' is not allowed"),
        ("deploy/../../etc/passwd", "'..' is not allowed"),
        ("/../etc", "'..' is not allowed"),
        ("./", "not a directory of the repository"),
        ("", "not a directory of the repository"),
    ],
)
def test_a_sparse_directory_outside_the_repository_is_an_invalid_spec(directory: str, why: str) -> None:
    # whether such a path 'exists' was answered from the controller's own file system
    obj = repository({"artifact": artifact(OLD)}, sparseCheckout=["deploy", directory])
    with pytest.raises(InvalidSpec) as caught:
        plan(obj, Observed(OLD, artifact_stored=True))
    assert str(caught.value) == f"spec.sparseCheckout: invalid directory {directory!r}: {why}"


def test_sparse_directories_are_relative_to_the_repository_root_as_in_flux() -> None:
    assert sparse_directories(["/deploy/", "./apps", "infra//base", ":(glob)*"]) == (
        "deploy",
        "apps",
        "infra/base",
        ":(glob)*",
    )


# --- includes ------------------------------------------------------------------------------------------


def test_included_artifacts_come_in_spec_order_from_ready_repositories() -> None:
    lib, docs = artifact(OLD, "sha256:11"), artifact(NEW, "sha256:22")
    cache = {("apps", "lib"): ready_repository("lib", lib), ("apps", "docs"): ready_repository("docs", docs)}
    spec = {"include": [{"repository": {"name": "docs"}}, {"repository": {"name": "lib"}}]}
    assert included_artifacts("apps", spec, lambda ns, name: cache.get((ns, name))) == [docs, lib]
    assert included_artifacts("apps", {}, lambda ns, name: None) == []


def test_a_missing_included_repository_is_waited_for() -> None:
    with pytest.raises(DependencyNotReady) as raised:
        included_artifacts("apps", {"include": [{"repository": {"name": "lib"}}]}, lambda ns, name: None)
    assert str(raised.value) == "included GitRepository 'apps/lib' not found"


@pytest.mark.parametrize(
    "included",
    [
        ready_repository("lib", None),  # Ready, but no artifact
        ready_repository("lib", artifact(), generation=2, observed=1),  # Ready for an older spec
    ],
)
def test_an_included_repository_without_a_current_artifact_is_waited_for(included: KubeObject) -> None:
    with pytest.raises(DependencyNotReady) as raised:
        included_artifacts("apps", {"include": [{"repository": {"name": "lib"}}]}, lambda ns, name: included)
    assert str(raised.value) == "included GitRepository 'apps/lib' has no artifact yet"
    assert raised.value.reason == "DependencyNotReady"


def test_the_include_index_names_the_included_repositories() -> None:
    obj = repository(include=[{"repository": {"name": "lib"}}, {"repository": {}}, {"repository": {"name": "docs"}}])
    assert included_repositories(obj) == ["GitRepository/apps/lib", "GitRepository/apps/docs"]


# --- after each step -----------------------------------------------------------------------------------


def test_a_failed_fetch_is_fetch_failed_with_the_git_reason() -> None:
    obj = repository()
    fetch_failed(GitOperationFailed("unable to reach 127.0.0.1:9")).apply(obj, now=NOW)
    assert c.is_true(obj, c.ConditionType.FETCH_FAILED)
    assert c.get_reason(obj, c.ConditionType.FETCH_FAILED) == "GitOperationFailed"
    assert c.get_message(obj, c.ConditionType.FETCH_FAILED) == "unable to reach 127.0.0.1:9"
    FETCHED.apply(obj, now=NOW)
    assert not c.has(obj, c.ConditionType.FETCH_FAILED)


def test_verification_verdicts() -> None:
    obj = repository()
    verified("verified signature of commit 'bbbb' with key 'K'").apply(obj, now=NOW)
    assert c.is_true(obj, c.ConditionType.SOURCE_VERIFIED)
    assert c.get_reason(obj, c.ConditionType.SOURCE_VERIFIED) == "Succeeded"
    assert c.get_message(obj, c.ConditionType.SOURCE_VERIFIED) == "verified signature of commit 'bbbb' with key 'K'"
    verification_failed(SignatureVerificationFailed("no signature", reason="InvalidCommitSignature")).apply(
        obj, now=NOW
    )
    assert c.is_false(obj, c.ConditionType.SOURCE_VERIFIED)
    assert c.get_reason(obj, c.ConditionType.SOURCE_VERIFIED) == "InvalidCommitSignature"
    assert c.get_message(obj, c.ConditionType.SOURCE_VERIFIED) == "no signature"
    NOT_VERIFIED.apply(obj, now=NOW)
    assert not c.has(obj, c.ConditionType.SOURCE_VERIFIED)


def test_verify_needs_its_secret() -> None:
    assert verification_secret({"mode": "HEAD", "secretRef": {"name": "keys"}}) == "keys"
    with pytest.raises(InvalidSpec) as raised:
        verification_secret({"mode": "HEAD"})
    assert str(raised.value) == "spec.verify.secretRef is required to verify signatures"


def test_a_stored_artifact_is_recorded_with_its_spec_and_announced_once() -> None:
    include = [{"repository": {"name": "lib"}, "toPath": "lib"}]
    lib = artifact(OLD, "sha256:11")
    obj = repository(
        {"artifact": artifact(OLD), "observedSparseCheckout": ["old"], "observedIgnore": "/x\n"},
        ignore="/docs\n",
        include=include,
    )
    c.mark_true(obj, c.ConditionType.STORAGE_OPERATION_FAILED, "ArchiveOperationFailed", "disk full", now=NOW)
    c.mark_true(obj, c.ConditionType.ARTIFACT_OUTDATED, "NewRevision", "new", now=NOW)
    new = artifact(NEW, "sha256:bb")
    done = stored(obj, NEW, new, [lib])

    assert done.outcome.message == f"stored artifact for revision '{NEW}'"
    assert done.outcome.requeue_after == 300.0
    [event] = done.outcome.announce
    assert (event.kind, event.reason, event.message) == (
        EventKind.ARTIFACT_READY,
        "NewArtifact",
        f"stored artifact for revision '{NEW}'",
    )
    assert event.revision == NEW
    assert event.artifact == Artifact(url=new["url"], digest="sha256:bb", revision=NEW, size=123)

    done.apply(obj, now=NOW)
    status = obj["status"]
    assert status["artifact"] == new
    assert status["observedIgnore"] == "/docs\n"
    assert status["observedInclude"] == include
    assert status["includedArtifacts"] == [lib]
    assert "observedSparseCheckout" not in status
    assert "observedRecurseSubmodules" not in status
    assert c.is_true(obj, c.ConditionType.ARTIFACT_IN_STORAGE)
    assert c.get_reason(obj, c.ConditionType.ARTIFACT_IN_STORAGE) == "Succeeded"
    assert c.get_message(obj, c.ConditionType.ARTIFACT_IN_STORAGE) == f"stored artifact for revision '{NEW}'"
    assert not c.has(obj, c.ConditionType.STORAGE_OPERATION_FAILED)
    assert not c.has(obj, c.ConditionType.ARTIFACT_OUTDATED)


def test_restoring_the_same_revision_announces_nothing_and_drops_stale_includes() -> None:
    obj = repository({"artifact": artifact(OLD), "includedArtifacts": [artifact(NEW)], "observedInclude": [{}]})
    done = stored(obj, OLD, artifact(OLD, "sha256:a2"))
    assert done.outcome.announce == ()
    assert set(done.edit.drops) == {
        "observedIgnore",
        "observedRecurseSubmodules",
        "observedSparseCheckout",
        "observedInclude",
        "includedArtifacts",
    }
    done.apply(obj, now=NOW)
    assert "includedArtifacts" not in obj["status"]
    assert "observedInclude" not in obj["status"]
    assert obj["status"]["artifact"]["digest"] == "sha256:a2"
