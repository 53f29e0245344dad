"""Apply, inventory (pure): Flux's object ids ``<namespace>_<name>_<group>_<kind>``, entries, stale-object diff."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from gitops_mesh.errors import TerminalError
from gitops_mesh.kube.objects import KubeObject, metadata, split_api_version
from kustomize_controller.apply.objects import group_kind, order_key, subject

_SEPARATOR = "_"
# cli-utils ObjMetadata: RBAC names may hold colons ("system:controller:x"), written as a double underscore.
_COLON = "__"
_RBAC_KINDS = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})
_RBAC_GROUP = "rbac.authorization.k8s.io"


class InventoryEntry(TypedDict):
    """``status.inventory.entries[]``: the object id and the API version (``v1``, not ``apps/v1``) it was applied at."""

    id: str
    v: str


class InvalidObjectId(TerminalError):
    """An inventory id that is not ``<namespace>_<name>_<group>_<kind>``."""


@dataclass(frozen=True, slots=True)
class ObjectId:
    """One object by group, kind, namespace and name; ``version`` travels along but is not part of the identity."""

    group: str
    kind: str
    namespace: str
    name: str
    version: str = field(default="", compare=False)

    @classmethod
    def of(cls, obj: KubeObject) -> ObjectId:
        group, kind = group_kind(obj)
        _, version = split_api_version(str(obj.get("apiVersion") or ""))
        meta = metadata(obj)
        return cls(group, kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""), version)

    @classmethod
    def parse(cls, object_id: str, version: str = "") -> ObjectId:
        """The inverse of :attr:`id` (cli-utils ParseObjMetadata)."""
        namespace, sep, rest = object_id.partition(_SEPARATOR)
        rest, sep2, kind = rest.rpartition(_SEPARATOR)
        name, sep3, group = rest.rpartition(_SEPARATOR)
        if not (sep and sep2 and sep3):
            raise InvalidObjectId(f"inventory id {object_id!r} is not <namespace>_<name>_<group>_<kind>")
        name = name.replace(_COLON, ":")
        if _SEPARATOR in name:
            raise InvalidObjectId(f"inventory id {object_id!r} has too many fields")
        if not name.strip() or not kind.strip():
            raise InvalidObjectId(f"inventory id {object_id!r} has an empty name or kind")
        return cls(group.strip(), kind.strip(), namespace.strip(), name.strip(), version)

    @classmethod
    def from_entry(cls, entry: InventoryEntry | dict[str, Any]) -> ObjectId:
        return cls.parse(str(entry.get("id") or ""), str(entry.get("v") or ""))

    @property
    def id(self) -> str:
        name = self.name.replace(":", _COLON) if self.group == _RBAC_GROUP and self.kind in _RBAC_KINDS else self.name
        return _SEPARATOR.join((self.namespace, name, self.group, self.kind))

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def subject(self) -> str:
        """``Deployment/default/web``, as Flux names objects in messages."""
        return subject(self.kind, self.namespace, self.name)

    def entry(self) -> InventoryEntry:
        return {"id": self.id, "v": self.version}

    def as_tuple(self) -> tuple[str, str, str, str, str]:
        """(group, version, kind, namespace, name)."""
        return (self.group, self.version, self.kind, self.namespace, self.name)

    def sort_key(self) -> tuple[int, int, str, str, str, str]:
        return order_key(self.group, self.kind, self.namespace, self.name)

    def __str__(self) -> str:
        return self.subject


def object_id(namespace: str, name: str, group: str, kind: str) -> str:
    return ObjectId(group, kind, namespace, name).id


def parse_entry(entry: InventoryEntry | dict[str, Any]) -> tuple[str, str, str, str, str]:
    """An inventory entry back to (group, version, kind, namespace, name)."""
    return ObjectId.from_entry(entry).as_tuple()


def entries(refs: Iterable[ObjectId]) -> list[InventoryEntry]:
    """Inventory entries for ``refs`` in the order given, each id once."""
    seen: set[str] = set()
    out: list[InventoryEntry] = []
    for ref in refs:
        if ref.id not in seen:
            seen.add(ref.id)
            out.append(ref.entry())
    return out


def refs(inventory: Iterable[InventoryEntry | dict[str, Any]]) -> list[ObjectId]:
    return [ObjectId.from_entry(e) for e in inventory]


def deletion_order(items: Iterable[ObjectId]) -> list[ObjectId]:
    """The reverse of apply order: workloads first, then classes, then namespaces, cluster roles and CRDs."""
    return sorted(items, key=ObjectId.sort_key, reverse=True)


def diff(
    old: Sequence[InventoryEntry | dict[str, Any]], new: Sequence[InventoryEntry | dict[str, Any]]
) -> list[ObjectId]:
    """The objects of ``old`` that ``new`` no longer has (by id; a version change alone is not a removal).

    In deletion order, each with the version it was last applied at: what a prune deletes.
    """
    keep = {ObjectId.from_entry(e) for e in new}
    stale: dict[ObjectId, ObjectId] = {}
    for ref in refs(old):
        if ref not in keep:
            stale.setdefault(ref, ref)
    return deletion_order(stale.values())
