"""Helpers for the bus's integration tests: sample events, waiting, reading offsets and topics, Kafka restarts."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from gitops_mesh.bus.envelope import CloudEvent, EventKind, ObjectRef, Severity, build_event
from gitops_mesh_dev.stack import STACK_SCRIPT

PARTITIONS = 3


def event(name: str, *, seq: int = 0, reason: str = "ReconciliationSucceeded", namespace: str = "apps") -> CloudEvent:
    """An ``applied`` event about Kustomization ``namespace/name``, numbered ``seq`` in its metadata."""
    return build_event(
        kind=EventKind.APPLIED,
        controller="kustomize-controller",
        instance="test",
        involved_object=ObjectRef(
            "kustomize.toolkit.fluxcd.io/v1", "Kustomization", namespace, name, uid=f"uid-{name}"
        ),
        severity=Severity.INFO,
        reason=reason,
        message=f"applied {name} #{seq}",
        revision=f"main@sha1:{seq:040x}",
        metadata={"seq": str(seq)},
    )


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def committed_offsets(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items()}


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return ends
    finally:
        await consumer.stop()


async def read_all(bootstrap: str, topic: str, *, expect: int, timeout: float = 20.0) -> list[Any]:
    """Every record on ``topic`` (no group), once at least ``expect`` have arrived."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout
        while len(records) < expect and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def stack_kafka(action: str) -> None:
    """``stack.sh stop|start kafka``: the one component these tests may restart."""
    assert action in ("stop", "start")
    proc = await asyncio.create_subprocess_exec(
        str(STACK_SCRIPT), action, "kafka", stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode != 0:
        pytest.fail(f"stack.sh {action} kafka failed ({proc.returncode}): {out.decode(errors='replace')[-2000:]}")
