"""A Bucket's ``spec.sts``: Flux's checks of it, and the temporary S3 credentials it yields (provider ``ldap``).

Flux (source-controller's minio client) reads spec.sts for the S3 providers only, as the CRD's rules allow it:
``ldap`` with the ``generic`` provider, ``aws`` with the ``aws`` provider. Its checks, words and reasons are kept: a
provider pair or fields the STS provider does not take is ``InvalidSTSConfiguration`` (Stalled), an endpoint that is
not an http(s) URL ``URLInvalid`` (Stalled), an STS Secret without ``username``/``password`` ``AuthenticationFailed``.
As in Flux, spec.secretRef's static keys win over spec.sts when both are set (minio-go is given the Secret's keys
and never asks the STS); the STS Secret is still read and checked.

``ldap`` is MinIO's ``AssumeRoleWithLDAPIdentity``, as minio-go sends it: a form POST to the endpoint URL as given
(its query too: an STS that needs more, such as SeaweedFS's RoleArn, takes it from there) with the LDAP username
and password, through spec.proxySecretRef's proxy, trusting spec.sts.certSecretRef's CA and presenting its client
certificate. The answer is a small XML document read with ElementTree (expat refuses entity amplification and
ElementTree resolves no external entity; the body is capped first), whose credentials sign the S3 requests with
their session token. A refused or failed call fails the bucket's existence check, where minio-go's lazy credentials
make it surface in Flux (``BucketOperationFailed``). Credentials stay in :class:`S3Keys` (hidden from ``repr``); no
message quotes the password, the keys or the answer's body.

``aws`` takes effect in Flux only without spec.secretRef, as the STS endpoint of the controller's own AWS credential
chain (IRSA's AssumeRoleWithWebIdentity); that chain is refused by :mod:`..bucket_plan`, so here ``aws`` is only
checked.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp

from gitops_mesh.errors import InvalidSpec, NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.kube.secrets import secret_data
from gitops_mesh.tls import InvalidTLSMaterial, tls_context
from source_controller.objectstore.auth import S3Keys, tls_material
from source_controller.objectstore.errors import AuthenticationFailed, BucketOperationFailed
from source_controller.objectstore.s3 import redact

#: Flux's reasons (source-controller api/v1 condition_types.go).
INVALID_STS_CONFIGURATION = "InvalidSTSConfiguration"
URL_INVALID = "URLInvalid"

STS_AWS, STS_LDAP = "aws", "ldap"
_STS_VERSION = "2011-06-15"
#: An AssumeRoleWithLDAPIdentity answer is well under a kilobyte; anything past this is not one.
MAX_ANSWER_BYTES = 64 << 10


@dataclass(frozen=True, slots=True)
class STSSpec:
    """spec.sts as read from the object."""

    provider: str
    endpoint: str
    secret_name: str | None
    cert_secret_name: str | None


def sts_spec(spec: Mapping[str, Any]) -> STSSpec | None:
    sts = spec.get("sts")
    if not sts:
        return None
    return STSSpec(
        provider=str(sts.get("provider") or ""),
        endpoint=str(sts.get("endpoint") or ""),
        secret_name=(sts.get("secretRef") or {}).get("name") or None,
        cert_secret_name=(sts.get("certSecretRef") or {}).get("name") or None,
    )


def shown(endpoint: str) -> str:
    """The endpoint as messages may quote it: without userinfo."""
    parts = urlsplit(endpoint)
    if parts.username is None and parts.password is None:
        return endpoint
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def check_sts(bucket_provider: str, sts: STSSpec) -> None:
    """Flux's ValidateSTSProvider and its endpoint parse: InvalidSpec (Stalled) with Flux's reason and words."""
    incompatible = f"STS provider '{sts.provider}' is not supported for '{bucket_provider}' bucket provider"
    if bucket_provider == "aws":
        if sts.provider != STS_AWS:
            raise InvalidSpec(incompatible, reason=INVALID_STS_CONFIGURATION)
        if sts.secret_name:
            raise InvalidSpec(
                f"spec.sts.secretRef is not required for the '{sts.provider}' STS provider",
                reason=INVALID_STS_CONFIGURATION,
            )
        if sts.cert_secret_name:
            raise InvalidSpec(
                f"spec.sts.certSecretRef is not required for the '{sts.provider}' STS provider",
                reason=INVALID_STS_CONFIGURATION,
            )
    elif bucket_provider == "generic":
        if sts.provider != STS_LDAP:
            raise InvalidSpec(incompatible, reason=INVALID_STS_CONFIGURATION)
    else:
        raise InvalidSpec(
            f"STS configuration is not supported for '{bucket_provider}' bucket provider",
            reason=INVALID_STS_CONFIGURATION,
        )
    try:
        parts = urlsplit(sts.endpoint)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError as e:
        raise InvalidSpec(f"failed to parse STS endpoint '{shown(sts.endpoint)}': {e}", reason=URL_INVALID) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The CRD's pattern (^(http|https)://.*$) admits no other; an object written before it is refused here.
        raise InvalidSpec(
            f"failed to parse STS endpoint '{shown(sts.endpoint)}': an http:// or https:// URL with a host is required",
            reason=URL_INVALID,
        )


@dataclass(frozen=True, slots=True)
class LDAPLogin:
    username: str = field(repr=False)
    password: str = field(repr=False)


def ldap_login(provider: str, secret_name: str | None, data: Mapping[str, bytes] | None) -> LDAPLogin:
    """Flux's ValidateSTSSecret for ``ldap``: both fields non-empty when a Secret is named; none named sends empty
    ones, as minio-go does (the STS refuses them)."""
    if data is None:
        return LDAPLogin("", "")
    if not data.get("username") or not data.get("password"):
        raise AuthenticationFailed(
            f"invalid '{secret_name}' secret data for '{provider}' STS provider: required fields username, password"
        )
    try:
        return LDAPLogin(data["username"].decode(), data["password"].decode())
    except UnicodeDecodeError:
        raise AuthenticationFailed(
            f"invalid '{secret_name}' secret data: 'username' or 'password' is not UTF-8 text"
        ) from None


def ldap_form(login: LDAPLogin) -> bytes:
    """The AssumeRoleWithLDAPIdentity form, minio-go's fields."""
    return urlencode(
        {
            "Action": "AssumeRoleWithLDAPIdentity",
            "Version": _STS_VERSION,
            "LDAPUsername": login.username,
            "LDAPPassword": login.password,
        }
    ).encode()


