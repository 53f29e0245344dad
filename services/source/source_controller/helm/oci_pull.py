"""Helm charts in OCI registries, the I/O: a HelmRepository's Secrets as registry credentials and TLS, the login
check of ``type: oci``, and a chart version resolved from the registry's tags and pulled.

Over the runtime's registry client (:mod:`gitops_mesh.oci`: the distribution API, token auth, caps, digests);
no helm process is needed, and credentials never leave this process. Flux's rules on the Secrets
(internal/helm/getter/client_opts.go, internal/helm/registry/auth.go):

* ``secretRef`` is a ``.dockerconfigjson`` (its entry for the registry's host; none is an error) or
  ``username`` + ``password`` (both or neither; neither is anonymous). Its deprecated TLS keys
  (``certFile``/``keyFile``/``caFile``) count only without a ``certSecretRef``.
* ``certSecretRef`` holds ``ca.crt`` (added to the system roots) and/or ``tls.crt`` + ``tls.key``.
* ``insecure: true`` talks plain HTTP to the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from gitops_mesh.artifacts.extract import ExtractLimits
from gitops_mesh.errors import TransientError
from gitops_mesh.oci import (
    Credentials,
    DockerConfigError,
    InvalidTLSMaterial,
    Limits,
    OciError,
    RegistryAuthFailed,
    RegistryClient,
    Repository,
    Transport,
    docker_config_credentials,
    tls_context,
)
from source_controller.helm.chart import CHART_LIMITS, DEFAULT_MAX_CHART_SIZE, ChartBuild, read_chart_archive
from source_controller.helm.errors import ChartPullError, CorruptChart, RepositoryAuthFailed
from source_controller.helm.oci import OciLocation, chart_layer, exact_version, select_version, tag_of

DOCKER_CONFIG_KEY = ".dockerconfigjson"


class OciAuthInvalid(TransientError):
    """A Secret that cannot be used as the registry's credentials or TLS material (fixing the Secret fixes it)."""

    reason = "AuthenticationFailed"


@dataclass(frozen=True, slots=True)
class OciAuth:
    """What a HelmRepository's Secrets say about reaching its registry."""

    credentials: Credentials | None = field(default=None, repr=False)
    ssl: ssl.SSLContext | None = field(default=None, repr=False)


def oci_auth(
    registry: str,
    secret: Mapping[str, bytes] | None,
    cert_secret: Mapping[str, bytes] | None,
    *,
    secret_name: str = "",
) -> OciAuth:
    """Read ``secretRef`` / ``certSecretRef`` data (decoded) for ``registry`` as Flux does; OciAuthInvalid else."""
    secret = secret or {}
    credentials: Credentials | None = None
    if DOCKER_CONFIG_KEY in secret:
        try:
            credentials = docker_config_credentials(secret[DOCKER_CONFIG_KEY], registry)
        except DockerConfigError as e:
            raise OciAuthInvalid(f"unable to load Docker config from Secret '{secret_name}': {e}") from e
        if credentials is None:
            raise OciAuthInvalid(f"no auth config for '{registry}' in the docker-registry Secret '{secret_name}'")
    else:
        username, password = secret.get("username") or b"", secret.get("password") or b""
        if bool(username) != bool(password):
            raise OciAuthInvalid(f"invalid '{secret_name}' secret data: required fields 'username' and 'password'")
        if username:
            credentials = Credentials(username.decode(errors="replace"), password.decode(errors="replace"))
    if cert_secret is not None:
        ca, cert, key = cert_secret.get("ca.crt"), cert_secret.get("tls.crt"), cert_secret.get("tls.key")
    else:
        ca, cert, key = secret.get("caFile"), secret.get("certFile"), secret.get("keyFile")
    context = None
    if ca or cert or key:
        try:
            context = tls_context(ca or None, cert or None, key or None)
        except InvalidTLSMaterial as e:
            raise OciAuthInvalid(f"failed to construct Helm client's TLS config: {e}") from e
    return OciAuth(credentials, context)


