"""The remote cluster a HelmRelease releases to (``spec.kubeConfig.secretRef``): a kube client and helm's kubeconfig.

Where it sits: the reconciler binds a HelmRelease to its target once per reconcile (after its values, where
Flux builds its REST client getter) and releases it at the end; everything that touches the release's
cluster — helm, Helm's storage, health polling, drift, uninstall — goes through the bound target, while
the HelmRelease, its status, events, HelmChart and valuesFrom stay on this cluster. Without
``spec.kubeConfig`` nothing is bound and the reconciler uses its own cluster, as before.

As in Flux, the Secret is read on every reconcile (credentials rotate); the client made from it is kept
while the Secret's resourceVersion stays the same, shared by the HelmReleases naming the same Secret and
key, and closed once a newer version replaced it or nobody used it for :data:`IDLE_CLOSE` seconds — never
while a reconcile still holds it. helm gets the checked one-context kubeconfig (kube.remote) as bytes,
which each action writes 0600 into its own private directory (never argv, never logged).

With ``spec.serviceAccountName`` (or ``--default-service-account``) Flux impersonates that account *on
the remote cluster* (in the HelmRelease's namespace there); so does this.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gitops_mesh.errors import ApiError, InvalidSpec, KubeUnavailable, TransientError
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.kube.remote import RemoteKubeConfig, RemoteKubeConfigError, RemoteOptions, parse_remote
from gitops_mesh.kube.remote import secret_kubeconfig as kubeconfig_of
from gitops_mesh.kube.version import parse_version, validates_fields
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.watches import ref_key
from helm_controller.actions import KubeAccess

#: Flux's reason when the REST client for a HelmRelease cannot be built.
REST_CLIENT_ERROR: Final = "RESTClientError"
#: A remote client nobody used for this long is closed (the next reconcile opens it again).
IDLE_CLOSE: Final = 600.0
log = get_logger(__name__)

Key = tuple[str, str]


def kubeconfig_ref(obj: KubeObject) -> tuple[str, str | None] | None:
    """(Secret name, key or None) of ``spec.kubeConfig.secretRef``; None without one. InvalidSpec when
    ``kubeConfig`` is set without a secretRef (configMapRef is refused before, by unsupported.py)."""
    kc = (obj.get("spec") or {}).get("kubeConfig")
    if not kc:
        return None
    ref = kc.get("secretRef") if isinstance(kc, Mapping) else None
    if not isinstance(ref, Mapping) or not ref.get("name"):
        raise InvalidSpec(
            "exactly one of .spec.kubeConfig.configMapRef or spec.kubeConfig.secretRef must be set",
            reason=REST_CLIENT_ERROR,
        )
    return str(ref["name"]), str(ref.get("key") or "") or None


def kubeconfig_refs(obj: KubeObject) -> list[str]:
    """Index value: the kubeConfig Secret, so a labelled one wakes the HelmRelease when it changes."""
    try:
        ref = kubeconfig_ref(obj)
    except InvalidSpec:
        return []
    return [ref_key("Secret", obj["metadata"]["namespace"], ref[0])] if ref else []


@dataclass(eq=False)
class RemoteTarget:
    """One remote cluster as reached with one Secret's kubeconfig: a client (the kubeconfig's identity)."""

    remote: RemoteKubeConfig
    client: KubeClient
    resource_version: str
    holders: int = 0
    retired: bool = False
    last_used: float = field(default_factory=time.monotonic)
    #: that apiserver validates fields itself (1.27+): helm skips its client-side OpenAPI check there too
    validates_fields: bool = False

    def access(self, obj: KubeObject, default_service_account: str) -> KubeAccess:
        """helm's way in: the Secret's kubeconfig, acting as the HelmRelease's service account when it names one."""
        sa = (obj.get("spec") or {}).get("serviceAccountName") or default_service_account
        ns = obj["metadata"]["namespace"]
        data = self.remote.document_bytes()
        if not sa:
            return KubeAccess(
                kubeconfig=None, kubeconfig_data=data, client=self.client, server_validates_fields=self.validates_fields
            )
        return KubeAccess(
            kubeconfig=None,
            kubeconfig_data=data,
            as_user=f"system:serviceaccount:{ns}:{sa}",
            client=self.client.impersonate(sa, ns),
            server_validates_fields=self.validates_fields,
        )


