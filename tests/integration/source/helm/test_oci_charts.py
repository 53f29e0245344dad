"""Helm charts in OCI registries against the real distribution registry and the real ``helm push``: the login
check, tags resolved as Flux does, the chart layer pulled byte for byte, TLS + basic auth, wrong credentials."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gitops_mesh import commands
from gitops_mesh.errors import TransientError
from gitops_mesh.helmcli import helm_env
from gitops_mesh.oci import Credentials, RegistryClient, Transport
from gitops_mesh_dev.gitserver import TlsFiles, make_tls
from gitops_mesh_dev.ociregistry import OciRegistry
from source_controller.helm.errors import ChartPullError, RepositoryAuthFailed
from source_controller.helm.oci import parse_oci_url
from source_controller.helm.oci_pull import OciAuth, login, oci_auth, pull_chart, registry_client, resolve_version

pytestmark = [pytest.mark.stack, pytest.mark.timeout(180)]

USER, PASSWORD = "flux", "s3cret-oci"
PUSHED = ("0.1.0", "0.9.0", "1.0.0", "1.1.0-rc.1")


async def helm(helm_bin: Path, home: Path, *args: str, stdin: bytes | None = None) -> commands.Completed:
    return await commands.run([str(helm_bin), *args], env=helm_env(home), timeout=60, stdin=stdin)


@pytest.fixture(scope="module")
def oci_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("oci-tls"))


@pytest.fixture(scope="module")
async def private(
    tmp_path_factory: pytest.TempPathFactory, oci_tls: TlsFiles, helm_bin: Path, charts_dir: Path
) -> AsyncIterator[OciRegistry]:
    """A registry with TLS and basic auth holding ``demo`` in PUSHED, pushed by the real helm after a login whose
    password went on stdin."""
    root = tmp_path_factory.mktemp("oci-private")
    async with OciRegistry(root / "registry", tls=oci_tls, username=USER, password=PASSWORD) as registry:
        home = root / "helm-home"
        ca = ["--ca-file", str(oci_tls.ca_cert)]
        await helm(helm_bin, home, "registry", "login", registry.address, "-u", USER, "--password-stdin", *ca,
                   stdin=PASSWORD.encode())  # fmt: skip
        for version in PUSHED:
            await helm(
                helm_bin, home, "push", str(charts_dir / f"demo-{version}.tgz"), f"oci://{registry.address}/charts", *ca
            )
        yield registry


def client_for(
    http: aiohttp.ClientSession, registry: OciRegistry, tls: TlsFiles, password: str = PASSWORD
) -> RegistryClient:
    auth = oci_auth(
        registry.address, {"username": USER.encode(), "password": password.encode()}, {"ca.crt": tls.ca_pem}
    )
    return registry_client(http, parse_oci_url(f"oci://{registry.address}/charts"), auth, insecure=False, timeout=30)


async def test_a_chart_range_resolves_from_the_tags_and_pulls_the_pushed_bytes(
    private: OciRegistry, oci_tls: TlsFiles, charts_dir: Path, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as http:
        client = client_for(http, private, oci_tls)
        location = parse_oci_url(f"oci://{private.address}/charts")
        await login(client, location.url, timeout=30)
        repo = location.chart("demo")
        assert await resolve_version(client, repo, "*") == "1.0.0"  # latest stable, not the rc
        assert await resolve_version(client, repo, "<1.0.0") == "0.9.0"
        assert await resolve_version(client, repo, ">=1.1.0-0") == "1.1.0-rc.1"
        build = await pull_chart(client, repo, "demo", "0.9.0", tmp_path)
    assert build.path == tmp_path / "demo-0.9.0.tgz"
    assert build.path.read_bytes() == (charts_dir / "demo-0.9.0.tgz").read_bytes()
    assert build.metadata is not None
    assert (build.name, build.version, build.metadata.version, build.packaged) == ("demo", "0.9.0", "0.9.0", False)
    assert [p.name for p in tmp_path.iterdir()] == ["demo-0.9.0.tgz"]  # no partial pull left


async def test_wrong_credentials_fail_the_login_and_the_pull_as_authentication_errors(
    private: OciRegistry, oci_tls: TlsFiles, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as http:
        client = client_for(http, private, oci_tls, password="wrong")
        url = f"oci://{private.address}/charts"
        with pytest.raises(TransientError) as login_error:
            await login(client, url, timeout=30)
        repo = parse_oci_url(url).chart("demo")
        with pytest.raises(RepositoryAuthFailed) as tags_error:
            await resolve_version(client, repo, "*")
        with pytest.raises(RepositoryAuthFailed) as pull_error:
            await pull_chart(client, repo, "demo", "0.9.0", tmp_path)
    assert login_error.value.reason == "AuthenticationFailed"
    assert str(login_error.value).startswith(f"failed to login to registry '{url}': ")
    assert tags_error.value.reason == pull_error.value.reason == "AuthenticationFailed"
    assert "failed to authenticate with the Helm repository" in str(pull_error.value)
    for error in (login_error.value, tags_error.value, pull_error.value):
        assert "wrong" not in str(error)
    assert list(tmp_path.iterdir()) == []


async def test_an_untrusted_certificate_is_an_authentication_failure(private: OciRegistry) -> None:
    async with aiohttp.ClientSession() as http:
        # The system roots only: the registry's throw-away CA is not among them.
        client = RegistryClient(
            http,
            private.address,
            credentials=Credentials(USER, PASSWORD),
            transport=Transport(ssl=ssl.create_default_context()),
        )
        with pytest.raises(TransientError) as e:
            await login(client, f"oci://{private.address}/charts", timeout=30)
    assert e.value.reason == "AuthenticationFailed"


async def test_an_anonymous_client_gets_no_chart_from_a_private_registry(
    private: OciRegistry, oci_tls: TlsFiles, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as http:
        location = parse_oci_url(f"oci://{private.address}/charts")
        client = registry_client(
            http,
            location,
            OciAuth(ssl=ssl.create_default_context(cafile=str(oci_tls.ca_cert))),
            insecure=False,
            timeout=30,
        )
        with pytest.raises(RepositoryAuthFailed):
            await pull_chart(client, location.chart("demo"), "demo", "0.9.0", tmp_path)


async def test_missing_versions_and_charts_are_pull_errors(
    stack_env: dict[str, str], helm_bin: Path, charts_dir: Path, tmp_path: Path
) -> None:
    """Against the stack's plain-HTTP registry (``insecure: true``), under a repository of this test's own."""
    prefix = f"oci://{stack_env['OCI_REGISTRY']}/missing-{tmp_path.name.lower().replace('_', '-')}"
    await helm(helm_bin, tmp_path / "home", "push", str(charts_dir / "demo-0.1.0.tgz"), prefix, "--plain-http")
    async with aiohttp.ClientSession() as http:
        location = parse_oci_url(prefix)
        client = registry_client(http, location, OciAuth(), insecure=True, timeout=30)
        await login(client, location.url, timeout=30)  # anonymous: the plain registry answers 200
        assert await resolve_version(client, location.chart("demo"), "0.x") == "0.1.0"
        with pytest.raises(ChartPullError, match="could not locate a version matching provided version string >=5"):
            await resolve_version(client, location.chart("demo"), ">=5")
        with pytest.raises(ChartPullError, match="could not get tags for"):
            await resolve_version(client, location.chart("nothing"), "*")
        with pytest.raises(ChartPullError, match="failed to download chart for remote reference"):
            await pull_chart(client, location.chart("demo"), "demo", "9.9.9", tmp_path)
