"""Pure chart rules: Flux's version metadata, Chart.yaml checks, repository URLs, credentials from Secrets."""

from __future__ import annotations

import pytest
from yarl import URL

from gitops_mesh.errors import InvalidSpec
from source_controller.helm.chart import (
    Dependency,
    artifact_filename,
    parse_chart_yaml,
    revision_metadata,
    with_build_metadata,
)
from source_controller.helm.errors import CorruptChart, InvalidRepositoryAuth, MetadataPatchError
from source_controller.helm.transport import (
    Credentials,
    RepositoryAuth,
    chart_url,
    display_url,
    index_url,
    sends_credentials,
)

SHA = "a96eff73a282d408a960086d978ca97a0a1fb2ef"


@pytest.mark.parametrize(
    ("strategy", "kind", "revision", "values", "expected"),
    [
        ("ChartVersion", "GitRepository", f"main@sha1:{SHA}", False, ""),
        ("Revision", "GitRepository", f"main@sha1:{SHA}", False, "a96eff73a282"),
        ("Revision", "GitRepository", f"sha1:{SHA}", True, "a96eff73a282.3"),
        ("Revision", "GitRepository", f"main/{SHA}", False, "a96eff73a282"),
        (
            "Revision",
            "Bucket",
            "sha256:4e5cbb7b97d00a8039b8810b90b922f4256fd3bd8f78b934b4892dae13f7ca87",
            False,
            "4e5cbb7b97d0",
        ),
        ("Revision", "HelmRepository", "sha256:abc", False, ""),
        ("ChartVersion", "HelmRepository", "", True, "3"),
    ],
)
def test_revision_metadata(strategy: str, kind: str, revision: str, values: bool, expected: str) -> None:
    meta = revision_metadata(
        reconcile_strategy=strategy, source_kind=kind, source_revision=revision, generation=3, has_values_files=values
    )
    assert meta == expected


@pytest.mark.parametrize(
    ("version", "meta", "expected"),
    [
        ("6.0.3", "", "6.0.3"),
        ("6.0.3", "1", "6.0.3+1"),
        ("6.0.3", "4e5cbb7b97d0", "6.0.3+4e5cbb7b97d0"),
        ("v1.2", "a96eff73a282.2", "1.2.0+a96eff73a282.2"),
        ("1.0.0-rc.1+old", "new", "1.0.0-rc.1+new"),
    ],
)
def test_with_build_metadata(version: str, meta: str, expected: str) -> None:
    assert with_build_metadata(version, meta) == expected


def test_build_metadata_errors_are_terminal() -> None:
    with pytest.raises(MetadataPatchError, match="as SemVer"):
        with_build_metadata("latest", "1")
    with pytest.raises(MetadataPatchError, match="set SemVer metadata"):
        with_build_metadata("1.0.0", "bad_meta!")


def test_artifact_filename() -> None:
    assert artifact_filename("podinfo", "6.0.3+1") == "podinfo-6.0.3+1.tgz"


def test_chart_yaml_v2_with_dependencies() -> None:
    meta = parse_chart_yaml(
        b"apiVersion: v2\nname: app\nversion: 1.10\nappVersion: 2.0\ndependencies:\n"
        b"- name: common\n  version: '>=0.1.0'\n  repository: file://../common\n- name: redis\n  alias: cache\n"
    )
    assert (meta.name, meta.version, meta.app_version) == ("app", "1.10", "2.0")
    assert meta.dependencies == (
        Dependency("common", ">=0.1.0", "file://../common"),
        Dependency("redis", alias="cache"),
    )


