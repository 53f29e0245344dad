"""A tenant's kubeconfig from a Secret: Flux's key rule, the fields refused, and the one-context document rebuilt."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from gitops_mesh.kube.remote import (
    RemoteKubeConfigError,
    RemoteOptions,
    parse_remote,
    secret_kubeconfig,
)

CA = b"-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n"
ORIGIN = "Secret 'apps/remote' key 'value'"


def kubeconfig(cluster: dict[str, Any] | None = None, user: dict[str, Any] | None = None, **extra: Any) -> bytes:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "far",
                "cluster": {
                    "server": "https://10.1.2.3:6443",
                    "certificate-authority-data": base64.b64encode(CA).decode(),
                    **(cluster or {}),
                },
            }
        ],
        "users": [{"name": "admin", "user": user if user is not None else {"token": "s3cret-token"}}],
        "contexts": [{"name": "far", "context": {"cluster": "far", "user": "admin"}}],
        "current-context": "far",
        **extra,
    }
    return orjson.dumps(doc)


NO_FLAGS = RemoteOptions()


def refused(raw: bytes, options: RemoteOptions = NO_FLAGS) -> str:
    with pytest.raises(RemoteKubeConfigError) as caught:
        parse_remote(raw, origin=ORIGIN, options=options)
    message = str(caught.value)
    assert "s3cret-token" not in message  # never a value
    assert ORIGIN in message
    return message


# --- the Secret's key -------------------------------------------------------------------------------------


def test_key_defaults_to_value_then_value_yaml() -> None:
    assert secret_kubeconfig({"value": b"a", "value.yaml": b"b"}, secret="ns/s", key=None) == ("value", b"a")
    assert secret_kubeconfig({"value.yaml": b"b", "other": b"c"}, secret="ns/s", key=None) == ("value.yaml", b"b")


def test_named_key_is_the_only_one_read() -> None:
    assert secret_kubeconfig({"value": b"a", "kc": b"k"}, secret="ns/s", key="kc") == ("kc", b"k")
    with pytest.raises(RemoteKubeConfigError, match="KubeConfig secret 'ns/s' does not contain a 'kc' key with data"):
        secret_kubeconfig({"value": b"a"}, secret="ns/s", key="kc")


def test_no_default_key_names_both() -> None:
    with pytest.raises(RemoteKubeConfigError, match=r"does not contain a 'value' or 'value\.yaml' key with data"):
        secret_kubeconfig({"config": b"a"}, secret="ns/s", key=None)


# --- accepted ---------------------------------------------------------------------------------------------


def test_token_and_inline_ca_become_a_one_context_document() -> None:
    raw = kubeconfig(
        contexts=[
            {"name": "far", "context": {"cluster": "far", "user": "admin"}},
            {"name": "other", "context": {"cluster": "far", "user": "admin", "namespace": "x"}},
        ],
    )
    remote = parse_remote(raw, origin=ORIGIN)
    assert remote.server == "https://10.1.2.3:6443"
    assert not remote.uses_exec
    doc = orjson.loads(remote.document_bytes())
    assert [c["name"] for c in doc["contexts"]] == ["remote"]
    assert doc["current-context"] == "remote"
    assert doc["clusters"][0]["cluster"] == {
        "server": "https://10.1.2.3:6443",
        "certificate-authority-data": base64.b64encode(CA).decode(),
    }
    assert doc["users"][0]["user"] == {"token": "s3cret-token"}
    assert "s3cret-token" not in repr(remote)


def test_client_certificate_data_and_basic_auth_are_kept() -> None:
    cert, key = base64.b64encode(b"cert").decode(), base64.b64encode(b"key").decode()
    raw = kubeconfig(user={"client-certificate-data": cert, "client-key-data": key, "username": "u", "password": "p"})
    user = parse_remote(raw, origin=ORIGIN).document["users"][0]["user"]
    assert user == {"client-certificate-data": cert, "client-key-data": key, "username": "u", "password": "p"}


def test_a_path_beside_inline_data_is_unused_as_in_kubectl() -> None:
    raw = kubeconfig(cluster={"certificate-authority": "/etc/ca.crt"})
    doc = parse_remote(raw, origin=ORIGIN).document
    assert "certificate-authority" not in doc["clusters"][0]["cluster"]


def test_insecure_tls_and_exec_with_the_flags() -> None:
    insecure = kubeconfig(cluster={"insecure-skip-tls-verify": True, "certificate-authority-data": None})
    doc = parse_remote(insecure, origin=ORIGIN, options=RemoteOptions(allow_insecure_tls=True)).document
    assert doc["clusters"][0]["cluster"]["insecure-skip-tls-verify"] is True
    plugin = {"apiVersion": "client.authentication.k8s.io/v1", "command": "get-token", "args": ["--x"]}
    remote = parse_remote(kubeconfig(user={"exec": plugin}), origin=ORIGIN, options=RemoteOptions(allow_exec=True))
    assert remote.uses_exec
    assert remote.document["users"][0]["user"] == {"exec": plugin}


# --- refused ----------------------------------------------------------------------------------------------


def test_exec_is_refused_without_the_flag() -> None:
    message = refused(kubeconfig(user={"exec": {"command": "/bin/sh", "args": ["-c", "id"]}}))
    assert "exec runs a program" in message
    assert "--insecure-kubeconfig-exec" in message
    assert "/bin/sh" not in message


def test_auth_provider_is_always_refused() -> None:
    raw = kubeconfig(user={"auth-provider": {"name": "oidc", "config": {"id-token": "s3cret-token"}}})
    for options in (NO_FLAGS, RemoteOptions(allow_exec=True, allow_insecure_tls=True)):
        assert "auth-provider plugins are not supported" in refused(raw, options)


@pytest.mark.parametrize(
    ("cluster", "user", "field"),
    [
        (
            {"certificate-authority": "/etc/kubernetes/pki/ca.crt", "certificate-authority-data": None},
            None,
            "certificate-authority",
        ),
        (None, {"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}, "tokenFile"),
        (None, {"token": "s3cret-token", "tokenFile": "/root/token"}, "tokenFile"),
        (None, {"client-certificate": "/root/c.crt", "client-key-data": "a2V5"}, "client-certificate"),
        (None, {"client-certificate-data": "Y2VydA==", "client-key": "/root/c.key"}, "client-key"),
    ],
)
def test_host_paths_are_refused(cluster: dict[str, Any] | None, user: dict[str, Any] | None, field: str) -> None:
    message = refused(kubeconfig(cluster=cluster, user=user))
    assert f"{field} is a file path on the controller's host" in message


def test_insecure_tls_is_refused_without_the_flag() -> None:
    message = refused(kubeconfig(cluster={"insecure-skip-tls-verify": True}))
    assert "--insecure-kubeconfig-tls" in message


def test_impersonation_and_proxy_are_refused() -> None:
    assert "spec.serviceAccountName" in refused(kubeconfig(user={"token": "s3cret-token", "as": "system:admin"}))
    assert "proxy-url" in refused(kubeconfig(cluster={"proxy-url": "http://127.0.0.1:3128"}))


def test_not_a_kubeconfig() -> None:
    assert "invalid YAML" in refused(b"clusters: [s3cret-token\n")
    no_context: dict[str, Any] = {"current-context": ""}
    assert "no context selected" in refused(kubeconfig(**no_context))
    assert "not a kubeconfig" in refused(b"- a list\n")


async def test_connect_builds_a_client_for_the_server() -> None:
    raw = kubeconfig(cluster={"certificate-authority-data": None})
    remote = parse_remote(raw, origin=ORIGIN)
    client = await remote.connect()
    try:
        assert client.config.host == "https://10.1.2.3:6443"
        assert await client.config.authorization() == "Bearer s3cret-token"
    finally:
        await client.close()


async def test_connect_reports_a_bad_ca_as_the_secrets_fault() -> None:
    remote = parse_remote(kubeconfig(), origin=ORIGIN)  # the CA is not a certificate
    with pytest.raises(RemoteKubeConfigError, match=r"Secret 'apps/remote' key 'value': cluster 'far'"):
        await remote.connect()


async def test_an_allowed_exec_plugin_supplies_the_token(tmp_path: Path) -> None:
    plugin = tmp_path / "get-token"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": "from-the-plugin"},
    }
    plugin.write_text(f"#!/bin/sh\necho '{json.dumps(credential)}'\n")
    plugin.chmod(0o700)
    stanza = {"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin), "interactiveMode": "Never"}
    raw = kubeconfig(cluster={"certificate-authority-data": None}, user={"exec": stanza})
    remote = parse_remote(raw, origin=ORIGIN, options=RemoteOptions(allow_exec=True))
    client = await remote.connect()
    try:
        assert await client.config.authorization() == "Bearer from-the-plugin"
    finally:
        await client.close()
