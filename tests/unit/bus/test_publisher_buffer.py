"""The publisher's buffer on its own (never started, so no Kafka): bounded, and never drops silently."""

from __future__ import annotations

from prometheus_client import REGISTRY

from gitops_mesh.bus.envelope import CloudEvent, EventKind, ObjectRef, Severity, build_event
from gitops_mesh.bus.kafka import Producer
from gitops_mesh.bus.producer import Publisher
from gitops_mesh.bus.topics import Topic, Topics


def _dropped(topic: str) -> float:
    return REGISTRY.get_sample_value("gitops_bus_dropped_total", {"topic": topic}) or 0.0


def _event(name: str) -> CloudEvent:
    return build_event(
        kind=EventKind.APPLIED,
        controller="kustomize-controller",
        instance="0",
        involved_object=ObjectRef("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "apps", name),
        severity=Severity.INFO,
        reason="ReconciliationSucceeded",
        message="applied",
    )


async def test_full_buffer_drops_counts_and_close_accounts_for_the_rest() -> None:
    topics = Topics("unit-buffer.")
    topic = topics.name(Topic.APPLIED)
    before = _dropped(topic)
    producer = Producer(bootstrap="127.0.0.1:1")
    pub = Publisher(producer=producer, topics=topics, buffer_size=3)
    assert pub.ready() == "publisher not started"

    assert [pub.publish(Topic.APPLIED, _event(f"o{i}")) for i in range(5)] == [True, True, True, False, False]
    assert pub.buffered == 3
    assert _dropped(topic) == before + 2

    # Never started, so nothing can be delivered: close() must count them rather than lose them quietly.
    await pub.close(timeout=0.1)
    assert pub.buffered == 0
    assert _dropped(topic) == before + 5
    assert pub.publish(Topic.APPLIED, _event("after-close")) is False
    assert _dropped(topic) == before + 6
    assert producer.sessions_started == 0, "a publisher never started never connects"
