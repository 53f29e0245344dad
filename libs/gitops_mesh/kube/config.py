"""Kube access, where and who: a kubeconfig or the pod's service account, resolved into a KubeConfig.

Design decision: kubeconfig files and in-cluster service accounts are read here with PyYAML and the ssl module,
not with kubernetes_asyncio. Importing any kubernetes_asyncio module runs its package ``__init__``, which
imports ~940 generated model and API modules — about 36 MiB of RSS in every controller, for classes the HTTP
layer never uses. Only users whose credentials come from an ``exec`` plugin or an ``auth-provider`` (OIDC,
GCP) are handed to kubernetes_asyncio's loader, imported at that point, because those need its ExecProvider
and token-refresh logic; only processes configured that way pay the memory.

Resolving is pure and lives in kubeconfig.py (parsed YAML documents → a ResolvedContext, kubectl's merge
rules); this module reads the files, then builds the TLS context and credentials in :func:`build`.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import shutil
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gitops_mesh import tenant_yaml
from gitops_mesh.kube.kubeconfig import (
    ClusterInfo,
    KubeConfigError,
    Material,
    ResolvedContext,
    UserInfo,
    in_cluster,
    merge,
    resolve,
)

# KubeConfigError and in_cluster are re-exported: callers catch and test them from here.
__all__ = ["KubeConfig", "KubeConfigError", "in_cluster", "load_config"]

#: Returns the full ``Authorization`` header value ("Bearer …", "Basic …"), or None for cert-only auth.
TokenSource = Callable[[], Awaitable[str | None]]

DEFAULT_KUBECONFIG = "~/.kube/config"
#: Where the kubelet mounts a pod's service account; read at call time, so tests can point it elsewhere.
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: A token file is reread when it changes, and at the latest after this long (client-go rereads every minute):
#: coarse-mtime filesystems could otherwise hide an in-place rewrite.
TOKEN_FILE_MAX_AGE = 60.0
#: tenant_yaml's caps, libyaml's loader: kubeconfigs of big fleets run to megabytes (embedded certificates)
#: but never to a million nodes; the bytes cap is only there to refuse what is no kubeconfig at all.
KUBECONFIG_LIMITS = dataclasses.replace(tenant_yaml.DEFAULT_LIMITS, max_bytes=64 << 20)


@dataclass(frozen=True, slots=True)
class KubeConfig:
    """Everything the HTTP layer needs: the server, TLS, and a per-request credential."""

    host: str
    ssl_context: ssl.SSLContext | None = None  # None: plain http (tests, proxies on loopback)
    tls_server_name: str | None = None
    proxy: str | None = None
    token_source: TokenSource | None = None

    async def authorization(self) -> str | None:
        return await self.token_source() if self.token_source else None


# --- building: files read, the TLS context and credential made -----------------------------------------------


def build(resolved: ResolvedContext) -> KubeConfig:
    """Read what the resolved context points at; errors name the file or field, never a credential."""
    cluster = resolved.cluster
    return KubeConfig(
        host=cluster.server.rstrip("/"),
        ssl_context=ssl_context(resolved),
        tls_server_name=cluster.tls_server_name,
        proxy=cluster.proxy,
        token_source=token_source(resolved.user),
    )


def ssl_context(resolved: ResolvedContext) -> ssl.SSLContext | None:
    cluster, user = resolved.cluster, resolved.user
    if not cluster.server.startswith("https"):
        return None
    ctx = _verifying_context(cluster)
    if user.client_certificate is not None and user.client_key is not None:
        try:
            _load_client_chain(ctx, user.client_certificate, user.client_key)
        except OSError as e:  # ssl.SSLError included
            raise KubeConfigError(f"user {user.name!r}: cannot load client-certificate/client-key: {e}") from e
    return ctx


def _verifying_context(cluster: ClusterInfo) -> ssl.SSLContext:
    if cluster.insecure:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ca = cluster.ca
    try:
        # A named CA replaces the system trust store rather than adding to it, as in kubectl.
        if ca is None:
            return ssl.create_default_context()
        if ca.data is not None:
            return ssl.create_default_context(cadata=_cadata(ca.data))
        return ssl.create_default_context(cafile=ca.path)
    except OSError as e:  # ssl.SSLError included
        source = f"certificate-authority {ca.path}" if ca and ca.path else "certificate-authority-data"
        raise KubeConfigError(f"cluster {cluster.name!r}: cannot load {source}: {e}") from e


def _cadata(data: bytes) -> str | bytes:
    # ssl reads str cadata as PEM and bytes as DER; kubeconfigs nearly always carry PEM.
    return data.decode("ascii", errors="ignore") if b"-----BEGIN" in data else data


def _load_client_chain(ctx: ssl.SSLContext, cert: Material, key: Material) -> None:
    if cert.data is None and key.data is None:
        ctx.load_cert_chain(_file(cert), _file(key))
        return
    # load_cert_chain only reads files: inline data goes to a private directory (mkdtemp: 0700) for the
    # duration of the call, which reads them at once, so nothing of the key outlives it on disk.
    workdir = Path(tempfile.mkdtemp(prefix="gitops-mesh-kubeconfig-"))
    try:
        ctx.load_cert_chain(_file(cert, workdir / "client.crt"), _file(key, workdir / "client.key"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _file(material: Material, spill: Path | None = None) -> Path:
    if material.data is None:
        assert material.path is not None
        return material.path
    assert spill is not None
    fd = os.open(spill, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(material.data)
    return spill


def token_source(user: UserInfo) -> TokenSource | None:
    """kubectl's precedence: token, then tokenFile, then username/password; None for cert-only or anonymous."""
    if user.token:
        return _constant(f"Bearer {user.token}")
    if user.token_file:
        return FileToken(user.token_file, where=f"user {user.name!r}")
    if user.basic:
        credentials = base64.b64encode(":".join(user.basic).encode()).decode("ascii")
        return _constant(f"Basic {credentials}")
    return None


