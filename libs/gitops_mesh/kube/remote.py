"""Remote clusters: a kubeconfig from a tenant's Secret (``spec.kubeConfig.secretRef``) checked, then opened.

Where it sits: helm-controller (HelmRelease) and kustomize-controller (Kustomization) read the Secret their
object names, pick the key as Flux does (``key``, else ``value``, else ``value.yaml``), and hand the bytes
here. :func:`parse_remote` is pure: it resolves the current context with kubectl's rules (kubeconfig.py)
and decides what a tenant may ask for; :meth:`RemoteKubeConfig.connect` opens a client for it.

The kubeconfig is the tenant's, and this process runs on our host, so — as Flux's KubeConfig sanitiser in
fluxcd/pkg runtime/client — only inline material is used: a server, a CA, a client certificate and key,
a token or a username/password. Flux drops the rest silently; here each is refused with a message naming
the field (never a value), because a field ignored would connect differently than its author meant:

* ``exec`` runs a program on our host: refused unless the controller runs with ``--insecure-kubeconfig-exec``;
* ``insecure-skip-tls-verify``: refused unless it runs with ``--insecure-kubeconfig-tls``;
* ``auth-provider``, and file paths (``certificate-authority``, ``client-certificate``, ``client-key``,
  ``tokenFile``), which would read our host's files: always refused;
* ``as``/``as-groups``/``as-uid``/``as-user-extra`` (impersonation belongs to ``spec.serviceAccountName``)
  and ``proxy-url``: refused.

What a CLI (helm) is given is :attr:`RemoteKubeConfig.document`, rebuilt from what was checked — one
context, one cluster, one user — never the tenant's bytes, so a second context or stanza the checks did
not look at can never be selected by a tool.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson
import yaml

from gitops_mesh import tenant_yaml
from gitops_mesh.errors import TransientError
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.config import build, load_config
from gitops_mesh.kube.kubeconfig import KubeConfigError, Material, ResolvedContext, merge, resolve

#: Flux's keys, in order, when ``secretRef.key`` is not set.
DEFAULT_KEY: Final = "value"
DEFAULT_KEY_EXT: Final = "value.yaml"
#: A Secret holds at most 1 MiB; a kubeconfig past that is no kubeconfig.
LIMITS: Final = tenant_yaml.YamlLimits(max_bytes=1 << 20, max_nodes=100_000, max_depth=64)
#: Flux's default timeout for a remote cluster's requests (fluxcd/pkg KubeConfigOptions).
REQUEST_TIMEOUT: Final = 30.0
#: Connections to one remote cluster: its reconciles are few next to the local cluster's.
MAX_CONNECTIONS: Final = 10

_CLUSTER_PATH = "certificate-authority"
_USER_PATHS = ("client-certificate", "client-key", "tokenFile")
_IMPERSONATION = ("as", "as-uid", "as-groups", "as-user-extra")


class RemoteKubeConfigError(TransientError):
    """A tenant kubeconfig that cannot be used (missing key, not a kubeconfig, a refused field).

    Retried, never Stalled: the Secret is another object, and a fixed Secret fixes the release.
    """

    reason = "KubeConfigError"


@dataclass(frozen=True, slots=True)
class RemoteOptions:
    """Flux's flags (fluxcd/pkg runtime/client KubeConfigOptions): what a tenant kubeconfig may do."""

    #: --insecure-kubeconfig-exec: the user's ``exec`` plugin may run on our host
    allow_exec: bool = False
    #: --insecure-kubeconfig-tls: ``insecure-skip-tls-verify`` may turn TLS verification off
    allow_insecure_tls: bool = False


@dataclass(frozen=True, slots=True)
class RemoteKubeConfig:
    """A checked tenant kubeconfig: the server, and the one-context kubeconfig rebuilt from what was checked."""

    #: what messages call it: ``Secret 'ns/name' key 'value'``
    origin: str
    server: str
    context: ResolvedContext = field(repr=False)
    #: a kubeconfig (JSON is YAML) with only the checked context, cluster and user; holds credentials
    document: Mapping[str, Any] = field(repr=False)
    #: the user's credential comes from an exec plugin (only under ``allow_exec``)
    uses_exec: bool = False

    def document_bytes(self) -> bytes:
        return orjson.dumps(self.document)

    async def connect(self, *, request_timeout: float = REQUEST_TIMEOUT) -> KubeClient:
        """A client for the remote cluster; the caller closes it. Nothing on our host is read but the CA store."""
        try:
            if self.uses_exec:
                config = await self._delegated()
            else:
                config = build(self.context)
        except KubeConfigError as e:
            raise RemoteKubeConfigError(f"{self.origin}: {e}") from None
        return KubeClient(config, max_connections=MAX_CONNECTIONS, request_timeout=request_timeout)

    async def _delegated(self) -> Any:
        # kubernetes_asyncio's exec support reads a file: the rebuilt document, private, for the load alone.
        work = Path(tempfile.mkdtemp(prefix="gitops-mesh-remote-"))
        try:
            path = work / "kubeconfig"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(self.document_bytes())
            return await load_config(path)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def secret_kubeconfig(data: Mapping[str, bytes], *, secret: str, key: str | None) -> tuple[str, bytes]:
    """(the key used, its bytes) by Flux's rule: ``key`` when set, else ``value``, else ``value.yaml``."""
    if key:
        if key not in data:
            raise RemoteKubeConfigError(f"KubeConfig secret '{secret}' does not contain a '{key}' key with data")
        return key, data[key]
    for candidate in (DEFAULT_KEY, DEFAULT_KEY_EXT):
        if candidate in data:
            return candidate, data[candidate]
    raise RemoteKubeConfigError(
        f"KubeConfig secret '{secret}' does not contain a '{DEFAULT_KEY}' or '{DEFAULT_KEY_EXT}' key with data"
    )


