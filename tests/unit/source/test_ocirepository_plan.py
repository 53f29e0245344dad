"""OCIRepository's decisions without a registry: the reference, the revision, the no-op, the layer, the words."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gitops_mesh.bus.envelope import EventKind
from gitops_mesh.errors import InvalidSpec, TerminalError, TransientError
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.oci import Descriptor, Manifest, RegistryUnavailable, Repository
from gitops_mesh.oci.manifest import FLUX_CONTENT, OCI_MANIFEST
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.unsupported import UNSUPPORTED_FIELD
from source_controller.ocirepository_plan import (
    HELM_CHART_LAYER,
    OCI_PULL_FAILED,
    Observed,
    Pull,
    Ref,
    artifact_ref,
    fetch_failed,
    needs_verification,
    new_artifact_message,
    plan,
    refuse_keyless,
    repository_of,
    revision_of,
    select_layer,
    select_tag,
    stored,
    verification_failed,
)
from source_controller.references import oci_repository_secrets
from source_controller.status_edits import Done
from source_controller.unsupported import OCI_REPOSITORY, refuse_unsupported

NOW = datetime(2026, 1, 1, tzinfo=UTC)
D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
URL = "oci://127.0.0.1:5000/apps/x"


def obj(spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None, generation: int = 1) -> KubeObject:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "OCIRepository",
        "metadata": {"name": "x", "namespace": "ns", "generation": generation},
        "spec": {"url": URL, "interval": "5m", **(spec or {})},
        "status": status or {},
    }


def artifact(revision: str, digest: str = "sha256:" + "9" * 64) -> dict[str, Any]:
    return {
        "revision": revision,
        "digest": digest,
        "url": "http://x/a.tar.gz",
        "path": "a",
        "size": 1,
        "lastUpdateTime": "",
    }


def test_the_reference_follows_fluxs_precedence() -> None:
    assert artifact_ref({}) == Ref(tag="latest")
    assert artifact_ref({"ref": {"tag": "v1"}}) == Ref(tag="v1")
    assert artifact_ref({"ref": {"tag": "v1", "semver": ">=1", "semverFilter": "rc"}}) == Ref(
        semver=">=1", semver_filter="rc"
    )
    assert artifact_ref({"ref": {"tag": "v1", "semver": ">=1", "digest": D1}}) == Ref(digest=D1)
    with pytest.raises(InvalidSpec, match="invalid tag"):
        artifact_ref({"ref": {"tag": "../x"}})
    with pytest.raises(InvalidSpec, match="invalid digest"):
        artifact_ref({"ref": {"digest": "sha256:short"}})


def test_a_bad_url_stalls_with_fluxs_reason_and_words() -> None:
    assert repository_of({"url": URL}) == Repository("127.0.0.1:5000", "apps/x")
    with pytest.raises(InvalidSpec) as caught:
        repository_of({"url": "oci://ghcr.io/org/app:v1"})
    assert caught.value.reason == "URLInvalid"
    assert (
        str(caught.value)
        == "URL validation failed for 'oci://ghcr.io/org/app:v1': URL must not contain a tag; remove ':v1'"
    )


def test_semver_picks_the_highest_matching_tag_through_the_filter() -> None:
    tags = ["latest", "1.0.0", "1.2.0", "1.3.0-rc.1", "2.0.0", "not-a-version"]
    assert select_tag(Ref(semver="<2.0.0"), tags) == "1.2.0"
    assert select_tag(Ref(semver=">=1.0.0-0", semver_filter=".*-rc.*"), tags) == "1.3.0-rc.1"
    # Helm's OCI tags write a version's '+' as '_'; Flux reads them back for charts only.
    assert select_tag(Ref(semver="1.x"), ["1.0.0_build.2", "1.0.0"], HELM_CHART_LAYER) == "1.0.0_build.2"
    with pytest.raises(TransientError, match="no match found for semver: >=3") as caught:
        select_tag(Ref(semver=">=3"), tags)
    assert caught.value.reason == "ReadOperationFailed"
    with pytest.raises(InvalidSpec, match="parse error"):
        select_tag(Ref(semver="not a range"), tags)
    with pytest.raises(InvalidSpec, match="not a valid regular expression"):
        select_tag(Ref(semver="*", semver_filter="(unclosed"), tags)


def test_revisions_are_tag_at_digest_or_the_digest_alone() -> None:
    assert revision_of("v1", D1) == f"v1@{D1}"
    assert revision_of("", D1) == D1


def test_the_same_revision_and_spec_is_a_no_op() -> None:
    o = obj({"ignore": "*.md"}, {"artifact": artifact(f"v1@{D1}"), "observedIgnore": "*.md"})
    step = plan(o, Observed(f"v1@{D1}", artifact_stored=True))
    assert isinstance(step, Done)
    outcome = step.apply(o, now=NOW)
    assert outcome.message == f"stored artifact for digest 'v1@{D1}'"
    assert not outcome.announce
    assert c.get(o, c.ConditionType.ARTIFACT_IN_STORAGE)["message"] == outcome.message  # type: ignore[index]


@pytest.mark.parametrize(
    ("spec", "status", "revision", "stored_file"),
    [
        ({}, {"artifact": artifact(f"v1@{D1}")}, f"v1@{D2}", True),  # a new digest
        ({}, {"artifact": artifact(f"v1@{D1}")}, f"v1@{D1}", False),  # the file disappeared
        ({"ignore": "*.md"}, {"artifact": artifact(f"v1@{D1}")}, f"v1@{D1}", True),  # new ignore rules
        (
            {"layerSelector": {"mediaType": FLUX_CONTENT, "operation": "copy"}},
            {"artifact": artifact(f"v1@{D1}"), "observedLayerSelector": {"mediaType": FLUX_CONTENT}},
            f"v1@{D1}",
            True,
        ),
    ],
)
def test_anything_else_pulls(spec: dict[str, Any], status: dict[str, Any], revision: str, stored_file: bool) -> None:
    step = plan(obj(spec, status), Observed(revision, stored_file))
    assert isinstance(step, Pull)


def test_the_layer_selector_decides_the_pull() -> None:
    step = plan(obj({"layerSelector": {"mediaType": HELM_CHART_LAYER, "operation": "copy"}}), Observed(D1, False))
    assert step == Pull(HELM_CHART_LAYER, "copy")
    assert plan(obj(), Observed(D1, False)) == Pull("", "extract")


def test_layers_are_selected_as_flux_selects_them() -> None:
    first, chart = Descriptor("application/x-a", D1, 1), Descriptor(HELM_CHART_LAYER, D2, 2)
    manifest = Manifest(Descriptor(OCI_MANIFEST, D1, 1), first, (first, chart), {})
    assert select_layer(manifest, "") == first
    assert select_layer(manifest, HELM_CHART_LAYER) == chart
    with pytest.raises(TransientError, match="failed to find layer with media type 'x/y' in artifact") as caught:
        select_layer(manifest, "x/y")
    assert caught.value.reason == "OCIArtifactLayerOperationFailed"
    with pytest.raises(TransientError, match="no layers found in artifact"):
        select_layer(Manifest(manifest.descriptor, first, (), {}), "")


def test_verification_runs_on_a_new_revision_generation_or_after_a_failure() -> None:
    verify = {"verify": {"provider": "cosign", "secretRef": {"name": "keys"}}}
    ok = {"type": "SourceVerified", "status": "True", "reason": "Succeeded", "message": "", "observedGeneration": 1}
    current = {"artifact": artifact(f"v1@{D1}"), "conditions": [ok]}
    assert not needs_verification(obj({}, current), f"v1@{D1}")
    assert not needs_verification(obj(verify, current), f"v1@{D1}")
    assert needs_verification(obj(verify, current), f"v1@{D2}")
    assert needs_verification(obj(verify, current, generation=2), f"v1@{D1}")
    failed = {**current, "conditions": [{**ok, "status": "False"}]}
    assert needs_verification(obj(verify, failed), f"v1@{D1}")


def test_a_new_artifact_is_recorded_and_announced_once_its_digest_changes() -> None:
    o = obj({"layerSelector": {"mediaType": FLUX_CONTENT}}, {"observedIgnore": "old"})
    meta = {"org.opencontainers.image.source": "https://git/x", "org.opencontainers.image.revision": "main@sha1:abc"}
    new = {**artifact(f"v1@{D1}", digest=D2), "metadata": meta}
    done = stored(o, f"v1@{D1}", new, "http://x/latest.tar.gz")
    outcome = done.apply(o, now=NOW)
    status = o["status"]
    assert status["artifact"] == new
    assert status["url"] == "http://x/latest.tar.gz"
    assert status["observedLayerSelector"] == {"mediaType": FLUX_CONTENT}
    assert "observedIgnore" not in status
    [announcement] = outcome.announce
    assert announcement.kind is EventKind.ARTIFACT_READY
    assert announcement.reason == "NewArtifact"
    assert announcement.message == (
        f"stored artifact with revision 'v1@{D1}' from '{URL}', "
        "origin source 'https://git/x', origin revision 'main@sha1:abc'"
    )
    assert announcement.artifact is not None
    assert announcement.artifact.digest == D2
    again = stored(o, f"v1@{D1}", new, "http://x/latest.tar.gz")
    assert not again.outcome.announce
    assert new_artifact_message("r", URL, {}) == f"stored artifact with revision 'r' from '{URL}'"


def test_failures_keep_their_retry_class_with_fluxs_reason() -> None:
    failure = fetch_failed(
        RegistryUnavailable("down", retry_after=3), "failed to pull artifact from 'x': down", OCI_PULL_FAILED
    )
    assert isinstance(failure.error, TransientError)
    assert failure.error.retry_after == 3
    o = obj()
    assert failure.apply(o, now=NOW) is failure.error
    fetch = c.get(o, c.ConditionType.FETCH_FAILED)
    assert fetch is not None
    assert (fetch["reason"], fetch["message"]) == (
        OCI_PULL_FAILED,
        "failed to pull artifact from 'x': down",
    )
    terminal = fetch_failed(TerminalError("no"), "m", OCI_PULL_FAILED)
    assert isinstance(terminal.error, TerminalError)
    verification = verification_failed(TransientError("no matching signatures"))
    verification.apply(o, now=NOW)
    mark = c.get(o, c.ConditionType.SOURCE_VERIFIED)
    assert mark is not None
    assert mark["status"] == "False"
    assert mark["reason"] == "VerificationError"
    assert mark["message"] == "failed to verify the signature using provider 'cosign': no matching signatures"


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"provider": "aws"}, "spec.provider 'aws' is not supported"),
        ({"verify": {"provider": "notation", "secretRef": {"name": "k"}}}, "spec.verify.provider 'notation'"),
        ({"verify": {"provider": "cosign", "matchOIDCIdentity": [{"issuer": "a", "subject": "b"}]}}, "keyless"),
        ({"verify": {"provider": "cosign", "trustedRootSecretRef": {"name": "t"}}}, "keyless"),
    ],
)
def test_unimplemented_fields_are_refused(spec: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        refuse_unsupported(spec, OCI_REPOSITORY)
    assert words in str(caught.value)
    assert caught.value.reason == UNSUPPORTED_FIELD
    refuse_unsupported(
        {"provider": "generic", "verify": {"provider": "cosign", "secretRef": {"name": "k"}}}, OCI_REPOSITORY
    )


def test_verification_without_keys_is_keyless_and_refused() -> None:
    with pytest.raises(InvalidSpec, match="keyless") as caught:
        refuse_keyless({"verify": {"provider": "cosign"}})
    assert caught.value.reason == UNSUPPORTED_FIELD
    refuse_keyless({"verify": {"provider": "cosign", "secretRef": {"name": "k"}}})
    refuse_keyless({})


def test_every_secret_it_reads_wakes_it() -> None:
    o = obj(
        {
            "secretRef": {"name": "pull"},
            "certSecretRef": {"name": "tls"},
            "proxySecretRef": {"name": "proxy"},
            "verify": {"provider": "cosign", "secretRef": {"name": "keys"}},
        }
    )
    assert oci_repository_secrets(o) == ["Secret/ns/pull", "Secret/ns/tls", "Secret/ns/proxy", "Secret/ns/keys"]
