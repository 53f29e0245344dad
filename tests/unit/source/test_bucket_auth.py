"""A Bucket's Secrets read as Flux reads them: required fields, Flux's messages, no value in any error."""

from __future__ import annotations

import pytest

from source_controller.objectstore.auth import (
    AzureSAS,
    AzureServicePrincipal,
    AzureSharedKey,
    azure_account_name,
    azure_credential,
    proxy_url,
    s3_keys,
    tls_material,
)
from source_controller.objectstore.errors import AuthenticationFailed, ClientError


def test_s3_keys_and_anonymous() -> None:
    keys = s3_keys("creds", {"accesskey": b"AK", "secretkey": b"SK-secret"})
    assert keys is not None
    assert (keys.access_key, keys.secret_key) == ("AK", "SK-secret")
    assert "SK-secret" not in repr(keys)
    assert s3_keys("creds", None) is None


@pytest.mark.parametrize(
    "data", [{}, {"accesskey": b"AK"}, {"secretkey": b"SK"}, {"accesskey": b"", "secretkey": b"x"}]
)
def test_s3_keys_missing_field_is_fluxs_message(data: dict[str, bytes]) -> None:
    with pytest.raises(AuthenticationFailed) as e:
        s3_keys("creds", data)
    assert str(e.value) == "invalid 'creds' secret data: required fields 'accesskey' and 'secretkey'"
    assert e.value.reason == "AuthenticationFailed"


def test_tls_material_pairs_and_emptiness() -> None:
    tls = tls_material("tls", {"ca.crt": b"CA", "tls.crt": b"C", "tls.key": b"K"})
    assert tls is not None
    assert (tls.ca, tls.cert, tls.key) == (b"CA", b"C", b"K")
    with pytest.raises(AuthenticationFailed, match=r"both 'tls\.crt' and 'tls\.key'"):
        tls_material("tls", {"tls.crt": b"C"})
    with pytest.raises(AuthenticationFailed, match="does not contain any TLS configuration"):
        tls_material("tls", {"other": b"x"})


def test_proxy_url_with_basic_auth_and_errors_without_the_address() -> None:
    url = proxy_url("ns", "proxy", {"address": b"http://proxy:3128", "username": b"u@x", "password": b"p:w"})
    assert url == "http://u%40x:p%3Aw@proxy:3128"
    assert proxy_url("ns", "proxy", {"address": b"https://proxy"}) == "https://proxy"
    with pytest.raises(AuthenticationFailed, match="invalid proxy secret 'ns/proxy': key 'address' is missing"):
        proxy_url("ns", "proxy", {"username": b"u"})
    with pytest.raises(AuthenticationFailed) as e:
        proxy_url("ns", "proxy", {"address": b"socks5://user:hunter2@proxy"})
    assert "hunter2" not in str(e.value)


def test_azure_account_name_from_endpoint() -> None:
    assert azure_account_name("https://myacct.blob.core.windows.net") == "myacct"
    # Azurite's path-style URL: the account is the first path segment.
    assert azure_account_name("http://127.0.0.1:10000/devstoreaccount1") == "devstoreaccount1"
    with pytest.raises(ClientError, match=r"expected 'example\.com' to be a subdomain"):
        azure_account_name("https://example.com")


def test_azure_credentials_in_fluxs_order() -> None:
    endpoint = "https://acct.blob.core.windows.net"
    sp = azure_credential(
        "s", endpoint, {"tenantId": b"t", "clientId": b"c", "clientSecret": b"cs", "accountKey": b"k"}
    )
    assert isinstance(sp, AzureServicePrincipal)
    assert (sp.tenant_id, sp.client_id, sp.client_secret, sp.authority_host) == ("t", "c", "cs", None)
    cert = azure_credential(
        "s",
        endpoint,
        {"tenantId": b"t", "clientId": b"c", "clientCertificate": b"PEM", "clientCertificateSendChain": b"true"},
    )
    assert isinstance(cert, AzureServicePrincipal)
    assert cert.certificate == b"PEM"
    assert cert.send_certificate_chain
    key = azure_credential("s", endpoint, {"accountKey": b"k=="})
    assert key == AzureSharedKey("acct", "k==")
    sas = azure_credential("s", endpoint, {"sasKey": b"?sv=2020&sig=abc"})
    assert sas == AzureSAS("sv=2020&sig=abc")
    assert azure_credential("s", endpoint, None) is None


def test_azure_managed_identity_is_refused_clearly() -> None:
    with pytest.raises(AuthenticationFailed, match=r"managed identity .* not implemented"):
        azure_credential("s", "https://acct.blob.core.windows.net", {"clientId": b"c"})


def test_azure_secret_without_credentials_is_fluxs_message() -> None:
    with pytest.raises(AuthenticationFailed, match="invalid 's' secret data: requires a 'clientId' or 'accountKey'"):
        azure_credential("s", "https://acct.blob.core.windows.net", {"foo": b"bar"})
