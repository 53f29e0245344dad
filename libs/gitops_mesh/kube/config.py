"""Kube access, where and who: kubernetes_asyncio loads kubeconfig / in-cluster config into a KubeConfig."""

from __future__ import annotations

import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio.client.configuration import Configuration
from kubernetes_asyncio.config import ConfigException, load_incluster_config, load_kube_config

from gitops_mesh.errors import InvalidSpec

#: Returns the full ``Authorization`` header value ("Bearer …", "Basic …"), or None for cert-only auth.
TokenSource = Callable[[], Awaitable[str | None]]

_DEFAULT_KUBECONFIG = "~/.kube/config"


class KubeConfigError(InvalidSpec):
    """No usable kubeconfig or in-cluster configuration."""

    reason = "KubeConfigError"


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
        # Goes through refresh_api_key_hook, which rereads rotated in-cluster service account tokens.
        value = await configuration.get_api_key_with_prefix("BearerToken")
        return str(value) if value else None

    return KubeConfig(
        host=str(configuration.host).rstrip("/"),
        ssl_context=ssl_context_for(configuration),
        tls_server_name=configuration.tls_server_name,
        proxy=configuration.proxy,
        token_source=token,
    )


async def load_config(kubeconfig: str | os.PathLike[str] | None = None, *, context: str | None = None) -> KubeConfig:
    """Explicit path, else ``$KUBECONFIG``, else in-cluster (a pod), else ``~/.kube/config`` — kubectl's order."""
    configuration = Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    try:
        if not path and os.environ.get("KUBERNETES_SERVICE_HOST"):
            load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return from_configuration(configuration)
        path = path or _DEFAULT_KUBECONFIG  # the loader expands ~
        loader = await load_kube_config(
            config_file=os.fspath(path), context=context, client_configuration=configuration, persist_config=False
        )
    except (ConfigException, OSError) as e:
        raise KubeConfigError(f"cannot load Kubernetes configuration ({path or 'in-cluster'}): {e}") from e
    return from_configuration(configuration, loader)
