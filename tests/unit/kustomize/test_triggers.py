"""Which bus events and informer changes wake which Kustomizations (in-memory cache and queue)."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from gitops_mesh.bus.consumer import RecordMeta
from gitops_mesh.bus.envelope import EventKind, ObjectRef, Severity, build_event, parse_event
from gitops_mesh.kube.objects import KubeObject
from kustomize_controller.references import dependency_index, source_index
from kustomize_controller.triggers import Triggers, cache_is_behind

NS = "apps"
OLD, NEW = "main@sha1:" + "a" * 40, "main@sha1:" + "b" * 40
META = RecordMeta(topic="t", partition=0, offset=0, key=None, timestamp_ms=0)


@dataclass
class Cache:
    objects: dict[tuple[str, str], KubeObject] = field(default_factory=dict)

    def get(self, namespace: str | None, name: str) -> KubeObject | None:
        return self.objects.get((namespace or "", name))

    def by_index(self, index: str, value: str) -> list[KubeObject]:
        keys = {"source": source_index, "dependsOn": dependency_index}[index]
        return [o for o in self.objects.values() if o["kind"] == "Kustomization" and value in keys(o)]


@dataclass
class Runner:
    informer: Cache
    woken: list[tuple[str, str]] = field(default_factory=list)

    def enqueue(self, namespace: str, name: str) -> None:
        self.woken.append((namespace, name))


def gitrepo(revision: str | None) -> KubeObject:
    status = {"artifact": {"revision": revision}} if revision else {}
    return {"kind": "GitRepository", "metadata": {"namespace": NS, "name": "repo"}, "status": status}


def ks(name: str, applied: str | None = None, depends: str | None = None) -> KubeObject:
    spec = {"sourceRef": {"kind": "GitRepository", "name": "repo"}, "dependsOn": [{"name": depends}] if depends else []}
    status = {"lastAppliedRevision": applied} if applied else {}
    return {"kind": "Kustomization", "metadata": {"namespace": NS, "name": name}, "spec": spec, "status": status}


def setup(source_revision: str | None, infra_applied: str | None) -> tuple[Triggers, Runner, Cache]:
    kustomizations = Cache({(NS, "infra"): ks("infra", infra_applied), (NS, "apps"): ks("apps", depends="infra")})
    sources = Cache({(NS, "repo"): gitrepo(source_revision)})
    runner = Runner(kustomizations)
    return Triggers(runner, {"GitRepository": sources}), runner, sources


def event(kind: EventKind, obj_kind: str, name: str, revision: str) -> bytes:
    api = "source.toolkit.fluxcd.io/v1" if obj_kind == "GitRepository" else "kustomize.toolkit.fluxcd.io/v1"
    return orjson.dumps(
        build_event(
            kind=kind,
            controller="x",
            instance="x-0",
            involved_object=ObjectRef(api, obj_kind, NS, name),
            severity=Severity.INFO,
            reason="r",
            message="m",
            revision=revision,
        )
    )


async def test_artifact_ready_wakes_the_followers_when_the_cache_has_the_revision() -> None:
    triggers, runner, _ = setup(NEW, None)
    await triggers.on_bus(parse_event(event(EventKind.ARTIFACT_READY, "GitRepository", "repo", NEW)), META)
    assert sorted(runner.woken) == [(NS, "apps"), (NS, "infra")]


async def test_artifact_ready_ahead_of_the_cache_waits_for_the_informer() -> None:
    triggers, runner, sources = setup(OLD, None)
    await triggers.on_bus(parse_event(event(EventKind.ARTIFACT_READY, "GitRepository", "repo", NEW)), META)
    assert runner.woken == [], "a reconcile now would read the old artifact"
    old = sources.objects[(NS, "repo")]
    triggers.on_source("MODIFIED", gitrepo(NEW), old)
    assert sorted(runner.woken) == [(NS, "apps"), (NS, "infra")]


async def test_an_unknown_source_still_wakes() -> None:
    triggers, runner, sources = setup(None, None)
    sources.objects.clear()
    await triggers.on_bus(parse_event(event(EventKind.ARTIFACT_READY, "GitRepository", "repo", NEW)), META)
    assert sorted(runner.woken) == [(NS, "apps"), (NS, "infra")]


async def test_applied_wakes_dependents_once_the_cache_shows_it() -> None:
    triggers, runner, _ = setup(NEW, OLD)
    applied = parse_event(event(EventKind.APPLIED, "Kustomization", "infra", NEW))
    await triggers.on_bus(applied, META)
    assert runner.woken == []
    triggers.on_kustomization("MODIFIED", ks("infra", NEW), ks("infra", OLD))
    assert runner.woken == [(NS, "apps")]
    runner.woken.clear()
    runner.informer.objects[(NS, "infra")] = ks("infra", NEW)
    await triggers.on_bus(applied, META)  # a redelivery once the cache has caught up wakes again
    assert runner.woken == [(NS, "apps")]


def test_informer_changes_without_a_new_revision_wake_nothing() -> None:
    triggers, runner, _ = setup(NEW, NEW)
    triggers.on_source("MODIFIED", gitrepo(NEW), gitrepo(NEW))
    triggers.on_kustomization("MODIFIED", ks("infra", NEW), ks("infra", NEW))
    assert runner.woken == []


def test_cache_is_behind() -> None:
    assert cache_is_behind({"status": {}}, OLD, NEW)
    assert cache_is_behind({"status": {}}, None, NEW)
    assert not cache_is_behind({"status": {}}, NEW, NEW)
    assert not cache_is_behind(None, None, NEW)
    assert not cache_is_behind({"status": {}}, OLD, "")
