"""How to reach a registry for one object: credentials from spec.secretRef (a ``.dockerconfigjson``) or the
imagePullSecrets of spec.serviceAccountName, TLS from spec.certSecretRef, a proxy from spec.proxySecretRef.

Flux's rules: the Secrets are in the object's namespace; secretRef's entry for the registry comes first, then
the ServiceAccount's pull secrets in order; no entry means anonymous. A missing Secret is retried (it may be
created after the object), never Stalled. Messages name Secrets and keys, never their content.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from gitops_mesh.errors import NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.secrets import secret_data
from gitops_mesh.oci import Credentials, DockerConfigError, InvalidTLSMaterial, Transport, tls_context
from gitops_mesh.oci.auth import DOCKER_CONFIG_KEY, docker_config_credentials


class AccessError(ValueError):
    """A Secret that is missing or does not say what it must; ``what`` is the step, in Flux's words."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__(message)
        self.what = what


CREDENTIAL = "failed to get credential"
PROXY = "failed to get proxy address"


def _transport_step(url: str) -> str:
    return f"failed to generate transport for '{url}'"


@dataclass(frozen=True, slots=True)
class RegistryAccess:
    credentials: Credentials | None = field(default=None, repr=False)
    transport: Transport = field(default_factory=Transport)


async def _secret(kube: KubeClient, namespace: str, name: str, what: str) -> dict[str, bytes]:
    try:
        return await secret_data(kube, namespace, name)
    except NotFound as e:
        raise AccessError(what, f"secret '{namespace}/{name}' not found") from e


def _docker_credentials(data: Mapping[str, bytes], secret: str, registry: str) -> Credentials | None:
    config = data.get(DOCKER_CONFIG_KEY)
    if config is None:
        raise AccessError(CREDENTIAL, f"secret '{secret}' has no '{DOCKER_CONFIG_KEY}' key (a docker-registry Secret)")
    try:
        return docker_config_credentials(config, registry)
    except DockerConfigError as e:
        raise AccessError(CREDENTIAL, f"secret '{secret}': {e}") from e


async def _credentials(kube: KubeClient, ns: str, spec: Mapping[str, Any], registry: str) -> Credentials | None:
    name = (spec.get("secretRef") or {}).get("name")
    if name:
        found = _docker_credentials(await _secret(kube, ns, name, CREDENTIAL), f"{ns}/{name}", registry)
        if found is not None:
            return found
    account = spec.get("serviceAccountName")
    if not account:
        return None
    try:
        sa = await kube.get("v1", "ServiceAccount", account, namespace=ns)
    except NotFound as e:
        raise AccessError(CREDENTIAL, f"serviceaccount '{ns}/{account}' not found") from e
    for ref in sa.get("imagePullSecrets") or []:
        secret = (ref or {}).get("name")
        if secret:
            found = _docker_credentials(await _secret(kube, ns, secret, CREDENTIAL), f"{ns}/{secret}", registry)
            if found is not None:
                return found
    return None


async def _proxy(kube: KubeClient, ns: str, name: str) -> tuple[str, aiohttp.BasicAuth | None]:
    data = await _secret(kube, ns, name, PROXY)
    address = data.get("address", b"").decode(errors="replace").strip()
    if not address:
        raise AccessError(PROXY, f"invalid proxy secret '{ns}/{name}': key 'address' is missing")
    if urlsplit(address).scheme not in ("http", "https") or not urlsplit(address).netloc:
        raise AccessError(PROXY, f"invalid proxy secret '{ns}/{name}': 'address' is not an http(s) URL")
    user, password = data.get("username"), data.get("password")
    if user:
        return address, aiohttp.BasicAuth(user.decode(errors="replace"), (password or b"").decode(errors="replace"))
    return address, None


async def registry_access(
    kube: KubeClient, namespace: str, spec: Mapping[str, Any], registry: str, *, timeout: float
) -> RegistryAccess:
    """Everything spec's Secrets say about reaching ``registry``; AccessError names the failing step."""
    credentials = await _credentials(kube, namespace, spec, registry)
    ssl = None
    cert_secret = (spec.get("certSecretRef") or {}).get("name")
    if cert_secret:
        url = str(spec.get("url") or "")
        data = await _secret(kube, namespace, cert_secret, _transport_step(url))
        try:
            ssl = tls_context(data.get("ca.crt"), data.get("tls.crt"), data.get("tls.key"))
        except InvalidTLSMaterial as e:
            raise AccessError(_transport_step(url), f"secret '{namespace}/{cert_secret}': {e}") from e
    proxy, proxy_auth = None, None
    proxy_secret = (spec.get("proxySecretRef") or {}).get("name")
    if proxy_secret:
        proxy, proxy_auth = await _proxy(kube, namespace, proxy_secret)
    transport = Transport(
        insecure=bool(spec.get("insecure")), ssl=ssl, proxy=proxy, proxy_auth=proxy_auth, timeout=timeout
    )
    return RegistryAccess(credentials, transport)