def _constant(value: str) -> TokenSource:
    async def token() -> str | None:
        return value

    return token


class FileToken:
    """A bearer token file, reread when it is replaced or changes: bound service account tokens rotate hourly."""

    def __init__(self, path: Path, *, where: str = "tokenFile", max_age: float = TOKEN_FILE_MAX_AGE) -> None:
        self._path, self._where, self._max_age = path, where, max_age
        self._stamp: tuple[int, int, int] | None = None
        self._read_at = 0.0
        self._value = ""
        self._refresh()  # a missing or empty file is a configuration error at load time

    async def __call__(self) -> str | None:
        # Mid-rotation the file may be briefly absent or empty; the previous token stays valid a while yet.
        with contextlib.suppress(KubeConfigError):
            self._refresh()
        return f"Bearer {self._value}"

    def _refresh(self) -> None:
        try:
            st = os.stat(self._path)
            # The kubelet swaps a symlink on rotation: a new inode even when the mtime granularity is coarse.
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp == self._stamp and time.monotonic() - self._read_at < self._max_age:
                return
            value = self._path.read_text().strip()
        except OSError as e:
            raise KubeConfigError(f"{self._where}: cannot read token file {self._path}: {e.strerror}") from e
        if not value:
            raise KubeConfigError(f"{self._where}: token file {self._path} is empty")
        # The stamp is taken before the read: a change in between only causes one more read next time.
        self._value, self._stamp, self._read_at = value, stamp, time.monotonic()


# --- loading -------------------------------------------------------------------------------------------------


