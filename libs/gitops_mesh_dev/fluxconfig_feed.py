"""Dev tooling: fluxconfig-controller's status feed in-process, on its own caches, publisher and bus consumer.

What ``fluxconfig-controller`` wires in its ``setup`` (the shared platform, the feed's handler on the bus
consumer), for tests and benchmarks that exercise the feed alone against the local stack while the rest of
the mesh runs as real processes. ``with_bus=False`` leaves the consumer out: Kafka "away", the informers alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fluxconfig_controller.model import API_VERSION, KIND
from fluxconfig_controller.status_feed import TOPICS, StatusFeed
from gitops_mesh.bus.consumer import Consumer
from gitops_mesh.bus.kafka import Producer
from gitops_mesh.bus.producer import Publisher
from gitops_mesh.bus.topics import Topics
from gitops_mesh.kube.caches import Caches
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.events import EventRecorder

CONTROLLER = "fluxconfig-controller"


@dataclass
class RunningFeed:
    """The running feed and its bus consumer (None when Kafka is left out)."""

    feed: StatusFeed
    consumer: Consumer | None

    async def joined(self, timeout: float = 60) -> None:
        """Until the consumer has joined its group (partitions assigned), so events reach the feed."""
        deadline = time.monotonic() + timeout
        while self.consumer is not None and self.consumer.ready() is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the feed's consumer did not join: {self.consumer.ready()}")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def feed_running(
    *, kubeconfig: str, bootstrap: str, topics: Topics, namespace: str | None, with_bus: bool = True
) -> AsyncIterator[RunningFeed]:
    """A running :class:`StatusFeed` watching ``namespace`` (None: all), stopped and closed on exit."""
    kube = await KubeClient.connect(kubeconfig)
    producer = Producer(bootstrap=bootstrap, client_id=CONTROLLER)
    publisher = Publisher(producer=producer, topics=topics)
    caches = Caches(kube, namespace=namespace)
    consumer: Consumer | None = None
    task: asyncio.Task[None] | None = None
    try:
        await publisher.start()
        feed = StatusFeed(
            kube=kube,
            configs=caches.informer(API_VERSION, KIND),
            caches=caches,
            publisher=publisher,
            controller=CONTROLLER,
            instance="dev",
            recorder=EventRecorder(kube, CONTROLLER, "dev"),
        )
        if with_bus:
            consumer = Consumer(
                bootstrap=bootstrap,
                group_id=topics.group(CONTROLLER),
                topics=list(TOPICS),
                names=topics,
                handler=feed.handler(),
                producer=producer,
                client_id=CONTROLLER,
            )
            await consumer.start()
        caches.start()
        task = asyncio.create_task(feed.run(), name="fluxconfig/status-feed")
        yield RunningFeed(feed, consumer)
    finally:
        if consumer is not None:
            await consumer.stop()
        if task is not None:
            feed.stop()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, 30)
        await caches.stop()
        await publisher.close()
        await producer.close()
        await kube.close()
