"""Helm charts in OCI registries, the pure rules: OCI HelmRepository URLs, Flux's version choice over Helm's view
of the registry's tags, tags of versions, the chart layer; and the Secrets read as registry credentials."""

from __future__ import annotations

import base64
import json

import pytest

from gitops_mesh.oci import Descriptor, Manifest
from source_controller.helm.errors import ChartPullError, InvalidChartReference
from source_controller.helm.oci import (
    HELM_CHART_MEDIA_TYPE,
    HELM_CONFIG_MEDIA_TYPE,
    InvalidOciUrl,
    chart_layer,
    exact_version,
    parse_oci_url,
    select_version,
    tag_of,
    tag_versions,
)
from source_controller.helm.oci_pull import OciAuthInvalid, oci_auth

DIGEST = "sha256:" + "a" * 64


def test_an_oci_url_splits_into_registry_and_path() -> None:
    loc = parse_oci_url("oci://127.0.0.1:5000/team/charts/")
    assert (loc.registry, loc.path) == ("127.0.0.1:5000", "team/charts")
    assert loc.url == "oci://127.0.0.1:5000/team/charts"
    assert str(loc.chart("podinfo")) == "127.0.0.1:5000/team/charts/podinfo"
    root = parse_oci_url("oci://registry.example")
    assert root.path == ""
    assert str(root.chart("podinfo")) == "registry.example/podinfo"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://ghcr.io/charts", "URL scheme 'https' in 'https://ghcr.io/charts' is not supported"),
        ("ghcr.io/charts", "URL scheme '' in 'ghcr.io/charts' is not supported"),
        ("oci://", "invalid OCI registry URL: oci://"),
    ],
)
def test_a_url_that_is_not_an_oci_registry_is_refused_in_fluxs_words(url: str, message: str) -> None:
    with pytest.raises(InvalidOciUrl) as e:
        parse_oci_url(url)
    assert str(e.value) == message


def test_a_url_with_invalid_repository_components_is_refused() -> None:
    with pytest.raises(InvalidOciUrl, match="invalid OCI registry URL"):
        parse_oci_url("oci://ghcr.io/Upper/Case")


@pytest.mark.parametrize("name", ["", "a/b", "UPPER"])
def test_a_chart_name_that_cannot_be_a_repository_component_is_an_invalid_reference(name: str) -> None:
    with pytest.raises(InvalidChartReference):
        parse_oci_url("oci://ghcr.io/charts").chart(name)


def test_helm_sees_strict_semver_tags_with_underscores_as_plus_newest_first() -> None:
    tags = ["latest", "1.0.0", "v2.0.0", "1.10.0", "1.2.0_build.1", "1.2", "2.0.0-rc.1", "sha256-abc.sig"]
    assert tag_versions(tags) == ["2.0.0-rc.1", "1.10.0", "1.2.0+build.1", "1.0.0"]


@pytest.mark.parametrize(
    ("wanted", "chosen"),
    [
        ("", "1.10.0"),  # the latest stable: prereleases are not candidates of "*"
        ("*", "1.10.0"),
        ("1.2.x", "1.2.0+build.1"),
        (">=1.0.0 <1.5.0", "1.2.0+build.1"),
        ("^2.0.0-0", "2.0.0-rc.1"),  # a range naming a prerelease admits prereleases
        ("1.2.0+build.1", "1.2.0+build.1"),  # an exact string match wins first
        ("~1.0", "1.0.0"),
    ],
)
def test_the_version_is_the_newest_tag_the_range_accepts(wanted: str, chosen: str) -> None:
    tags = ["1.0.0", "1.2.0_build.1", "1.10.0", "2.0.0-rc.1", "latest"]
    assert select_version(tags, wanted) == chosen


def test_no_matching_tag_is_a_pull_error_in_fluxs_words() -> None:
    with pytest.raises(ChartPullError) as e:
        select_version(["1.0.0"], ">=2.0.0")
    assert str(e.value) == "could not locate a version matching provided version string >=2.0.0"
    with pytest.raises(ChartPullError, match="unable to locate any tags"):
        select_version(["latest", "main"], "*")


