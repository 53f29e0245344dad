"""The pieces together: a reconcile built from guards, progress, finalize and the engine, on in-memory objects."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from gitops_mesh.errors import DependencyNotReady, InvalidSpec
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.engine import Controller, Result
from gitops_mesh.reconcile.guards import Step, add_finalizer, check_preconditions, first_step, remove_finalizer
from gitops_mesh.reconcile.queue import ManualClock, WorkQueue
from gitops_mesh.reconcile.result import REQUESTED_AT, Outcome, finalize, progressing


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            pytest.fail("timed out")
        await asyncio.sleep(0.002)


class Store:
    """Objects by key, standing in for the apiserver; ``source_ready`` stands in for another object."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.source_ready = False
        self.patches = 0

    def put(self, key: str, obj: dict[str, Any]) -> None:
        self.patches += 1
        self.objects[key] = copy.deepcopy(obj)


def make_reconcile(store: Store, clock: ManualClock) -> Callable[[str], Any]:
    def now() -> datetime:
        return datetime.fromtimestamp(1_700_000_000 + clock.now(), UTC)

    async def source_ready(obj: Any) -> None:
        if not store.source_ready:
            raise DependencyNotReady("source 'GitRepository/default/repo' is not ready")

    async def path_is_relative(obj: Any) -> None:
        if obj["spec"].get("path", "").startswith("/"):
            raise InvalidSpec("spec.path must be relative")

    async def reconcile(key: str) -> Result:
        if key not in store.objects:
            return None
        obj = copy.deepcopy(store.objects[key])
        step = first_step(obj)
        if step is Step.DELETING:
            remove_finalizer(obj)
            del store.objects[key]
            return None
        if step is Step.ADD_FINALIZER:
            add_finalizer(obj)
            store.put(key, obj)
            return 0.0  # Flux's Requeue: true
        if step is Step.SUSPENDED:
            outcome = Outcome.suspended()
        else:
            try:
                await check_preconditions(obj, [source_ready, path_is_relative])
                progressing(obj, "Applying", now=now())
                outcome = Outcome.succeeded(requeue_after=60.0, message="Applied revision: main@sha1:abc")
            except (DependencyNotReady, InvalidSpec) as e:
                outcome = Outcome.failed(e)
        done = finalize(obj, outcome, now=now(), requeue_dependency=10.0)
        store.put(key, obj)  # the one status patch
        return done.result()

    return reconcile


async def test_an_object_goes_from_new_to_ready_to_stalled(unique: str) -> None:
    clock = ManualClock()
    store = Store()
    store.objects["default/app"] = {
        "metadata": {"name": "app", "namespace": "default", "generation": 1, "annotations": {REQUESTED_AT: "t1"}},
        "spec": {"path": "./deploy"},
    }
    controller: Controller[str] = Controller(unique, make_reconcile(store, clock), queue=WorkQueue(unique, clock=clock))
    q = controller.queue
    task = asyncio.create_task(controller.run())
    try:
        q.add("default/app")
        await eventually(lambda: q.deadline("default/app") == 0.75)  # finalizer added, requeued
        app = store.objects["default/app"]
        assert app["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]

        clock.advance(0.75)
        await eventually(lambda: c.get_reason(store.objects["default/app"], "Ready") == "DependencyNotReady")
        assert q.deadline("default/app") == 0.75 + 10.0
        assert store.objects["default/app"]["status"].get("observedGeneration") is None

        store.source_ready = True
        clock.advance(10.0)
        await eventually(lambda: c.is_ready(store.objects["default/app"]))
        app = store.objects["default/app"]
        assert app["status"]["observedGeneration"] == 1
        assert app["status"]["lastHandledReconcileAt"] == "t1"
        assert [x["type"] for x in app["status"]["conditions"]] == ["Ready"]
        assert q.deadline("default/app") == 10.75 + 60.0

        app["spec"]["path"] = "/abs"
        app["metadata"]["generation"] = 2
        q.add("default/app")  # the watch event for the edit
        await eventually(lambda: c.is_stalled(store.objects["default/app"]))
        app = store.objects["default/app"]
        assert app["status"]["observedGeneration"] == 2
        assert c.get_reason(app, "Ready") == "InvalidSpec"
        await eventually(lambda: q.in_flight == 0)
        assert q.deadline("default/app") is None  # stalled: nothing until the spec changes

        app["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
        q.add("default/app")
        await eventually(lambda: "default/app" not in store.objects)
    finally:
        controller.stop()
        await asyncio.wait_for(task, 10)