class STSAnswerError(ValueError):
    """The STS refused, or answered something that is not credentials; the message quotes no secret."""


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _find(root: ET.Element, name: str) -> ET.Element | None:
    return next((e for e in root.iter() if _local(e.tag) == name), None)


def _field(parent: ET.Element, name: str) -> str:
    child = next((e for e in parent if _local(e.tag) == name), None)
    return (child.text or "").strip() if child is not None else ""


def parse_ldap_answer(status: int, body: bytes) -> S3Keys:
    """The credentials of a 200 answer; else the STS's (or S3's) ``Code: Message``, as minio-go reads errors."""
    if len(body) > MAX_ANSWER_BYTES:
        raise STSAnswerError(f"the STS answer is larger than {MAX_ANSWER_BYTES} bytes")
    try:
        root: ET.Element | None = ET.fromstring(body)
    except ET.ParseError:
        root = None
    if status != 200:
        error = _find(root, "Error") if root is not None else None
        if error is None:
            raise STSAnswerError(f"the STS answered HTTP {status}")
        detail = f"{_field(error, 'Code') or 'error'}: {_field(error, 'Message')}".strip().rstrip(":")
        raise STSAnswerError(detail[:500])
    if root is None or _local(root.tag) != "AssumeRoleWithLDAPIdentityResponse":
        raise STSAnswerError("the STS answer is not an AssumeRoleWithLDAPIdentityResponse")
    credentials = _find(root, "Credentials")
    if credentials is None:
        raise STSAnswerError("the STS answer holds no Credentials")
    access, secret = _field(credentials, "AccessKeyId"), _field(credentials, "SecretAccessKey")
    if not access or not secret:
        raise STSAnswerError("the STS answer's Credentials lack AccessKeyId or SecretAccessKey")
    return S3Keys(access, secret, _field(credentials, "SessionToken") or None)


async def assume_role_with_ldap(
    endpoint: str,
    login: LDAPLogin,
    *,
    ssl_context: Any,
    proxy: str | None,
    timeout: float,
) -> S3Keys:
    """POST the form; STSAnswerError for an answer that is not credentials, OSError/aiohttp errors as they come."""
    async with (
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1, ssl=ssl_context),
            timeout=aiohttp.ClientTimeout(total=timeout),
            # As the S3 client: the Secret's proxy, else the process environment's (Go's ProxyFromEnvironment).
            trust_env=proxy is None,
        ) as http,
        http.post(
            endpoint,
            data=ldap_form(login),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            proxy=proxy,
            allow_redirects=False,
        ) as resp,
    ):
        # read(n) gives what is buffered, not n bytes: read to the end, stopping past the cap.
        body = b""
        async for chunk in resp.content.iter_chunked(1 << 14):
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                break
        return parse_ldap_answer(resp.status, body)


async def _read(kube: KubeClient, namespace: str, name: str | None, what: str) -> dict[str, bytes] | None:
    if not name:
        return None
    try:
        return await secret_data(kube, namespace, name)
    except NotFound:
        # Created after the Bucket is normal: retried, as Flux retries it.
        raise AuthenticationFailed(f"failed to get {what} '{namespace}/{name}': not found") from None


async def with_sts(
    kube: KubeClient, obj: KubeObject, keys: S3Keys | None, *, proxy: str | None, timeout: float
) -> S3Keys | None:
    """The keys the S3 client signs with: spec.secretRef's ``keys`` when given, else spec.sts's temporary ones, else
    None (anonymous). spec.sts is checked either way, as Flux checks it."""
    spec, namespace = obj["spec"], obj["metadata"]["namespace"]
    sts = sts_spec(spec)
    if sts is None:
        return keys
    provider = str(spec.get("provider") or "generic")
    check_sts(provider, sts)
    secret = await _read(kube, namespace, sts.secret_name, "STS secret")
    cert = await _read(kube, namespace, sts.cert_secret_name, "STS secret")
    login = ldap_login(sts.provider, sts.secret_name, secret) if sts.provider == STS_LDAP else None
    if keys is not None or login is None:
        return keys
    tls = tls_material(sts.cert_secret_name or "", cert)
    try:
        context = tls_context(tls.ca, tls.cert, tls.key) if tls is not None else True
    except InvalidTLSMaterial as e:
        raise AuthenticationFailed(f"failed to get STS TLS config: {e}") from None
    failed = f"failed to confirm existence of '{spec['bucketName']}' bucket: STS AssumeRoleWithLDAPIdentity at"
    try:
        return await assume_role_with_ldap(sts.endpoint, login, ssl_context=context, proxy=proxy, timeout=timeout)
    except STSAnswerError as e:
        detail = str(e)
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        detail = redact(str(e) or type(e).__name__, login.password)[:500]
    raise BucketOperationFailed(f"{failed} '{shown(sts.endpoint)}': {detail}")
