"""ArtifactGenerator's pure decisions: the spec checked, sources observed and digested, drift, the ExternalArtifacts."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from gitops_mesh.errors import InvalidSpec, TransientError
from gitops_mesh.kube.objects import KubeObject
from source_controller.artifactgenerator_plan import (
    GENERATOR_LABEL,
    ORIGIN_REVISION,
    artifact_metadata,
    artifact_revision,
    changed,
    claim_problem,
    drift,
    external_artifact,
    is_disabled,
    needs_apply,
    new_artifact,
    observe_sources,
    orphans,
    output_refs,
    source_refs,
    sources_digest,
    succeeded,
    validate,
)

UID = "0b5e-uid"


def generator(**spec: Any) -> KubeObject:
    body: dict[str, Any] = {
        "sources": [{"alias": "repo", "kind": "GitRepository", "name": "monorepo"}],
        "artifacts": [
            {"name": "apps", "originRevision": "@repo", "copy": [{"from": "@repo/apps/**", "to": "@artifact/"}]},
            {"name": "infra", "copy": [{"from": "@repo/infrastructure/**", "to": "@artifact/"}]},
        ],
    }
    body.update(spec)
    return {
        "apiVersion": "source.extensions.fluxcd.io/v1beta1",
        "kind": "ArtifactGenerator",
        "metadata": {"name": "split", "namespace": "apps", "uid": UID, "generation": 2},
        "spec": body,
    }


def gitrepo(revision: str = "main@sha1:abc", digest: str = "sha256:" + "1" * 64) -> KubeObject:
    return {
        "kind": "GitRepository",
        "metadata": {"name": "monorepo", "namespace": "apps"},
        "status": {
            "artifact": {
                "revision": revision,
                "digest": digest,
                "url": "http://sc/gitrepository/apps/monorepo/abc.tar.gz",
                "path": "gitrepository/apps/monorepo/abc.tar.gz",
            }
        },
    }


def lookup_of(*objs: KubeObject) -> Any:
    by_key = {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}
    return lambda kind, ns, name: by_key.get((kind, ns, name))


def test_a_valid_spec_is_parsed_with_its_aliases() -> None:
    spec = validate(generator())
    assert [s.key for s in spec.sources] == ["GitRepository/apps/monorepo"]
    assert [(o.name, o.origin_revision, o.revision) for o in spec.outputs] == [("apps", "repo", ""), ("infra", "", "")]
    assert spec.outputs[0].copy[0].pattern == "apps/**"


@pytest.mark.parametrize(
    ("spec", "reason", "message"),
    [
        (
            {"sources": [{"alias": "a", "kind": "GitRepository", "name": "x"}] * 2},
            "ValidationFailed",
            "duplicate source alias 'a' found",
        ),
        (
            {"artifacts": [{"name": "x", "copy": [{"from": "@repo/a", "to": "@artifact/"}]}] * 2},
            "ValidationFailed",
            "duplicate artifact name 'x' found",
        ),
        (
            {"artifacts": [{"name": "Bad_Name", "copy": [{"from": "@repo/a", "to": "@artifact/"}]}]},
            "ValidationFailed",
            "not a valid Kubernetes object name",
        ),
        (
            {"artifacts": [{"name": "x", "revision": "@nope", "copy": [{"from": "@repo/a", "to": "@artifact/"}]}]},
            "ValidationFailed",
            "artifact x revision source alias 'nope' not found",
        ),
        (
            {"artifacts": [{"name": "x", "copy": [{"from": "@other/a", "to": "@artifact/"}]}]},
            "ValidationFailed",
            "source alias 'other' not found",
        ),
        (
            {"artifacts": [{"name": "x", "copy": [{"from": "@repo/../b", "to": "@artifact/"}]}]},
            "ValidationFailed",
            "must stay inside its root",
        ),
    ],
)
def test_an_invalid_spec_stalls_with_flux_s_reason(spec: dict[str, Any], reason: str, message: str) -> None:
    with pytest.raises(InvalidSpec, match=message) as e:
        validate(generator(**spec))
    assert e.value.reason == reason


def test_cross_namespace_sources_are_refused_under_the_lockdown() -> None:
    obj = generator(sources=[{"alias": "repo", "kind": "GitRepository", "name": "monorepo", "namespace": "infra"}])
    assert validate(obj, cross_namespace=True).sources[0].namespace == "infra"
    with pytest.raises(InvalidSpec, match="cross-namespace reference to source GitRepository/infra/monorepo") as e:
        validate(obj, cross_namespace=False)
    assert e.value.reason == "AccessDenied"


def test_sources_missing_or_without_artifact_fail_the_fetch_and_wait() -> None:
    spec = validate(generator())
    with pytest.raises(TransientError, match="GitRepository 'apps/monorepo' not found") as e:
        observe_sources(spec, lookup_of(), retry_after=7)
    assert (e.value.reason, e.value.retry_after) == ("SourceFetchFailed", 7)
    unready = gitrepo()
    del unready["status"]
    with pytest.raises(TransientError, match="is not ready"):
        observe_sources(spec, lookup_of(unready), retry_after=7)


def test_sources_digest_is_source_watcher_s_formula() -> None:
    observed = observe_sources(validate(generator()), lookup_of(gitrepo()), retry_after=1)
    a = observed["repo"]
    text = f"repo=[digest={a.digest},revision={a.revision},url={a.url}]"
    assert sources_digest(observed) == "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    other = observe_sources(validate(generator()), lookup_of(gitrepo("main@sha1:def")), retry_after=1)
    assert sources_digest(other) != sources_digest(observed)


def ready(obj: KubeObject, digest: str, inventory: list[dict[str, str]]) -> KubeObject:
    obj["status"] = {
        "observedGeneration": 2,
        "observedSourcesDigest": digest,
        "inventory": inventory,
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Succeeded", "message": "", "lastTransitionTime": ""}
        ],
    }
    return obj


def ea(name: str, digest: str, uid: str = UID) -> KubeObject:
    return {
        "metadata": {"name": name, "namespace": "apps", "labels": {GENERATOR_LABEL: uid}},
        "spec": {"sourceRef": {"kind": "ArtifactGenerator", "name": "split", "namespace": "apps"}},
        "status": {"artifact": {"digest": digest}},
    }


INVENTORY = [
    {"name": "apps", "namespace": "apps", "digest": "sha256:a", "filename": "a.tar.gz"},
    {"name": "infra", "namespace": "apps", "digest": "sha256:i", "filename": "i.tar.gz"},
]


def test_no_drift_when_ready_with_the_same_sources_artifacts_and_objects() -> None:
    obj = ready(generator(), "sha256:s", INVENTORY)
    spec = validate(obj)
    eas = [ea("apps", "sha256:a"), ea("infra", "sha256:i")]
    assert drift(obj, spec, "sha256:s", stored=lambda *_: True, generated=eas) is None
    assert drift(obj, spec, "sha256:t", stored=lambda *_: True, generated=eas) == "SourcesChanged"
    assert drift(obj, spec, "sha256:s", stored=lambda *_: False, generated=eas) == "ArtifactMissing"
    assert drift(obj, spec, "sha256:s", stored=lambda *_: True, generated=eas[:1]) == "ExternalArtifactsChanged"
    edited = [ea("apps", "sha256:a"), ea("infra", "sha256:x")]
    assert drift(obj, spec, "sha256:s", stored=lambda *_: True, generated=edited) == "ExternalArtifactsChanged"
    obj["metadata"]["generation"] = 3
    assert drift(obj, spec, "sha256:s", stored=lambda *_: True, generated=eas) == "GenerationChanged"
    obj["metadata"]["generation"] = 2
    obj["status"]["inventory"] = INVENTORY[:1]
    assert drift(obj, spec, "sha256:s", stored=lambda *_: True, generated=eas[:1]) == "ArtifactsChanged"


def test_revision_and_origin_revision() -> None:
    repo = gitrepo()
    repo["status"]["artifact"]["metadata"] = {ORIGIN_REVISION: "main@sha1:origin"}
    obj = generator()
    obj["spec"]["artifacts"][1]["revision"] = "@repo"
    spec, observed = validate(obj), observe_sources(validate(obj), lookup_of(repo), retry_after=1)
    apps, infra = spec.outputs
    assert artifact_revision(apps, observed, "sha256:d") == "latest@sha256:d"
    assert artifact_revision(infra, observed, "sha256:d") == "main@sha1:abc"
    # The source's own origin revision when it has one, else its revision; nothing without originRevision.
    assert artifact_metadata(apps, observed) == {ORIGIN_REVISION: "main@sha1:origin"}
    assert artifact_metadata(infra, observed) == {}
    plain = observe_sources(spec, lookup_of(gitrepo()), retry_after=1)
    assert artifact_metadata(apps, plain) == {ORIGIN_REVISION: "main@sha1:abc"}


def test_the_external_artifact_is_labelled_and_points_back() -> None:
    obj = generator(commonMetadata={"labels": {"team": "a", GENERATOR_LABEL: "spoofed"}, "annotations": {"n": "x"}})
    body = external_artifact(obj, "apps", controller="source-controller")
    assert body["metadata"]["labels"] == {
        "team": "a",
        GENERATOR_LABEL: UID,  # reserved: commonMetadata cannot override it
        "app.kubernetes.io/managed-by": "source-controller",
    }
    assert body["metadata"]["annotations"] == {"n": "x"}
    assert body["spec"]["sourceRef"] == {
        "apiVersion": "source.extensions.fluxcd.io/v1beta1",
        "kind": "ArtifactGenerator",
        "name": "split",
        "namespace": "apps",
    }
    current = {**body, "metadata": {**body["metadata"], "labels": {**body["metadata"]["labels"], "extra": "y"}}}
    assert not needs_apply(current, body)
    assert needs_apply(None, body)
    assert needs_apply({**body, "spec": {}}, body)


def test_an_artifact_of_another_live_producer_is_not_taken() -> None:
    obj = generator()
    assert claim_problem(None, obj, generator_exists=lambda uid: True) is None
    assert claim_problem(ea("apps", "d"), obj, generator_exists=lambda uid: True) is None
    theirs = ea("apps", "d", uid="other")
    assert "generated by ArtifactGenerator" in str(claim_problem(theirs, obj, generator_exists=lambda uid: True))
    assert claim_problem(theirs, obj, generator_exists=lambda uid: False) is None  # its generator is gone
    third_party = {
        "metadata": {"name": "apps", "namespace": "apps"},
        "spec": {"sourceRef": {"kind": "Source", "name": "s"}},
    }
    assert "produced by Source 's'" in str(claim_problem(third_party, obj, generator_exists=lambda uid: False))


def test_only_a_new_revision_is_announced() -> None:
    artifact = {"revision": "latest@sha256:d", "digest": "sha256:d", "url": "u", "path": "p", "size": 1}
    assert new_artifact(None, artifact) is not None
    same = {"status": {"artifact": dict(artifact)}}
    assert new_artifact(same, {**artifact, "metadata": {ORIGIN_REVISION: "new commit"}}) is None
    announced = new_artifact(same, {**artifact, "revision": "latest@sha256:e", "digest": "sha256:e"})
    assert announced is not None
    assert (announced.kind, announced.reason, announced.revision) == (
        "artifact-ready",
        "NewArtifact",
        "latest@sha256:e",
    )


def test_inventory_changes_orphans_and_the_success_message() -> None:
    now = [INVENTORY[0], {**INVENTORY[1], "digest": "sha256:new"}]
    assert orphans(INVENTORY, now[:1]) == [INVENTORY[1]]
    assert changed(INVENTORY, now) == ["apps/infra (sha256:new)"]
    done = succeeded(now, "sha256:s")
    assert done.outcome.message == "reconciliation succeeded, generated 2 artifact(s)"
    assert done.outcome.reason == "Succeeded"
    assert done.edit.writes == {"inventory": now, "observedSourcesDigest": "sha256:s"}


def test_indexes_and_the_disable_annotation() -> None:
    obj = ready(generator(), "d", INVENTORY)
    assert source_refs(obj) == ["GitRepository/apps/monorepo"]
    assert output_refs(obj) == ["ExternalArtifact/apps/apps", "ExternalArtifact/apps/infra"]
    assert not is_disabled(obj)
    obj["metadata"]["annotations"] = {"source.extensions.fluxcd.io/reconcile": "Disabled"}
    assert is_disabled(obj)
