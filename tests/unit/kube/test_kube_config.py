"""Loading kubeconfig files into a KubeConfig, without an apiserver."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from gitops_mesh.kube import config as kube_config
from gitops_mesh.kube.config import FileToken, KubeConfig, KubeConfigError, in_cluster, load_config
from gitops_mesh_dev.gitserver import TlsFiles, make_tls


def write_kubeconfig(path: Path, server: str, user: str) -> Path:
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: "{server}", insecure-skip-tls-verify: true}}
users:
- name: u
  user: {user}
contexts:
- name: ctx
  context: {{cluster: c, user: u}}
current-context: ctx
"""
    )
    return path


async def test_token_and_tls_settings(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", "https://127.0.0.1:6443/", "{token: abc123}")
    config = await load_config(path)
    assert config.host == "https://127.0.0.1:6443"
    assert isinstance(config.ssl_context, ssl.SSLContext)
    assert config.ssl_context.verify_mode == ssl.CERT_NONE
    assert await config.authorization() == "Bearer abc123"


async def test_token_file_and_plain_http(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file")
    path = write_kubeconfig(tmp_path / "config", "http://127.0.0.1:8080", f"{{tokenFile: {tmp_path / 'token'}}}")
    config = await load_config(path)
    assert config.ssl_context is None
    assert await config.authorization() == "Bearer from-file"


async def test_kubeconfig_env_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_kubeconfig(tmp_path / "config", "https://10.0.0.1", "{token: t}")
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert (await load_config()).host == "https://10.0.0.1"


async def test_missing_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="cannot load"):
        await load_config(tmp_path / "nope")


# --- native loading: TLS against a real HTTPS server, credentials, merging, in-cluster, delegation ----------


@dataclass(frozen=True)
class Pki:
    """A throw-away CA, a server certificate for 127.0.0.1, and a client certificate, all PEM files."""

    tls: TlsFiles
    client_cert: Path
    client_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI makes the test certificates")
    tls = make_tls(tmp_path_factory.mktemp("pki"))
    directory = tls.ca_cert.parent

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", *ec, "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=kube-config-test")
    (directory / "client.ext").write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    openssl(
        "x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "1", "-out", "client.crt", "-extfile", "client.ext",
    )  # fmt: skip
    return Pki(tls, directory / "client.crt", directory / "client.key")


@contextlib.asynccontextmanager
async def https_server(
    pki: Pki, *, require_client_cert: bool = False, host: str = "127.0.0.1"
) -> AsyncIterator[tuple[int, list[str | None]]]:
    """An HTTPS server on ``host`` presenting the PKI's server certificate; yields (port, Authorization headers)."""
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"kind": "APIVersions"})

    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(pki.tls.cert, pki.tls.key)
    if require_client_cert:
        server_ctx.load_verify_locations(cafile=pki.tls.ca_cert)
        server_ctx.verify_mode = ssl.CERT_REQUIRED
    app = web.Application()
    app.router.add_get("/api", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    try:
        await web.SockSite(runner, sock, ssl_context=server_ctx).start()
        yield sock.getsockname()[1], seen
    finally:
        await runner.cleanup()
        sock.close()


async def get_api(config: KubeConfig) -> int:
    """One request the way KubeClient makes it: the config's TLS context, server name and Authorization."""
    headers = {"Authorization": auth} if (auth := await config.authorization()) else {}
    connector = aiohttp.TCPConnector(ssl=config.ssl_context if config.ssl_context is not None else True)
    async with (
        aiohttp.ClientSession(connector=connector, trust_env=False) as session,
        session.get(f"{config.host}/api", headers=headers, server_hostname=config.tls_server_name) as response,
    ):
        return response.status


def dump_kubeconfig(
    path: Path, *, clusters: dict[str, Any], users: dict[str, Any], contexts: dict[str, Any], current: str | None = None
) -> Path:
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in clusters.items()],
        "users": [{"name": n, "user": u} for n, u in users.items()],
        "contexts": [{"name": n, "context": c} for n, c in contexts.items()],
    }
    if current:
        doc["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def single(path: Path, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    """One cluster, one user, one current context."""
    return dump_kubeconfig(
        path, clusters={"c": cluster}, users={"u": user}, contexts={"ctx": {"cluster": "c", "user": "u"}}, current="ctx"
    )


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


@pytest.mark.parametrize("ca_as", ["relative-path", "data"])
async def test_ca_verifies_a_real_server(ca_as: str, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "kube" / "certs").mkdir(parents=True)
    shutil.copy(pki.tls.ca_cert, tmp_path / "kube" / "certs" / "ca.crt")
    ca = (
        {"certificate-authority": "certs/ca.crt"}
        if ca_as == "relative-path"
        else {"certificate-authority-data": b64(pki.tls.ca_pem)}
    )
    monkeypatch.chdir(tmp_path)  # relative to the kubeconfig's directory, not the working directory
    async with https_server(pki) as (port, seen):
        path = single(tmp_path / "kube" / "config", {"server": f"https://127.0.0.1:{port}", **ca}, {"token": "t0k"})
        config = await load_config(path)
        assert config.ssl_context is not None
        assert config.ssl_context.verify_mode == ssl.CERT_REQUIRED
        assert config.ssl_context.check_hostname
        assert await get_api(config) == 200
    assert seen == ["Bearer t0k"]


async def test_a_different_ca_is_refused(pki: Pki, tmp_path: Path) -> None:
    other = make_tls(tmp_path / "other")
    async with https_server(pki) as (port, _):
        path = single(
            tmp_path / "config",
            {"server": f"https://127.0.0.1:{port}", "certificate-authority": str(other.ca_cert)},
            {},
        )
        config = await load_config(path)
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await get_api(config)


async def test_tls_server_name_is_what_the_certificate_is_checked_against(pki: Pki, tmp_path: Path) -> None:
    # The server certificate names localhost and 127.0.0.1, not 127.0.0.2 (also loopback on Linux).
    async with https_server(pki, host="127.0.0.2") as (port, _):
        cluster = {"server": f"https://127.0.0.2:{port}", "certificate-authority": str(pki.tls.ca_cert)}
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await get_api(await load_config(single(tmp_path / "plain", cluster, {})))
        config = await load_config(single(tmp_path / "named", {**cluster, "tls-server-name": "localhost"}, {}))
        assert config.tls_server_name == "localhost"
        assert await get_api(config) == 200


async def test_client_certificate_data_is_presented_and_not_left_on_disk(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spill = tmp_path / "tmp"
    spill.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill))
    user = {
        "client-certificate-data": b64(pki.client_cert.read_bytes()),
        "client-key-data": b64(pki.client_key.read_bytes()),
    }
    async with https_server(pki, require_client_cert=True) as (port, seen):
        path = single(
            tmp_path / "config",
            {"server": f"https://127.0.0.1:{port}", "certificate-authority": str(pki.tls.ca_cert)},
            user,
        )
        config = await load_config(path)
        assert list(spill.iterdir()) == []
        assert await get_api(config) == 200  # the server requires a certificate signed by the CA
    assert seen == [None]


async def test_client_certificate_files_relative_to_the_kubeconfig(pki: Pki, tmp_path: Path) -> None:
    shutil.copy(pki.client_cert, tmp_path / "me.crt")
    shutil.copy(pki.client_key, tmp_path / "me.key")
    async with https_server(pki, require_client_cert=True) as (port, _):
        cluster = {"server": f"https://127.0.0.1:{port}", "certificate-authority-data": b64(pki.tls.ca_pem)}
        path = single(tmp_path / "config", cluster, {"client-certificate": "me.crt", "client-key": "me.key"})
        assert await get_api(await load_config(path)) == 200


async def test_client_certificate_without_key_is_an_error(pki: Pki, tmp_path: Path) -> None:
    path = single(tmp_path / "config", {"server": "https://127.0.0.1:1"}, {"client-certificate": str(pki.client_cert)})
    with pytest.raises(KubeConfigError, match="user 'u' has a client-certificate but no client-key"):
        await load_config(path)


async def test_basic_auth_header(tmp_path: Path) -> None:
    path = single(
        tmp_path / "config", {"server": "http://127.0.0.1:8080"}, {"username": "admin", "password": "s3cret:x"}
    )
    config = await load_config(path)
    assert await config.authorization() == "Basic " + b64("admin:s3cret:x")


async def test_token_takes_precedence_and_numbers_are_text(tmp_path: Path) -> None:
    path = single(
        tmp_path / "config", {"server": "http://127.0.0.1"}, {"token": 12345, "username": "a", "password": "b"}
    )
    assert await (await load_config(path)).authorization() == "Bearer 12345"


async def test_no_credentials_is_anonymous(tmp_path: Path) -> None:
    path = dump_kubeconfig(
        tmp_path / "config",
        clusters={"c": {"server": "http://127.0.0.1"}},
        users={},
        contexts={"ctx": {"cluster": "c"}},
        current="ctx",
    )
    assert await (await load_config(path)).authorization() is None


async def test_token_file_rotation_is_picked_up(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    path = single(tmp_path / "config", {"server": "http://127.0.0.1"}, {"tokenFile": "token"})  # relative
    config = await load_config(path)
    assert await config.authorization() == "Bearer first"
    # The kubelet's way: write aside, rename over (a new inode).
    (tmp_path / "token.new").write_text("second")
    os.replace(tmp_path / "token.new", token)
    assert await config.authorization() == "Bearer second"
    token.write_text("third-and-longer")  # rewritten in place
    assert await config.authorization() == "Bearer third-and-longer"
    token.unlink()  # mid-rotation: the last token is still served
    assert await config.authorization() == "Bearer third-and-longer"


async def test_token_file_is_reread_after_max_age_even_if_unchanged_on_disk(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("aaaa")
    source = FileToken(token, max_age=0.0)
    stat = token.stat()
    token.write_text("bbbb")  # same size; restore the mtime so only the age can tell
    os.utime(token, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert await source() == "Bearer bbbb"


async def test_missing_token_file_is_an_error(tmp_path: Path) -> None:
    path = single(tmp_path / "config", {"server": "http://127.0.0.1"}, {"tokenFile": "nope"})
    with pytest.raises(KubeConfigError, match=r"user 'u': cannot read token file .*nope"):
        await load_config(path)


async def test_kubeconfig_list_merges_first_definition_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = dump_kubeconfig(
        tmp_path / "a" / "config", clusters={"c": {"server": "https://first"}}, users={}, contexts={}, current="ctx2"
    )
    (tmp_path / "b" / "token").parent.mkdir()
    (tmp_path / "b" / "token").write_text("from-b")
    second = dump_kubeconfig(
        tmp_path / "b" / "config",
        clusters={"c": {"server": "https://second"}, "other": {"server": "https://other"}},
        users={"u": {"tokenFile": "token"}},  # relative to b/, the file that defines it
        contexts={"ctx2": {"cluster": "c", "user": "u"}, "ctx3": {"cluster": "other", "user": "u"}},
        current="ctx3",  # the first file set current-context already
    )
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "missing"), str(first), "", str(second)]))
    config = await load_config()
    assert config.host == "https://first"
    assert await config.authorization() == "Bearer from-b"
    assert (await load_config(context="ctx3")).host == "https://other"


async def test_kubeconfig_list_with_no_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'x'}{os.pathsep}{tmp_path / 'y'}")
    with pytest.raises(KubeConfigError, match="no kubeconfig file exists"):
        await load_config()


async def test_unknown_context_is_named(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", "https://127.0.0.1", "{token: t}")
    with pytest.raises(KubeConfigError, match="context 'staging' not found"):
        await load_config(path, context="staging")


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"cluster": "nope", "user": "u"}, "cluster 'nope' not found"),
        ({"cluster": "c", "user": "nope"}, "user 'nope' not found"),
        ({"user": "u"}, "context 'ctx' names no cluster"),
    ],
)
async def test_dangling_references_are_named(context: dict[str, str], message: str, tmp_path: Path) -> None:
    path = dump_kubeconfig(
        tmp_path / "config",
        clusters={"c": {"server": "https://x"}},
        users={"u": {"token": "t"}},
        contexts={"ctx": context},
        current="ctx",
    )
    with pytest.raises(KubeConfigError, match=message):
        await load_config(path)


async def test_no_current_context_is_an_error(tmp_path: Path) -> None:
    path = dump_kubeconfig(tmp_path / "config", clusters={}, users={}, contexts={})
    with pytest.raises(KubeConfigError, match="current-context is not set"):
        await load_config(path)


@pytest.mark.parametrize("field", ["certificate-authority-data", "client-certificate-data"])
async def test_bad_base64_is_an_error_without_the_value(field: str, tmp_path: Path) -> None:
    cluster: dict[str, Any] = {"server": "https://127.0.0.1"}
    user: dict[str, Any] = {"token": "t", "client-key-data": b64("k")}
    (cluster if field.startswith("certificate") else user)[field] = "not*base64*SECRETISH"
    with pytest.raises(KubeConfigError, match=f"{field} is not valid base64") as e:
        await load_config(single(tmp_path / "config", cluster, user))
    assert "SECRETISH" not in str(e.value)


async def test_yaml_errors_do_not_quote_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("users:\n- name: u\n  user: {token: SUPERSECRET\n")
    with pytest.raises(KubeConfigError, match=r"invalid YAML: .* at line") as e:
        await load_config(path)
    assert "SUPERSECRET" not in str(e.value)


async def test_unreadable_kubeconfig_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.mkdir()  # unreadable as a file even to root, unlike a chmod 0
    with pytest.raises(KubeConfigError, match=f"cannot read {path}: Is a directory"):
        await load_config(path)


async def test_in_cluster(pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(pki.tls.ca_cert, tmp_path / "ca.crt")
    (tmp_path / "token").write_text("sa-token-1")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setattr(kube_config, "SERVICE_ACCOUNT_DIR", tmp_path)
    async with https_server(pki) as (port, seen):
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(port))
        config = await load_config()
        assert config.host == f"https://127.0.0.1:{port}"
        assert await get_api(config) == 200
        (tmp_path / "token.new").write_text("sa-token-2")
        os.replace(tmp_path / "token.new", tmp_path / "token")
        assert await get_api(config) == 200
    assert seen == ["Bearer sa-token-1", "Bearer sa-token-2"]


async def test_in_cluster_needs_the_service_account(pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setattr(kube_config, "SERVICE_ACCOUNT_DIR", tmp_path)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(KubeConfigError, match=r"in-cluster.*cannot load certificate-authority .*ca\.crt"):
        await load_config()
    shutil.copy(pki.tls.ca_cert, tmp_path / "ca.crt")
    with pytest.raises(KubeConfigError, match=r"in-cluster.*cannot read token file .*token"):
        await load_config()


def test_in_cluster_brackets_ipv6() -> None:
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster(env, Path("/sa")).cluster.server == "https://[fd00::1]:443"
    with pytest.raises(KubeConfigError, match="KUBERNETES_SERVICE_PORT"):
        in_cluster({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, Path("/sa"))


async def test_exec_user_is_delegated(tmp_path: Path) -> None:
    plugin = tmp_path / "credential-plugin"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": "from-exec"},
    }
    plugin.write_text(f"#!/bin/sh\necho '{json.dumps(credential)}'\n")
    plugin.chmod(0o755)
    exec_ = {"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin), "interactiveMode": "Never"}
    path = single(
        tmp_path / "config", {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}, {"exec": exec_}
    )
    config = await load_config(path)
    assert config.host == "https://127.0.0.1:6443"
    assert await config.authorization() == "Bearer from-exec"


async def test_token_kubeconfig_does_not_import_kubernetes_asyncio(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", "https://127.0.0.1:6443", "{token: t}")
    script = (
        "import asyncio, sys\n"
        "import gitops_mesh.kube\n"
        "from gitops_mesh.kube.config import load_config\n"
        f"config = asyncio.run(load_config({str(path)!r}))\n"
        "assert asyncio.run(config.authorization()) == 'Bearer t'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes_asyncio'))\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == "[]"