def registry_client(
    http: aiohttp.ClientSession,
    location: OciLocation,
    auth: OciAuth,
    *,
    insecure: bool,
    timeout: float,
    max_chart_size: int = DEFAULT_MAX_CHART_SIZE,
) -> RegistryClient:
    """A client of the repository's registry for one reconcile (charts are small: blobs capped at the chart cap)."""
    return RegistryClient(
        http,
        location.registry,
        credentials=auth.credentials,
        transport=Transport(insecure=insecure, ssl=auth.ssl, timeout=timeout),
        limits=Limits(max_blob_bytes=max_chart_size),
    )


def _auth_error(e: BaseException) -> bool:
    """Flux reports a failure as AuthenticationFailed when it is about credentials or TLS."""
    return isinstance(e, RegistryAuthFailed) or isinstance(e.__cause__, (ssl.SSLError, aiohttp.ClientSSLError))


async def login(client: RegistryClient, url: str, *, timeout: float) -> None:
    """Log in: the registry answers ``/v2/`` to the client's credentials (Flux's check of an OCI HelmRepository
    with a secretRef; without one Flux contacts nothing, and neither does the caller)."""
    try:
        async with asyncio.timeout(timeout):
            await client.ping()
    except TimeoutError as e:
        raise TransientError(f"failed to login to registry '{url}': timed out after {timeout:g}s") from e
    except OciError as e:
        reason = "AuthenticationFailed" if _auth_error(e) else "Failed"
        raise TransientError(f"failed to login to registry '{url}': {e}", reason=reason) from e


async def resolve_version(client: RegistryClient, repo: Repository, wanted: str) -> str:
    """The chart version ``wanted`` names: itself when it is a version, else chosen from the registry's tags."""
    wanted = wanted.strip()
    if wanted and exact_version(wanted):
        return wanted
    try:
        tags = await client.tags(repo)
    except OciError as e:
        if _auth_error(e):
            raise RepositoryAuthFailed(
                f"failed to authenticate with the Helm repository: could not get tags for {repo}: {e}", url=str(repo)
            ) from e
        raise ChartPullError(
            f"failed to get chart version for remote reference: could not get tags for {repo}: {e}",
            retry_after=getattr(e, "retry_after", None),
        ) from e
    try:
        return select_version(tags, wanted)
    except ChartPullError as e:
        raise ChartPullError(f"failed to get chart version for remote reference {repo}: {e}") from e


async def pull_chart(
    client: RegistryClient,
    repo: Repository,
    name: str,
    version: str,
    dest_dir: Path,
    *,
    limits: ExtractLimits = CHART_LIMITS,
    digest: str | None = None,
) -> ChartBuild:
    """Pull ``oci://<repo>:<version>`` into ``dest_dir`` as ``<name>-<version>.tgz``: the manifest's chart layer,
    its digest checked by the client, the archive validated as a chart.

    With ``digest`` (the manifest a signature was verified for) the manifest is taken by that digest, so a tag
    moved since the verification cannot slip another chart in."""
    shown = f"oci://{repo}:{tag_of(version)}"
    final = dest_dir / f"{name}-{version}.tgz"
    tmp = dest_dir / f".{name}-{version}.pull"
    try:
        manifest = await client.manifest(repo, digest or tag_of(version))
        layer = manifest.layers[chart_layer(manifest, shown)]
        await client.fetch_blob(repo, layer, tmp)
    except OciError as e:
        if _auth_error(e):
            raise RepositoryAuthFailed(
                f"failed to authenticate with the Helm repository: failed to get '{shown}': {e}", url=shown
            ) from e
        raise ChartPullError(
            f"failed to download chart for remote reference: failed to get '{shown}': {e}",
            retry_after=getattr(e, "retry_after", None),
        ) from e
    try:
        try:
            meta = await asyncio.to_thread(read_chart_archive, tmp, limits=limits)
        except CorruptChart as e:
            raise CorruptChart(f"chart {name}-{version} from {shown}: {e}") from e
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return ChartBuild(
        name=name,
        version=version,
        path=final,
        digest=layer.digest,
        size=layer.size,
        packaged=False,
        metadata=meta,
    )
