"""Fixtures for the bus against the local stack's real Kafka: its address, per-test topics, a shared producer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from gitops_mesh.bus.kafka import Producer
from gitops_mesh.bus.topics import Topic, Topics, ensure_topics
from gitops_mesh_dev.stack import STACK_DIR, read_stack_env
from tests.integration.bus.support import PARTITIONS

DEFAULT_BOOTSTRAP = "127.0.0.1:29092"
#: The topics bus tests use; each test gets them under its own prefix.
TEST_TOPICS = (Topic.APPLIED, Topic.DLQ)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The stack's Kafka; .stack/env may not exist while the rest of the stack is still being built."""
    env = STACK_DIR / "env"
    if env.exists():
        return read_stack_env(env).get("KAFKA_BOOTSTRAP", DEFAULT_BOOTSTRAP)
    return DEFAULT_BOOTSTRAP


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[Producer]:
    """The test's one producer, shared by its publishers and consumers as a process shares it; closed after."""
    async with Producer(bootstrap=kafka_bootstrap, client_id="bus-test") as p:
        yield p


@pytest.fixture
async def bus_topics(kafka_bootstrap: str, unique: str) -> AsyncIterator[Topics]:
    """This test's own topics (prefix ``<unique>.``), created for it and deleted after."""
    topics = Topics(f"{unique}.")
    names = [topics.name(t) for t in TEST_TOPICS]
    await ensure_topics(kafka_bootstrap, names, partitions=PARTITIONS)
    yield topics
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=5000)
    with contextlib.suppress(KafkaError, OSError, TimeoutError):
        await admin.start()
        await asyncio.wait_for(admin.delete_topics(names), 10)
    await admin.close()
