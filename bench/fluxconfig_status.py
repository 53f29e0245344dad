"""FluxConfig status feed: event → compliance-update latency, p50/p99, with the bus and with the informers alone.

N FluxConfigs, each with the GitRepository and one Kustomization the core reconciler would make for it
(labelled as it labels them), in one namespace of the local stack. The bench plays source- and
kustomize-controller: it writes those objects' status as they do, and, like them, publishes the `failed` or
`applied` event right after the status write returns. The feed runs in-process
(``gitops_mesh_dev.fluxconfig_feed``) against the real apiserver and Kafka.

Each round flips one config's Kustomization Ready=False (then back to True on the next round for that
config): t0 is taken when its status write has returned, right before the event is published; the latency
ends when the bench's own watch of the FluxConfig sees ``complianceState`` turn Non-Compliant (Compliant).
That is the whole path a user sees: event → feed → summary → status patch → watch. Run once with the bus
(the feed's consumer and the informers race; whichever wakes it first counts) and once with Kafka "away"
(no consumer: the informers alone, the fallback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
import uuid
from typing import Any

from bench.measures import Measure, emit, percentile
from bench.notification_fanout import delete_topics
from fluxconfig_controller.model import API_VERSION, KIND, NAME_LABEL, NAMESPACE_LABEL
from gitops_mesh.bus.envelope import EventKind, Severity
from gitops_mesh.bus.kafka import Producer
from gitops_mesh.bus.producer import Publisher
from gitops_mesh.bus.topics import Topics, ensure_topics
from gitops_mesh.errors import NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.informer import ChangeType, Informer
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.observability.logging import configure_logging
from gitops_mesh.reconcile.result import Announcement
from gitops_mesh.runner import publish_announcement
from gitops_mesh_dev.fluxconfig_feed import feed_running
from gitops_mesh_dev.namespaces import drop_finalizers
from gitops_mesh_dev.stack import read_stack_env

SUITE = "fluxconfig"
SRC = "source.toolkit.fluxcd.io/v1"
KS = "kustomize.toolkit.fluxcd.io/v1"
SHA = "0ba6f0d30760d567de0bac86c8c4eec13ce1a590"
REVISION = f"main@sha1:{SHA}"
ANCHOR = "issue #14: compliance updated within a second of the event"
NOW = "2026-01-01T00:00:00Z"


def ready(status: str, reason: str, message: str) -> dict[str, str]:
    return {"type": "Ready", "status": status, "reason": reason, "message": message, "lastTransitionTime": NOW}


def labelled(ns: str, name: str, config: str) -> dict[str, Any]:
    labels = {"clusterconfig.azure.com/is-managed": "true", NAME_LABEL: config, NAMESPACE_LABEL: ns}
    return {"name": name, "namespace": ns, "labels": labels}


async def make_configs(kube: KubeClient, ns: str, n: int) -> None:
    """N configs with their source and Kustomization, all Ready, every spec marked reconciled."""
    for i in range(n):
        cfg = f"cfg{i}"
        created = await kube.create(
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "metadata": {"name": cfg, "namespace": ns},
                "spec": {
                    "gitRepository": {"url": "https://example.invalid/repo.git", "repositoryRef": {"branch": "main"}},
                    "kustomizations": {"app": {"path": "./app"}},
                },
            }
        )
        gen = created["metadata"]["generation"]
        await kube.patch_status(API_VERSION, KIND, cfg, {"status": {"observedGeneration": gen}}, namespace=ns)
        repo = await kube.create(
            {
                "apiVersion": SRC,
                "kind": "GitRepository",
                "metadata": labelled(ns, cfg, cfg),
                "spec": {"url": "https://example.invalid/repo.git", "interval": "1h", "ref": {"branch": "main"}},
            }
        )
        await kube.patch_status(
            SRC,
            "GitRepository",
            cfg,
            {
                "status": {
                    "observedGeneration": repo["metadata"]["generation"],
                    "conditions": [ready("True", "Succeeded", f"stored artifact for revision '{REVISION}'")],
                    "artifact": {
                        "revision": REVISION,
                        "digest": "sha256:" + "0" * 64,
                        "path": "x",
                        "url": "http://x",
                        "lastUpdateTime": NOW,
                    },
                }
            },
            namespace=ns,
        )
        ks = await kube.create(
            {
                "apiVersion": KS,
                "kind": "Kustomization",
                "metadata": labelled(ns, f"{cfg}-app", cfg),
                "spec": {
                    "interval": "1h",
                    "path": "./app",
                    "prune": True,
                    "sourceRef": {"kind": "GitRepository", "name": cfg},
                },
            }
        )
        await set_ready(kube, ns, f"{cfg}-app", True, ks["metadata"]["generation"])


async def set_ready(kube: KubeClient, ns: str, name: str, ok: bool, generation: int = 1) -> None:
    cond = (
        ready("True", "ReconciliationSucceeded", f"Applied revision: {REVISION}")
        if ok
        else ready("False", "BuildFailed", "kustomize build failed: accumulating resources")
    )
    status: dict[str, Any] = {"observedGeneration": generation, "conditions": [cond], "lastAttemptedRevision": REVISION}
    if ok:
        status["lastAppliedRevision"] = REVISION
    await kube.patch_status(KS, "Kustomization", name, {"status": status}, namespace=ns)


class Watch:
    """The bench's own watch of the FluxConfigs: resolves a waiter when a config reaches a state."""

    def __init__(self) -> None:
        self.waiting: dict[str, tuple[str, asyncio.Future[float]]] = {}
        self.states: dict[str, str] = {}

    def on_change(self, change: ChangeType, obj: KubeObject, old: KubeObject | None) -> None:
        name = obj["metadata"]["name"]
        state = (obj.get("status") or {}).get("complianceState") or ""
        self.states[name] = state
        want = self.waiting.get(name)
        if want is not None and want[0] == state and not want[1].done():
            want[1].set_result(time.perf_counter())

    def expect(self, name: str, state: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[name] = (state, future)
        return future


async def rounds(kube: KubeClient, publisher: Publisher, watch: Watch, ns: str, n: int, count: int) -> list[float]:
    latencies: list[float] = []
    healthy = {f"cfg{i}": True for i in range(n)}
    for r in range(count):
        cfg = f"cfg{r % n}"
        ok = not healthy[cfg]
        healthy[cfg] = ok
        done = watch.expect(cfg, "Compliant" if ok else "Non-Compliant")
        await set_ready(kube, ns, f"{cfg}-app", ok)
        t0 = time.perf_counter()
        ks = {"apiVersion": KS, "kind": "Kustomization", "metadata": {"name": f"{cfg}-app", "namespace": ns}}
        said = Announcement(
            EventKind.APPLIED if ok else EventKind.FAILED,
            "ReconciliationSucceeded" if ok else "BuildFailed",
            "applied" if ok else "kustomize build failed",
            revision=REVISION,
            severity=Severity.INFO if ok else Severity.ERROR,
        )
        publish_announcement(publisher, ks, said, controller="kustomize-controller", instance="bench")
        t1 = await asyncio.wait_for(done, 30)
        latencies.append(max(0.0, t1 - t0))
    return latencies


async def run_mode(env: dict[str, str], with_bus: bool, n: int, count: int) -> list[float]:
    tag = f"bench-fcs-{uuid.uuid4().hex[:8]}"
    topics = Topics(f"{tag}.")
    kube = await KubeClient.connect(env["KUBECONFIG"])
    producer = Producer(bootstrap=env["KAFKA_BOOTSTRAP"], client_id="bench")
    publisher = Publisher(producer=producer, topics=topics)
    try:
        await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": tag}})
        await ensure_topics(env["KAFKA_BOOTSTRAP"], topics.all(), partitions=1)
        await publisher.start()
        await make_configs(kube, tag, n)
        watch = Watch()
        informer = Informer(kube, API_VERSION, KIND, namespace=tag)
        informer.on_event(watch.on_change)
        async with (
            informer,
            feed_running(
                kubeconfig=env["KUBECONFIG"],
                bootstrap=env["KAFKA_BOOTSTRAP"],
                topics=topics,
                namespace=tag,
                with_bus=with_bus,
            ) as feed,
        ):
            await informer.wait_synced(30)
            deadline = time.monotonic() + 60
            while not all(watch.states.get(f"cfg{i}") == "Compliant" for i in range(n)):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"configs not Compliant after 60 s: {watch.states}")
                await asyncio.sleep(0.05)
            await feed.joined()  # the consumer joins in the background; rounds start once it has
            return await rounds(kube, publisher, watch, tag, n, count)
    finally:
        await publisher.close()
        await producer.close()
        await drop_finalizers(kube, tag)
        with contextlib.suppress(NotFound):
            await kube.delete("v1", "Namespace", tag)
        await kube.close()
        await delete_topics(env["KAFKA_BOOTSTRAP"], topics.all())


