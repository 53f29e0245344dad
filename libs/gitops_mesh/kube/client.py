"""Kube access, the wire: verbs on plain-dict objects over one aiohttp connection pool per process.

Design decision: requests go through aiohttp directly, with the TLS context and credentials of a KubeConfig
(config.py reads kubeconfig itself and leaves only exec / auth-provider users to kubernetes_asyncio, whose
import costs 36 MiB). Its ApiClient would add model (de)serialisation and header plumbing on every call
that plain dicts do not need; here bodies are orjson bytes in and orjson out, and watch streams are read
line by line. Impersonating clients share the root client's pool and REST mapper, so the process keeps one
pool however many identities it acts as.
"""

from __future__ import annotations

import builtins
import copy
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any, Literal, Self

import aiohttp
import orjson
from multidict import CIMultiDict

from gitops_mesh import __version__
from gitops_mesh.errors import Invalid, KubeUnavailable
from gitops_mesh.kube.api_status import error_from_response, error_from_status
from gitops_mesh.kube.config import KubeConfig, load_config
from gitops_mesh.kube.mapping import ResourceInfo, RESTMapper
from gitops_mesh.kube.objects import KubeObject, metadata
from gitops_mesh.observability.metrics import kube_requests

JSON = "application/json"
# Watch events carry whole objects; etcd admits up to 1.5 MiB, aiohttp's default line limit is 128 KiB.
_READ_BUFSIZE = 2**21

PropagationPolicy = Literal["Foreground", "Background", "Orphan"]
WatchEventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]


class PatchType(StrEnum):
    """The Content-Type of a PATCH, which selects how the apiserver merges it."""

    MERGE = "application/merge-patch+json"
    JSON = "application/json-patch+json"
    STRATEGIC = "application/strategic-merge-patch+json"
    APPLY = "application/apply-patch+yaml"  # server-side apply; a JSON body is valid YAML


@dataclass(slots=True)
class ObjectList:
    """Every item of a (paged) list, and the resourceVersion to start a watch from."""

    items: list[KubeObject]
    resource_version: str