def parse_remote(raw: bytes, *, origin: str, options: RemoteOptions = RemoteOptions()) -> RemoteKubeConfig:
    """Check a tenant's kubeconfig bytes (pure); RemoteKubeConfigError names the field that is refused."""
    try:
        document = tenant_yaml.load(raw, what=origin, limits=LIMITS)
    except tenant_yaml.UnsafeYaml as e:
        raise RemoteKubeConfigError(str(e)) from None
    except yaml.YAMLError as e:  # its text may quote a line: a credential
        raise RemoteKubeConfigError(f"{origin}: invalid YAML: {tenant_yaml.problem(e)}") from None
    try:
        merged = merge([(Path(origin), document)])
        resolved = resolve(merged)
    except KubeConfigError as e:
        raise RemoteKubeConfigError(str(e)) from None
    cluster_name = str(merged.contexts[resolved.name].body.get("cluster"))
    cluster_body = merged.clusters[cluster_name].body
    user_body = merged.users[resolved.user.name].body if resolved.user.name else {}
    _check_cluster(cluster_body, resolved, origin, options)
    uses_exec = _check_user(user_body, resolved, origin, options)
    doc = _document(resolved, user_body.get("exec") if uses_exec else None)
    return RemoteKubeConfig(origin, resolved.cluster.server, resolved, doc, uses_exec)


def _refused(origin: str, where: str, what: str) -> RemoteKubeConfigError:
    return RemoteKubeConfigError(f"{origin}: {where}: {what}")


def _check_cluster(body: Mapping[str, Any], resolved: ResolvedContext, origin: str, options: RemoteOptions) -> None:
    cluster, where = resolved.cluster, f"cluster {resolved.cluster.name!r}"
    if body.get(_CLUSTER_PATH) and not body.get(f"{_CLUSTER_PATH}-data"):
        raise _refused(
            origin,
            where,
            f"{_CLUSTER_PATH} is a file path on the controller's host, which a kubeconfig from a Secret may not "
            f"read; embed the CA as {_CLUSTER_PATH}-data",
        )
    if cluster.insecure and not options.allow_insecure_tls:
        raise _refused(
            origin,
            where,
            "insecure-skip-tls-verify turns TLS verification off, which is only allowed when the controller "
            "runs with --insecure-kubeconfig-tls; give certificate-authority-data instead",
        )
    if cluster.proxy:
        raise _refused(origin, where, "proxy-url is not supported for a remote cluster; connect directly")


def _check_user(body: Mapping[str, Any], resolved: ResolvedContext, origin: str, options: RemoteOptions) -> bool:
    """True when the user's credential is an (allowed) exec plugin."""
    where = f"user {resolved.user.name!r}"
    if "auth-provider" in body:
        raise _refused(origin, where, "auth-provider plugins are not supported; use a token or a client certificate")
    if "exec" in body:
        if not options.allow_exec:
            raise _refused(
                origin,
                where,
                "exec runs a program on the controller's host, which is only allowed when the controller runs "
                "with --insecure-kubeconfig-exec; use a token or a client certificate",
            )
        if not isinstance(body["exec"], Mapping) or not body["exec"].get("command"):
            raise _refused(origin, where, "exec has no command")
        return True
    for key in _USER_PATHS:
        if body.get(key) and not body.get(f"{key}-data"):
            hint = "token" if key == "tokenFile" else f"{key}-data"
            raise _refused(
                origin,
                where,
                f"{key} is a file path on the controller's host, which a kubeconfig from a Secret may not read; "
                f"embed it as {hint}",
            )
    for key in _IMPERSONATION:
        if body.get(key):
            raise _refused(origin, where, f"{key} (impersonation) is not supported here; use spec.serviceAccountName")
    return False


def _b64(material: Material | None) -> str | None:
    return base64.b64encode(material.data).decode("ascii") if material and material.data is not None else None


def _document(resolved: ResolvedContext, exec_stanza: Any) -> dict[str, Any]:
    """The one-context kubeconfig a tool gets: only what was checked, re-encoded."""
    c, u = resolved.cluster, resolved.user
    cluster: dict[str, Any] = {"server": c.server}
    for key, value in (
        ("certificate-authority-data", _b64(c.ca)),
        ("tls-server-name", c.tls_server_name),
        ("insecure-skip-tls-verify", c.insecure or None),
    ):
        if value is not None:
            cluster[key] = value
    user: dict[str, Any] = {}
    if exec_stanza is not None:
        user["exec"] = dict(exec_stanza)
    else:
        for key, value in (
            ("client-certificate-data", _b64(u.client_certificate)),
            ("client-key-data", _b64(u.client_key)),
            ("token", u.token),
            ("username", u.basic[0] if u.basic else None),
            ("password", u.basic[1] if u.basic else None),
        ):
            if value is not None:
                user[key] = value
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "remote", "cluster": cluster}],
        "users": [{"name": "remote", "user": user}],
        "contexts": [{"name": "remote", "context": {"cluster": "remote", "user": "remote"}}],
        "current-context": "remote",
    }
