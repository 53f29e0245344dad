"""gitops_mesh.oci.reference: repositories from oci:// URLs, tags and digests, by the distribution grammar."""

from __future__ import annotations

import time

import pytest

from gitops_mesh.oci import InvalidReference, Repository, parse_repository
from gitops_mesh.oci.reference import check_digest, check_reference, check_tag, is_digest

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("oci://ghcr.io/stefanprodan/manifests/podinfo", Repository("ghcr.io", "stefanprodan/manifests/podinfo")),
        ("oci://127.0.0.1:5000/apps/x", Repository("127.0.0.1:5000", "apps/x")),
        ("oci://localhost:5000/a.b/c_d/e__f/g-h--i", Repository("localhost:5000", "a.b/c_d/e__f/g-h--i")),
        ("oci://docker.io/nginx", Repository("registry-1.docker.io", "library/nginx")),
        ("oci://index.docker.io/fluxcd/flux", Repository("registry-1.docker.io", "fluxcd/flux")),
        ("oci://[::1]:5000/x", Repository("[::1]:5000", "x")),
    ],
)
def test_urls_name_their_registry_and_repository(url: str, expected: Repository) -> None:
    assert parse_repository(url) == expected


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://ghcr.io/x", "oci://<domain>/<org>/<repo>"),
        ("oci://ghcr.io", "oci://<domain>/<org>/<repo>"),
        ("oci://ghcr.io/", "oci://<domain>/<org>/<repo>"),
        ("oci://ghcr.io/org/app:v1", "must not contain a tag; remove ':v1'"),
        (f"oci://ghcr.io/org/app@{DIGEST}", "must not contain a digest"),
        ("oci://ghcr.io/Org/app", "invalid repository name"),
        ("oci://ghcr.io/org//app", "invalid repository name"),
        ("oci://ghcr.io/org/-app", "invalid repository name"),
        ("oci://gh cr.io/org/app", "invalid registry host"),
        ("oci://user:pw@ghcr.io/org/app", "invalid registry host"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, words: str) -> None:
    with pytest.raises(InvalidReference, match=None) as caught:
        parse_repository(url)
    assert words in str(caught.value)
    assert caught.value.reason == "URLInvalid"


def test_a_repository_prints_as_flux_writes_it() -> None:
    repo = parse_repository("oci://127.0.0.1:5000/apps/x")
    assert str(repo) == "127.0.0.1:5000/apps/x"
    assert repo.url == "oci://127.0.0.1:5000/apps/x"


def test_tags_and_digests_are_checked() -> None:
    assert check_tag("v1.2.3-rc.1_build") == "v1.2.3-rc.1_build"
    assert check_digest(DIGEST) == DIGEST
    assert check_reference(DIGEST) == DIGEST
    assert check_reference("latest") == "latest"
    assert is_digest(DIGEST)
    assert not is_digest("sha256:abc")
    for bad in ("", ".hidden", "-x", "a" * 129, "v1/../x", "v1?x=1"):
        with pytest.raises(InvalidReference):
            check_tag(bad)
    for bad in ("sha256:" + "A" * 64, "md5:" + "a" * 32, "sha256:" + "a" * 63):
        with pytest.raises(InvalidReference):
            check_digest(bad)


def test_hostile_names_are_refused_in_linear_time() -> None:
    started = time.perf_counter()
    for name in ("a" + "-" * 250 + "!", "a." * 120 + "!", "a_" * 120 + "-"):
        with pytest.raises(InvalidReference):
            parse_repository(f"oci://ghcr.io/{name}")
    assert time.perf_counter() - started < 0.5