@dataclass
class _Shared:
    """What impersonating clients share with the root client: the pool and the discovery cache."""

    config: KubeConfig
    max_connections: int
    request_timeout: float
    session: aiohttp.ClientSession | None = None
    closed: bool = False
    mapper: RESTMapper | None = field(default=None)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _query(**params: str | int | bool | None) -> dict[str, str]:
    """aiohttp rejects bool/None query values; the apiserver wants ``true``."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None or value is False:
            continue
        out[key] = "true" if value is True else str(value)
    return out


class KubeClient:
    """An apiserver client; use ``async with`` or call :meth:`close` (impersonating clients share the pool)."""

    def __init__(self, config: KubeConfig, *, max_connections: int = 100, request_timeout: float = 60.0) -> None:
        self._shared = _Shared(config=config, max_connections=max_connections, request_timeout=request_timeout)
        self._shared.mapper = RESTMapper(self._discover)
        self._extra_headers: tuple[tuple[str, str], ...] = ()
        self._owner = True

    @classmethod
    async def connect(cls, kubeconfig: str | None = None, *, context: str | None = None, **options: Any) -> Self:
        """A client for ``kubeconfig`` (else $KUBECONFIG, in-cluster, ~/.kube/config); the caller closes it."""
        return cls(await load_config(kubeconfig, context=context), **options)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the pool; a no-op on impersonating clients, whose pool belongs to the root client."""
        if not self._owner:
            return
        self._shared.closed = True
        if self._shared.session is not None:
            await self._shared.session.close()
            self._shared.session = None

    @property
    def config(self) -> KubeConfig:
        return self._shared.config

    def impersonate(self, service_account: str, namespace: str) -> KubeClient:
        """A client acting as ``system:serviceaccount:<namespace>:<service_account>``, on the same pool."""
        return self._derive(
            (
                ("Impersonate-User", f"system:serviceaccount:{namespace}:{service_account}"),
                ("Impersonate-Group", "system:serviceaccounts"),
                ("Impersonate-Group", f"system:serviceaccounts:{namespace}"),
            )
        )

    def _derive(self, headers: tuple[tuple[str, str], ...]) -> KubeClient:
        clone = copy.copy(self)
        clone._extra_headers = headers
        clone._owner = False
        return clone

    # --- addressing ---------------------------------------------------------------------------------------

    @property
    def mapper(self) -> RESTMapper:
        assert self._shared.mapper is not None
        return self._shared.mapper

    async def resource(self, api_version: str, kind: str) -> ResourceInfo:
        """Discovery's answer for a kind: plural, scope, subresources (cached; refreshed on a miss)."""
        return await self.mapper.resolve(api_version, kind)

    async def _discover(self, path: str) -> dict[str, Any]:
        # Discovery runs as the process's own identity: impersonated users may not be allowed to read it.
        doc = await self._request_json("GET", path, verb="discovery", extra_headers=())
        return doc if isinstance(doc, dict) else {}

    async def _address(self, obj: KubeObject) -> tuple[ResourceInfo, str | None, str]:
        info = await self.resource(str(obj.get("apiVersion") or ""), str(obj.get("kind") or ""))
        meta = metadata(obj)
        namespace = meta.get("namespace") or None
        if info.namespaced and not namespace:
            raise Invalid(f"{info.kind} {meta.get('name')!r}: metadata.namespace is required")
        return info, namespace if info.namespaced else None, str(meta.get("name") or "")

    # --- the wire -----------------------------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        shared = self._shared
        if shared.session is None:
            if shared.closed:
                raise KubeUnavailable("the Kubernetes client is closed")
            ctx = shared.config.ssl_context
            connector = aiohttp.TCPConnector(limit=shared.max_connections, ssl=ctx if ctx is not None else True)
            shared.session = aiohttp.ClientSession(
                connector=connector,
                read_bufsize=_READ_BUFSIZE,
                # Proxies come from the kubeconfig (proxy-url), not from whatever the environment says.
                trust_env=False,
                headers={"User-Agent": f"gitops-mesh/{__version__}", "Accept": JSON},
                timeout=aiohttp.ClientTimeout(total=shared.request_timeout, sock_connect=10),
            )
        return shared.session

    async def _headers(
        self, content_type: str | None, extra_headers: tuple[tuple[str, str], ...] | None = None
    ) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict(self._extra_headers if extra_headers is None else extra_headers)
        auth = await self._shared.config.authorization()
        if auth:
            headers["Authorization"] = auth
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _transport_options(self) -> dict[str, Any]:
        config = self._shared.config
        options: dict[str, Any] = {}
        if config.tls_server_name:
            options["server_hostname"] = config.tls_server_name
        if config.proxy:
            options["proxy"] = config.proxy
        return options

    async def _send(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
        extra_headers: tuple[tuple[str, str], ...] | None = None,
    ) -> bytes:
        session = self._session()
        headers = await self._headers(content_type if data is not None else None, extra_headers)
        url = self._shared.config.host + path
        # A pooled keep-alive connection may have been closed by a restarted apiserver; a read is safe to resend.
        attempts = 2 if method == "GET" else 1
        for attempt in range(attempts):
            try:
                async with session.request(
                    method, url, params=params, data=data, headers=headers, **self._transport_options()
                ) as resp:
                    payload = await resp.read()
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
                break
            except aiohttp.ServerDisconnectedError as e:
                if attempt + 1 < attempts:
                    continue
                kube_requests.labels(verb, "error").inc()
                raise KubeUnavailable(f"{method} {path}: {_describe(e)}") from e
            except (aiohttp.ClientError, TimeoutError) as e:
                kube_requests.labels(verb, "error").inc()
                raise KubeUnavailable(f"{method} {path}: {_describe(e)}") from e
        kube_requests.labels(verb, str(status)).inc()
        if status >= 400:
            raise error_from_response(status, payload, retry_after)
        return payload

    async def _request_json(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = JSON,
        extra_headers: tuple[tuple[str, str], ...] | None = None,
    ) -> Any:
        data = None if body is None else orjson.dumps(body)
        payload = await self._send(
            method,
            path,
            verb=verb,
            params=params,
            data=data,
            content_type=content_type,
            extra_headers=extra_headers,
        )
        return orjson.loads(payload) if payload else None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = JSON,
    ) -> Any:
        """Any API path (``/version``, aggregated APIs); errors mapped like every other verb."""
        return await self._request_json(
            method, path, verb=method.lower(), params=params, body=body, content_type=content_type
        )

    # --- verbs --------------------------------------------------------------------------------------------

    async def get(
        self, api_version: str, kind: str, name: str, *, namespace: str | None = None, subresource: str | None = None
    ) -> KubeObject:
        info = await self.resource(api_version, kind)
        obj: KubeObject = await self._request_json("GET", info.path(namespace, name, subresource), verb="get")
        return obj

    async def create(self, obj: KubeObject, *, field_manager: str | None = None, dry_run: bool = False) -> KubeObject:
        info, namespace, _ = await self._address(obj)
        params = _query(fieldManager=field_manager, dryRun="All" if dry_run else None)
        created: KubeObject = await self._request_json(
            "POST", info.path(namespace), verb="create", params=params, body=obj
        )
        return created

    async def replace(
        self,
        obj: KubeObject,
        *,
        field_manager: str | None = None,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> KubeObject:
        """PUT; with ``metadata.resourceVersion`` set, a concurrent change answers Conflict."""
        info, namespace, name = await self._address(obj)
        params = _query(fieldManager=field_manager, dryRun="All" if dry_run else None)
        replaced: KubeObject = await self._request_json(
            "PUT", info.path(namespace, name, subresource), verb="update", params=params, body=obj
        )
        return replaced

    async def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: PatchType = PatchType.MERGE,
        field_manager: str | None = None,
        force: bool | None = None,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str | None = None,
    ) -> KubeObject:
        """PATCH; ``field_validation`` Strict|Warn|Ignore (the apiserver's default, Warn, drops unknown fields)."""
        info = await self.resource(api_version, kind)
        params = _query(
            fieldManager=field_manager,
            force=force,
            dryRun="All" if dry_run else None,
            fieldValidation=field_validation,
        )
        patched: KubeObject = await self._request_json(
            "PATCH",
            info.path(namespace if info.namespaced else None, name, subresource),
            verb="apply" if patch_type is PatchType.APPLY else "patch",
            params=params,
            body=patch,
            content_type=patch_type.value,
        )
        return patched

    async def apply(
        self,
        obj: KubeObject,
        *,
        field_manager: str,
        force: bool = False,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str | None = None,
    ) -> KubeObject:
        """Server-side apply ``obj`` (the fields this manager owns); ``force`` takes fields from other managers."""
        meta = metadata(obj)
        if meta.get("managedFields"):
            # The apiserver refuses an apply that carries managedFields; objects read back from it do.
            obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
        return await self.patch(
            str(obj.get("apiVersion") or ""),
            str(obj.get("kind") or ""),
            str(meta.get("name") or ""),
            obj,
            namespace=meta.get("namespace") or None,
            patch_type=PatchType.APPLY,
            field_manager=field_manager,
            force=force,
            subresource=subresource,
            dry_run=dry_run,
            field_validation=field_validation,
        )

    async def patch_status(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: PatchType = PatchType.MERGE,
        field_manager: str | None = None,
    ) -> KubeObject:
        """Patch the status subresource: ``{"status": {...}}`` for a merge patch."""
        return await self.patch(
            api_version,
            kind,
            name,
            patch,
            namespace=namespace,
            patch_type=patch_type,
            field_manager=field_manager,
            subresource="status",
        )

    async def apply_status(self, obj: KubeObject, *, field_manager: str, force: bool = True) -> KubeObject:
        """Server-side apply ``obj["status"]`` to the status subresource.

        Only identity and status are sent, so the manager never claims spec fields. ``force`` defaults to
        True because a controller owns its objects' status.
        """
        meta = metadata(obj)
        body: KubeObject = {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "metadata": {k: meta[k] for k in ("name", "namespace") if meta.get(k)},
            "status": obj.get("status") or {},
        }
        return await self.apply(body, field_manager=field_manager, force=force, subresource="status")

    async def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        *,
        namespace: str | None = None,
        propagation_policy: PropagationPolicy | None = None,
        preconditions: Mapping[str, str] | None = None,
        grace_period_seconds: int | None = None,
        dry_run: bool = False,
    ) -> KubeObject:
        """Delete; returns the object (still there while finalizers run) or the apiserver's Status.

        ``preconditions`` is ``{"uid": …}`` and/or ``{"resourceVersion": …}``: a mismatch answers Conflict.
        """
        info = await self.resource(api_version, kind)
        options: KubeObject = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        if preconditions:
            options["preconditions"] = dict(preconditions)
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if dry_run:
            options["dryRun"] = ["All"]
        deleted: KubeObject = await self._request_json(
            "DELETE", info.path(namespace if info.namespaced else None, name), verb="delete", body=options
        )
        return deleted

    async def watch(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
        allow_bookmarks: bool = True,
    ) -> AsyncGenerator[tuple[WatchEventType, KubeObject], None]:
        """Yield ``(type, object)`` until the server ends the watch after ``timeout_seconds``.

        ERROR events are raised, not yielded: 410 as Gone (relist), others mapped like HTTP errors. A
        dropped connection raises KubeUnavailable. BOOKMARK events carry only ``metadata.resourceVersion``.
        Close the iterator (``contextlib.aclosing``) when leaving early, to free the connection at once.
        """
        info = await self.resource(api_version, kind)
        path = info.path(namespace if info.namespaced else None)
        params = _query(
            watch=True,
            resourceVersion=resource_version or None,
            labelSelector=label_selector,
            fieldSelector=field_selector,
            timeoutSeconds=timeout_seconds,
            allowWatchBookmarks=allow_bookmarks,
        )
        session = self._session()
        headers = await self._headers(None)
        # No total deadline: the server ends the watch; a silent dead peer is caught by the read timeout.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_seconds + 30)
        try:
            async with session.get(
                self._shared.config.host + path,
                params=params,
                headers=headers,
                timeout=timeout,
                **self._transport_options(),
            ) as resp:
                kube_requests.labels("watch", str(resp.status)).inc()
                if resp.status >= 400:
                    raise error_from_response(resp.status, await resp.read(), resp.headers.get("Retry-After"))
                while line := await resp.content.readline():
                    if not line.strip():
                        continue
                    event = orjson.loads(line)
                    event_type = event.get("type")
                    obj = event.get("object") or {}
                    if event_type == "ERROR":
                        raise error_from_status(int(obj.get("code") or 500), obj)
                    yield event_type, obj
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as e:
            # JSONDecodeError: the connection broke mid-line and readline returned the fragment at EOF.
            raise KubeUnavailable(f"watch {path}: {_describe(e)}") from e

    async def list(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 500,
    ) -> ObjectList:
        """Every matching object, following ``continue`` tokens; items get their apiVersion and kind back.

        All pages come from one consistent snapshot; an expired continue token raises Gone.
        """
        info = await self.resource(api_version, kind)
        path = info.path(namespace if info.namespaced else None)
        items: builtins.list[KubeObject] = []
        resource_version = ""
        token: str | None = None
        while True:
            params = _query(labelSelector=label_selector, fieldSelector=field_selector, limit=limit)
            if token:
                params["continue"] = token
            page = await self._request_json("GET", path, verb="list", params=params)
            page_meta = page.get("metadata") or {}
            if not resource_version:
                resource_version = str(page_meta.get("resourceVersion") or "")
            for item in page.get("items") or ():
                # The apiserver leaves apiVersion/kind off list items; handlers expect whole objects.
                item["apiVersion"] = info.api_version
                item["kind"] = info.kind
                items.append(item)
            token = page_meta.get("continue") or None
            if not token:
                return ObjectList(items=items, resource_version=resource_version)
