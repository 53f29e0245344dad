"""The toolchain a Kustomization reconcile uses, bound once per process: build, apply, prune, health."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.settings import parse_duration
from kustomize_controller.apply import ChangeSet, HealthReport, ObjectId, Owner, apply_all, check, diff, prune
from kustomize_controller.build.pipeline import build


def owner_of(obj: KubeObject) -> Owner:
    return Owner(name=obj["metadata"]["name"], namespace=obj["metadata"]["namespace"])


def timeout_of(obj: KubeObject) -> float:
    """spec.timeout, else spec.interval (Flux's default for apply, build and health timeouts)."""
    spec = obj["spec"]
    return parse_duration(spec.get("timeout") or spec.get("interval") or "5m")


def health_targets(obj: KubeObject, applied: ChangeSet) -> list[ObjectId]:
    """spec.wait: everything applied; else spec.healthChecks' objects (namespace defaults to ours)."""
    if obj["spec"].get("wait"):
        return applied.refs()
    refs = []
    for hc in obj["spec"].get("healthChecks") or []:
        group = hc.get("apiVersion", "").rpartition("/")[0]
        refs.append(
            ObjectId(
                group=group,
                kind=hc["kind"],
                namespace=hc.get("namespace") or obj["metadata"]["namespace"],
                name=hc["name"],
                version=hc.get("apiVersion", "").rpartition("/")[2],
            )
        )
    return refs


@dataclass
class Toolchain:
    kustomize: Path
    sops: Path | None
    kube: KubeClient
    no_remote_bases: bool = False

    async def build(self, tree: Path, obj: KubeObject) -> list[KubeObject]:
        return await build(
            tree,
            obj["spec"],
            kustomize=self.kustomize,
            sops=self.sops,
            kube=self.kube,
            namespace=obj["metadata"]["namespace"],
            no_remote_bases=self.no_remote_bases,
            timeout=timeout_of(obj),
        )

    async def apply(self, client: KubeClient, obj: KubeObject, objects: list[KubeObject]) -> ChangeSet:
        return await apply_all(
            client,
            objects,
            owner=owner_of(obj),
            force=bool(obj["spec"].get("force")),
            default_namespace=obj["spec"].get("targetNamespace") or obj["metadata"]["namespace"],
        )

    async def prune(self, client: KubeClient, obj: KubeObject, old: list[Any], new: list[Any]) -> ChangeSet:
        """Delete what the previous inventory had and this one does not (after a successful apply only)."""
        return await prune(client, diff(old, new), owner=owner_of(obj))

    async def health(self, client: KubeClient, refs: list[ObjectId]) -> HealthReport[ObjectId]:
        return await check(client, refs)
