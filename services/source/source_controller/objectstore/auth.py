"""A Bucket's Secrets read into what a provider's client needs, pure: Flux's checks and wording, no I/O.

Secret values are kept in these objects only: their ``repr`` hides them, and every error names the Secret
and the missing field, never a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

from source_controller.objectstore.errors import AuthenticationFailed, ClientError


@dataclass(frozen=True, slots=True)
class S3Keys:
    """S3 credentials: static (``accesskey``/``secretkey``), or temporary ones from spec.sts with their session token."""

    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


def _text(secret_name: str, data: Mapping[str, bytes], key: str) -> str:
    try:
        return data[key].decode()
    except UnicodeDecodeError:
        raise AuthenticationFailed(f"invalid '{secret_name}' secret data: '{key}' is not UTF-8 text") from None


def s3_keys(secret_name: str, data: Mapping[str, bytes] | None) -> S3Keys | None:
    """The generic/aws provider's keys; None without a Secret (anonymous). Flux's ValidateSecret message."""
    if data is None:
        return None
    access, secret = data.get("accesskey"), data.get("secretkey")
    if not access or not secret:
        raise AuthenticationFailed(f"invalid '{secret_name}' secret data: required fields 'accesskey' and 'secretkey'")
    return S3Keys(_text(secret_name, data, "accesskey"), _text(secret_name, data, "secretkey"))


@dataclass(frozen=True, slots=True)
class TLSMaterial:
    """certSecretRef: a CA to trust and/or a client certificate with its key (PEM)."""

    ca: bytes | None = field(default=None, repr=False)
    cert: bytes | None = field(default=None, repr=False)
    key: bytes | None = field(default=None, repr=False)


def tls_material(secret_name: str, data: Mapping[str, bytes] | None) -> TLSMaterial | None:
    """``ca.crt``, ``tls.crt`` and ``tls.key`` (one of the pair without the other is an error, as in Flux)."""
    if data is None:
        return None
    ca, cert, key = data.get("ca.crt") or data.get("caFile"), data.get("tls.crt"), data.get("tls.key")
    if bool(cert) != bool(key):
        raise AuthenticationFailed(
            f"failed to create TLS config: '{secret_name}' secret must contain both 'tls.crt' and 'tls.key'"
        )
    if not ca and not cert:
        raise AuthenticationFailed("certificate secret does not contain any TLS configuration")
    return TLSMaterial(ca or None, cert or None, key or None)


def proxy_url(namespace: str, secret_name: str, data: Mapping[str, bytes] | None) -> str | None:
    """proxySecretRef's ``address`` with ``username``/``password`` as its userinfo (Flux's getProxyURL)."""
    if data is None:
        return None
    address = data.get("address")
    if not address:
        raise AuthenticationFailed(f"invalid proxy secret '{namespace}/{secret_name}': key 'address' is missing")
    parts = urlsplit(address.decode(errors="replace").strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The address itself may hold credentials: it is not quoted back.
        raise AuthenticationFailed(
            f"invalid proxy secret '{namespace}/{secret_name}': 'address' must be an http:// or https:// URL"
        )
    user, password = data.get("username"), data.get("password")
    if user is None and password is None:
        return parts.geturl()
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    userinfo = f"{quote((user or b'').decode(), safe='')}:{quote((password or b'').decode(), safe='')}"
    return urlunsplit((parts.scheme, f"{userinfo}@{netloc}", parts.path, parts.query, parts.fragment))


@dataclass(frozen=True, slots=True)
class AzureSharedKey:
    account_name: str
    account_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class AzureSAS:
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class AzureServicePrincipal:
    tenant_id: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    certificate: bytes | None = field(default=None, repr=False)
    certificate_password: bytes | None = field(default=None, repr=False)
    send_certificate_chain: bool = False
    authority_host: str | None = None


AzureCredential = AzureSharedKey | AzureSAS | AzureServicePrincipal


def azure_account_name(endpoint: str) -> str:
    """The storage account of an endpoint: the first label of ``<account>.blob.<suffix>`` as Flux takes it, or
    the first path segment of an emulator's path-style URL (``http://127.0.0.1:10000/<account>``)."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    labels = host.split(".")
    if len(labels) > 2 and not host.replace(".", "").isdigit():
        return labels[0]
    segment = parts.path.strip("/").split("/")[0]
    if segment:
        return segment
    raise ClientError(f"failed to extract account name from endpoint: expected '{host}' to be a subdomain")


def azure_credential(secret_name: str, endpoint: str, data: Mapping[str, bytes] | None) -> AzureCredential | None:
    """Flux's order: a service principal (secret, then certificate), then a managed identity (refused: not
    implemented), the account key, the SAS token. None without a Secret: anonymous access to a public container.
    """
    if data is None:
        return None
    tenant, client = data.get("tenantId"), data.get("clientId")
    authority = data.get("authorityHost")
    if tenant and client:
        if data.get("clientSecret"):
            return AzureServicePrincipal(
                _text(secret_name, data, "tenantId"),
                _text(secret_name, data, "clientId"),
                client_secret=_text(secret_name, data, "clientSecret"),
                authority_host=_text(secret_name, data, "authorityHost") if authority else None,
            )
        if data.get("clientCertificate"):
            send = (data.get("clientCertificateSendChain") or b"").decode(errors="replace").lower() in ("1", "true")
            return AzureServicePrincipal(
                _text(secret_name, data, "tenantId"),
                _text(secret_name, data, "clientId"),
                certificate=data["clientCertificate"],
                certificate_password=data.get("clientCertificatePassword") or None,
                send_certificate_chain=send,
                authority_host=_text(secret_name, data, "authorityHost") if authority else None,
            )
    if client or authority:
        raise AuthenticationFailed(
            f"'{secret_name}' secret selects a managed identity ('clientId' without 'tenantId'), which is not "
            "implemented; use 'accountKey', 'sasKey' or a service principal ('tenantId', 'clientId', 'clientSecret')"
        )
    if data.get("accountKey"):
        return AzureSharedKey(azure_account_name(endpoint), _text(secret_name, data, "accountKey"))
    if data.get("sasKey"):
        return AzureSAS(_text(secret_name, data, "sasKey").lstrip("?"))
    raise AuthenticationFailed(
        f"invalid '{secret_name}' secret data: requires a 'clientId' or 'accountKey' field, a combination of "
        "'tenantId', 'clientId' and 'clientSecret', or 'tenantId', 'clientId' and 'clientCertificate'"
    )
