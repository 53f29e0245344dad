"""Kube access, addressing: apiVersion + kind → REST path, from cached discovery refreshed on a miss."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gitops_mesh.errors import Invalid, NotFound
from gitops_mesh.kube.objects import split_api_version


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """One REST resource of a group version, as discovery describes it."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: frozenset[str] = frozenset()
    subresources: frozenset[str] = frozenset()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> str:
        """``plural.group``, the name RBAC and metrics use."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """The URL path; a namespaced resource without a namespace addresses all namespaces (list/watch)."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base = f"{base}/namespaces/{namespace}"
        elif name is not None and self.namespaced:
            raise Invalid(f"{self.kind} {name!r}: metadata.namespace is required for a namespaced resource")
        path = f"{base}/{self.plural}"
        if name is not None:
            if not name:
                raise Invalid(f"{self.kind}: metadata.name is required")
            path = f"{path}/{name}"
        if subresource:
            path = f"{path}/{subresource}"
        return path


def discovery_path(api_version: str) -> str:
    group, version = split_api_version(api_version)
    return f"/apis/{group}/{version}" if group else f"/api/{version}"


def parse_resource_list(api_version: str, doc: dict[str, Any]) -> dict[str, ResourceInfo]:
    """An ``APIResourceList`` → {kind: ResourceInfo}, subresources (``pods/status``) folded into their parent."""
    group, version = split_api_version(api_version)
    entries: list[dict[str, Any]] = doc.get("resources") or []
    subs: dict[str, set[str]] = {}
    for entry in entries:
        parent, slash, sub = str(entry.get("name", "")).partition("/")
        if slash:
            subs.setdefault(parent, set()).add(sub)
    by_kind: dict[str, ResourceInfo] = {}
    for entry in entries:
        name = str(entry.get("name", ""))
        if "/" in name or not name:
            continue
        kind = str(entry["kind"])
        # The first resource of a kind is the canonical one; later ones are legacy aliases.
        by_kind.setdefault(
            kind,
            ResourceInfo(
                group=entry.get("group") or group,
                version=entry.get("version") or version,
                kind=kind,
                plural=name,
                namespaced=bool(entry.get("namespaced")),
                verbs=frozenset(entry.get("verbs") or ()),
                subresources=frozenset(subs.get(name, ())),
            ),
        )
    return by_kind


Fetch = Callable[[str], Awaitable[dict[str, Any]]]


@dataclass
class _GroupVersion:
    kinds: dict[str, ResourceInfo] | None = None  # None: never fetched, or the group version is not served
    generation: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RESTMapper:
    """Resolves (apiVersion, kind) lazily, one group version at a time.

    Only the group versions a process uses are fetched. A kind missing from the cached document triggers
    one refetch (concurrent misses share it), so CRDs installed after start-up are found.
    """

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._gvs: dict[str, _GroupVersion] = {}

    def cached(self, api_version: str, kind: str) -> ResourceInfo | None:
        gv = self._gvs.get(api_version)
        return gv.kinds.get(kind) if gv and gv.kinds else None

    async def resolve(self, api_version: str, kind: str) -> ResourceInfo:
        if not api_version or not kind:
            raise Invalid(f"apiVersion and kind are required (got {api_version!r}, {kind!r})")
        info = self.cached(api_version, kind)
        if info is not None:
            return info
        gv = self._gvs.setdefault(api_version, _GroupVersion())
        seen = gv.generation
        async with gv.lock:
            # Someone refreshed while we waited: their answer is as fresh as ours would be.
            if gv.generation == seen:
                await self._refresh(api_version, gv)
        info = gv.kinds.get(kind) if gv.kinds else None
        if info is None:
            raise NotFound(f"the server does not serve kind {kind!r} in {api_version!r}")
        return info

    async def _refresh(self, api_version: str, gv: _GroupVersion) -> None:
        try:
            doc = await self._fetch(discovery_path(api_version))
        except NotFound:
            gv.kinds = None
        else:
            gv.kinds = parse_resource_list(api_version, doc)
        gv.generation += 1