class TargetClusters:
    """The process's remote clients, by (namespace, Secret, key); which one each reconcile holds."""

    def __init__(self, local: KubeClient, options: RemoteOptions, *, idle_close: float = IDLE_CLOSE) -> None:
        self._local = local
        self._options = options
        self._idle_close = idle_close
        self._targets: dict[tuple[str, str, str | None], RemoteTarget] = {}
        self._bound: dict[Key, RemoteTarget] = {}

    def bound(self, obj: KubeObject) -> RemoteTarget | None:
        """The remote target this reconcile of ``obj`` holds; None: its own cluster."""
        return self._bound.get(_key(obj))

    async def bind(self, obj: KubeObject) -> RemoteTarget | None:
        """Read ``spec.kubeConfig``'s Secret and hold the client for it until :meth:`release`."""
        await self.release(obj)
        ref = kubeconfig_ref(obj)
        if ref is None:
            return None
        ns = obj["metadata"]["namespace"]
        target = await self._target(ns, *ref)
        target.holders += 1
        target.last_used = time.monotonic()
        self._bound[_key(obj)] = target
        return target

    async def release(self, obj: KubeObject) -> None:
        """The reconcile of ``obj`` is over: let go of its target; close what is replaced or idle."""
        target = self._bound.pop(_key(obj), None)
        if target is not None:
            target.holders -= 1
            target.last_used = time.monotonic()
            if target.retired and target.holders == 0:
                await target.client.close()
        await self._close_idle()

    async def close(self) -> None:
        for target in self._targets.values():
            await target.client.close()
        self._targets.clear()
        self._bound.clear()

    async def _target(self, ns: str, name: str, key: str | None) -> RemoteTarget:
        secret_name = f"{ns}/{name}"
        try:
            secret = await self._local.get("v1", "Secret", name, namespace=ns)
        except ApiError as e:  # NotFound, Forbidden
            raise TransientError(
                f"could not get KubeConfig secret '{secret_name}': {e}", reason=REST_CLIENT_ERROR
            ) from e
        version = str((secret.get("metadata") or {}).get("resourceVersion") or "")
        cached = self._targets.get((ns, name, key))
        if cached is not None and cached.resource_version == version and not cached.retired:
            return cached
        try:
            used, raw = kubeconfig_of(_decoded(secret, secret_name), secret=secret_name, key=key)
            remote = parse_remote(raw, origin=f"KubeConfig secret '{secret_name}' key '{used}'", options=self._options)
            client = await remote.connect()
        except RemoteKubeConfigError as e:
            raise TransientError(str(e), reason=REST_CLIENT_ERROR) from None
        try:
            # One look before the client is kept: an unreachable or refusing cluster is named here, once,
            # rather than as a failed storage read deeper in the reconcile.
            version_info = parse_version(await client.request("GET", "/version"))
        except (KubeUnavailable, ApiError) as e:
            await client.close()
            raise TransientError(f"remote cluster {remote.server}: {e}", reason=REST_CLIENT_ERROR) from None
        # Another reconcile of the same Secret may have opened one meanwhile (the awaits above): keep one.
        current = self._targets.get((ns, name, key))
        if current is not None and current.resource_version == version and not current.retired:
            await client.close()
            return current
        if current is not None:  # a newer Secret: the old client goes once no reconcile holds it
            current.retired = True
            if current.holders == 0:
                await current.client.close()
        target = RemoteTarget(remote, client, version, validates_fields=validates_fields(version_info))
        self._targets[(ns, name, key)] = target
        log.info("remote cluster client opened", secret=secret_name, server=remote.server)
        return target

    async def _close_idle(self) -> None:
        now = time.monotonic()
        for where, target in list(self._targets.items()):
            if target.holders == 0 and now - target.last_used > self._idle_close:
                del self._targets[where]
                await target.client.close()


def _key(obj: KubeObject) -> Key:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def _decoded(secret: Mapping[str, Any], name: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[str(key)] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise RemoteKubeConfigError(f"KubeConfig secret '{name}' key '{key}' is not valid base64") from None
    return out