def test_chart_yaml_v1_reads_requirements() -> None:
    meta = parse_chart_yaml(
        b"name: old\nversion: 0.1.0\n", requirements=b"dependencies:\n- name: dep\n  repository: https://x/\n"
    )
    assert meta.api_version == "v1"
    assert meta.dependencies == (Dependency("dep", repository="https://x/"),)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"- a\n", "must be a map"),
        (b"apiVersion: v2\nversion: 1.0.0\n", "name is required"),
        (b"apiVersion: v2\nname: a/b\nversion: 1.0.0\n", "chart name 'a/b' is invalid"),
        (b"apiVersion: v2\nname: a\n", "version is required"),
        (b"apiVersion: v2\nname: a\nversion: latest\n", "not a semantic version"),
        (b"apiVersion: v3\nname: a\nversion: 1.0.0\n", "apiVersion 'v3'"),
        (b"apiVersion: v2\nname: a\nversion: 1.0.0\ntype: plugin\n", "type 'plugin'"),
        (b"apiVersion: v2\nname: [a]\nversion: 1.0.0\n", "name must be a string"),
        (b"name: a\nversion: 1.0.0\ndependencies: {a: 1}\n", "dependencies must be a list"),
        (b"name: a\nversion: [1.0.0\n", "not valid YAML at line 3"),
    ],
)
def test_chart_yaml_errors(data: bytes, message: str) -> None:
    with pytest.raises(CorruptChart, match=message.replace("[", r"\[")):
        parse_chart_yaml(data)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://charts.example.com", "https://charts.example.com/index.yaml"),
        ("https://charts.example.com/", "https://charts.example.com/index.yaml"),
        ("https://charts.example.com/stable//", "https://charts.example.com/stable/index.yaml"),
        ("http://127.0.0.1:8080/a?token=t", "http://127.0.0.1:8080/a/index.yaml?token=t"),
    ],
)
def test_index_url(url: str, expected: str) -> None:
    assert str(index_url(url)) == expected


def test_index_url_refuses_other_schemes() -> None:
    with pytest.raises(InvalidSpec, match="http or https") as caught:
        index_url("oci://ghcr.io/charts")
    assert caught.value.reason == "URLInvalid"


@pytest.mark.parametrize(
    ("repo", "ref", "expected"),
    [
        ("https://h/charts", "demo-0.1.0.tgz", "https://h/charts/demo-0.1.0.tgz"),
        ("https://h/charts/", "sub/demo-0.1.0.tgz", "https://h/charts/sub/demo-0.1.0.tgz"),
        ("https://h/charts", "/abs/demo.tgz", "https://h/abs/demo.tgz"),
        ("https://h/charts?sig=1", "demo.tgz", "https://h/charts/demo.tgz?sig=1"),
        ("https://h/charts?sig=1", "demo.tgz?own=2", "https://h/charts/demo.tgz?own=2"),
        ("https://h/charts", "https://cdn.example.com/demo.tgz", "https://cdn.example.com/demo.tgz"),
        ("https://h/charts", "demo-1.0.0+build.1.tgz", "https://h/charts/demo-1.0.0+build.1.tgz"),
    ],
)
def test_chart_url(repo: str, ref: str, expected: str) -> None:
    assert str(chart_url(repo, ref)) == expected


def test_credentials_stay_on_the_repository_origin_unless_passed() -> None:
    repo = "https://h:8443/charts"
    assert sends_credentials(repo, URL("https://h:8443/other/x.tgz"), pass_credentials=False)
    assert not sends_credentials(repo, URL("https://cdn/x.tgz"), pass_credentials=False)
    assert not sends_credentials(repo, URL("http://h:8443/x.tgz"), pass_credentials=False)
    assert sends_credentials(repo, URL("https://cdn/x.tgz"), pass_credentials=True)


def test_display_url_hides_userinfo_and_query() -> None:
    assert display_url("https://u:secret@h/charts/index.yaml?token=abc") == "https://h/charts/index.yaml"


def test_auth_from_secrets() -> None:
    auth = RepositoryAuth.from_secrets(
        {"username": b"u", "password": b"p"},
        {"ca.crt": b"CA", "tls.crt": b"C", "tls.key": b"K"},
        pass_credentials=True,
    )
    assert auth.credentials == Credentials("u", "p")
    assert auth.ca == b"CA"
    assert auth.client_cert is not None
    assert auth.pass_credentials
    assert "p'" not in repr(auth.credentials)
    assert "secret" not in repr(RepositoryAuth.from_secrets({"username": b"u", "password": b"secret"}))


def test_deprecated_tls_keys_in_secret_ref() -> None:
    auth = RepositoryAuth.from_secrets({"caFile": b"CA"})
    assert auth.ca == b"CA"
    assert auth.credentials is None


@pytest.mark.parametrize(
    ("secret", "cert_secret", "message"),
    [
        ({"username": b"u"}, None, "'username' and 'password'"),
        ({"password": b"p"}, None, "'username' and 'password'"),
        (None, {"tls.crt": b"C"}, "both its certificate and key"),
    ],
)
def test_incomplete_secrets(
    secret: dict[str, bytes] | None, cert_secret: dict[str, bytes] | None, message: str
) -> None:
    with pytest.raises(InvalidRepositoryAuth, match=message) as caught:
        RepositoryAuth.from_secrets(secret, cert_secret)
    assert caught.value.reason == "AuthenticationFailed"