def test_a_malformed_range_is_an_invalid_chart_reference() -> None:
    with pytest.raises(InvalidChartReference, match="invalid version range"):
        select_version(["1.0.0"], ">=>1")


@pytest.mark.parametrize(
    ("text", "exact"),
    [("1.2.3", True), ("v1.2.3", True), ("1.2.3-rc.1+b", True), ("1.2", False), ("^1.0.0", False), ("*", False)],
)
def test_an_exact_version_is_pulled_by_its_tag_without_listing(text: str, exact: bool) -> None:
    assert exact_version(text) is exact


def test_a_version_with_build_metadata_is_tagged_with_an_underscore() -> None:
    assert tag_of("1.2.0+build.1") == "1.2.0_build.1"
    assert tag_of("1.2.0") == "1.2.0"


def _manifest(config: str, *layers: str) -> Manifest:
    return Manifest(
        descriptor=Descriptor("application/vnd.oci.image.manifest.v1+json", DIGEST, 100),
        config=Descriptor(config, DIGEST, 2),
        layers=tuple(Descriptor(media, DIGEST, 10) for media in layers),
        annotations={},
    )


def test_the_chart_layer_is_found_among_others() -> None:
    prov = "application/vnd.cncf.helm.chart.provenance.v1.prov"
    assert chart_layer(_manifest(HELM_CONFIG_MEDIA_TYPE, prov, HELM_CHART_MEDIA_TYPE), "oci://r/c:1") == 1


def test_an_artifact_that_is_not_a_chart_is_named_for_what_it_is() -> None:
    flux = "application/vnd.cncf.flux.content.v1.tar+gzip"
    with pytest.raises(ChartPullError) as e:
        chart_layer(_manifest("application/vnd.cncf.flux.config.v1+json", flux), "oci://r/c:1")
    assert "oci://r/c:1 is not a Helm chart" in str(e.value)
    assert flux in str(e.value)


def _docker_config(host: str, user: str, password: str) -> bytes:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {host: {"auth": auth}}}).encode()


def test_credentials_come_from_username_and_password() -> None:
    auth = oci_auth("r.example", {"username": b"u", "password": b"p"}, None, secret_name="s")
    assert auth.credentials is not None
    assert (auth.credentials.username, auth.credentials.password) == ("u", "p")
    assert auth.ssl is None
    assert "p" not in repr(auth)


def test_credentials_come_from_the_docker_config_entry_of_the_registry() -> None:
    config = _docker_config("https://r.example:5000", "u", "p")
    auth = oci_auth("r.example:5000", {".dockerconfigjson": config}, None, secret_name="pull")
    assert auth.credentials is not None
    assert auth.credentials.username == "u"


def test_a_docker_config_without_the_registry_is_refused_in_fluxs_words() -> None:
    config = _docker_config("other.example", "u", "p")
    with pytest.raises(OciAuthInvalid) as e:
        oci_auth("r.example", {".dockerconfigjson": config}, None, secret_name="pull")
    assert str(e.value) == "no auth config for 'r.example' in the docker-registry Secret 'pull'"
    assert e.value.reason == "AuthenticationFailed"


def test_half_a_login_is_refused_and_none_is_anonymous() -> None:
    with pytest.raises(OciAuthInvalid, match="invalid 's' secret data: required fields 'username' and 'password'"):
        oci_auth("r.example", {"username": b"u"}, None, secret_name="s")
    assert oci_auth("r.example", {}, None).credentials is None
    assert oci_auth("r.example", None, None).credentials is None


def test_unloadable_tls_material_is_refused_without_quoting_it() -> None:
    with pytest.raises(OciAuthInvalid) as e:
        oci_auth("r.example", None, {"ca.crt": b"SECRET-NOT-A-PEM"})
    assert "SECRET-NOT-A-PEM" not in str(e.value)
    assert "TLS config" in str(e.value)
