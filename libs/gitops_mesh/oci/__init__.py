"""The runtime's OCI registry client (distribution API v2), shared by every controller that reads or writes a
registry: source-controller's OCIRepository and OCI HelmRepository/HelmChart, helm-controller through them,
image-reflector later, and the ``gitops-mesh push artifact`` command.

Why our own, on aiohttp: the maintained Python registry clients are synchronous — ``oras`` (ORAS's Python SDK)
is built on ``requests`` and would hold a thread per pull for a thousand OCIRepositories, and its auth and
redirect handling cannot take our caps, per-object TLS and proxies without patching it. The HTTP work is
aiohttp's (already the runtime's client: pooling, TLS, proxies, streaming); what is here is only the registry
protocol over it — the distribution spec's requests, the WWW-Authenticate challenge, token exchange — which
is small, pure where it can be, and tested against the real distribution registry.

Modules: :mod:`.reference` (names, pure), :mod:`.auth` (credentials and challenges, pure), :mod:`.manifest`
(manifests and Flux's media types, pure), :mod:`.tls` (SSL contexts), :mod:`.client` (the I/O),
:mod:`.cosign` (cosign's key-based signatures), :mod:`.errors`.
"""

from gitops_mesh.oci.auth import Credentials, DockerConfigError, docker_config_credentials, first_credentials
from gitops_mesh.oci.client import AuthCache, Limits, RegistryClient, Transport
from gitops_mesh.oci.errors import (
    BlobInvalid,
    InvalidManifest,
    InvalidReference,
    ManifestNotFound,
    OciError,
    RegistryAuthFailed,
    RegistryUnavailable,
    TooLarge,
    UnexpectedAnswer,
)
from gitops_mesh.oci.manifest import Descriptor, Manifest
from gitops_mesh.oci.reference import DEFAULT_TAG, Repository, parse_repository
from gitops_mesh.tls import InvalidTLSMaterial, tls_context

__all__ = [
    "DEFAULT_TAG",
    "AuthCache",
    "BlobInvalid",
    "Credentials",
    "Descriptor",
    "DockerConfigError",
    "InvalidManifest",
    "InvalidReference",
    "InvalidTLSMaterial",
    "Limits",
    "Manifest",
    "ManifestNotFound",
    "OciError",
    "RegistryAuthFailed",
    "RegistryClient",
    "RegistryUnavailable",
    "Repository",
    "TooLarge",
    "Transport",
    "UnexpectedAnswer",
    "docker_config_credentials",
    "first_credentials",
    "parse_repository",
    "tls_context",
]