def locate(kubeconfig: str | os.PathLike[str] | None = None) -> tuple[str, list[Path] | None]:
    """kubectl's order as (what errors call it, kubeconfig files); None for files means in-cluster."""
    if kubeconfig:
        return os.fspath(kubeconfig), [Path(kubeconfig).expanduser()]
    env = os.environ.get("KUBECONFIG")
    if env:
        return f"KUBECONFIG={env}", [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return f"in-cluster, {SERVICE_ACCOUNT_DIR}", None
    return DEFAULT_KUBECONFIG, [Path(DEFAULT_KUBECONFIG).expanduser()]


def read_documents(paths: Sequence[Path]) -> list[tuple[Path, Any]]:
    """Each existing file parsed; missing ones are skipped as kubectl skips them, but one must exist."""
    documents = []
    for path in paths:
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise KubeConfigError(f"cannot read {path}: {e.strerror}") from e
        try:
            documents.append((path.absolute(), tenant_yaml.load(text, what=str(path), limits=KUBECONFIG_LIMITS)))
        except tenant_yaml.UnsafeYaml as e:
            raise KubeConfigError(str(e)) from None
        except yaml.YAMLError as e:
            raise KubeConfigError(
                f"{path}: invalid YAML: {tenant_yaml.problem(e)}"
            ) from None  # the error quotes the line: a token
    if not documents:
        raise KubeConfigError(f"no kubeconfig file exists at {', '.join(map(str, paths)) or '(empty list)'}")
    return documents


async def load_config(kubeconfig: str | os.PathLike[str] | None = None, *, context: str | None = None) -> KubeConfig:
    """Explicit path, else ``$KUBECONFIG`` (a list, merged), else in-cluster (a pod), else ``~/.kube/config``."""
    origin, paths = locate(kubeconfig)
    try:
        if paths is None:
            return build(in_cluster(os.environ, SERVICE_ACCOUNT_DIR))
        documents = read_documents(paths)
        resolved = resolve(merge(documents), context)
        if resolved.user.delegated:
            return await _delegate([path for path, _ in documents], resolved.name)
        return build(resolved)
    except KubeConfigError as e:
        raise KubeConfigError(f"cannot load Kubernetes configuration ({origin}): {e}") from e.__cause__


# --- exec plugins and auth-providers: kubernetes_asyncio's loader --------------------------------------------


async def _delegate(files: Sequence[Path], context: str) -> KubeConfig:
    """Imported here, not at the top: the import costs ~36 MiB of generated models (see the module docstring)."""
    from kubernetes_asyncio.client.configuration import Configuration
    from kubernetes_asyncio.config import ConfigException, load_kube_config

    configuration = Configuration()
    try:
        # The context is passed by name: kubernetes_asyncio's merge takes current-context from the *last* file.
        loader = await load_kube_config(
            config_file=os.pathsep.join(map(str, files)),
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (ConfigException, OSError) as e:
        raise KubeConfigError(str(e)) from e
    return from_configuration(configuration, loader)


def ssl_context_for(configuration: Any) -> ssl.SSLContext | None:
    """The TLS context kubernetes_asyncio's own REST client would build from the same Configuration."""
    if not str(configuration.host).startswith("https"):
        return None
    ctx = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        ctx.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
    if not configuration.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def from_configuration(configuration: Any, loader: Any = None) -> KubeConfig:
    """Adapt a loaded kubernetes_asyncio ``Configuration``; ``loader`` refreshes exec-plugin tokens."""
    uses_exec = loader is not None and "exec" in (getattr(loader, "_user", None) or {})

    async def token() -> str | None:
        if uses_exec:
            # Cached by the loader until the credential's expirationTimestamp; re-runs the plugin after.
            await loader.load_from_exec_plugin()
            # Plugins may answer with a client certificate instead, which the TLS context already holds.
            if getattr(loader, "token", None):
                configuration.api_key["BearerToken"] = loader.token
        # The exec plugin's token, or the auth-provider's (OIDC, GCP) as the loader set it.
        value = await configuration.get_api_key_with_prefix("BearerToken")
        return str(value) if value else None

    return KubeConfig(
        host=str(configuration.host).rstrip("/"),
        ssl_context=ssl_context_for(configuration),
        tls_server_name=configuration.tls_server_name,
        proxy=configuration.proxy,
        token_source=token,
    )