async def main_async(n: int, count: int) -> None:
    env = read_stack_env()
    bus = await run_mode(env, True, n, count)
    informers = await run_mode(env, False, n, count)
    measures = []
    for label, samples in (("with the bus", bus), ("informers only (Kafka away)", informers)):
        for p, target in ((50, "<= 1"), (99, "<= 1")):
            measures.append(
                Measure(
                    SUITE,
                    f"event → FluxConfig compliance updated, {label}, p{p} of {count}",
                    round(percentile(samples, p), 3),
                    "s",
                    target,
                    ANCHOR,
                )
            )
    emit(
        measures,
        {
            "configs": n,
            "rounds": count,
            "cpus": os.cpu_count(),
            "bus_ms": [round(s * 1000, 1) for s in bus],
            "informers_ms": [round(s * 1000, 1) for s in informers],
            "bus_mean_ms": round(statistics.fmean(bus) * 1000, 1),
            "informers_mean_ms": round(statistics.fmean(informers) * 1000, 1),
            "percentiles": "nearest rank over the N samples: p99 is the max when N < 100",
            "clock": "t0 when the Kustomization's status write returned, right before its event is published; "
            "end when the bench's own watch sees the FluxConfig's complianceState change",
        },
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", type=int, default=20)
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    # stdout is the JSON report: the feed's own logs go to stderr, warnings only.
    configure_logging(level="warning")
    asyncio.run(main_async(5 if args.quick else args.configs, 10 if args.quick else args.rounds))


if __name__ == "__main__":
    main()
