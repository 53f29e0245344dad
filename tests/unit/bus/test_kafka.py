"""The typed edge over aiokafka without a broker: the abort hook we rely on, and the shared producer's life cycle."""

from __future__ import annotations

import socket

import aiokafka
import pytest

from gitops_mesh.bus.kafka import UNREACHABLE, Producer, ProducerSession, TopicPartition
from gitops_mesh.errors import BusUnavailable


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_aiokafka_still_lets_a_stop_fail_what_the_producer_holds() -> None:
    # The one private reach into aiokafka (see ProducerSession.stop): if an upgrade moves it, stopping a
    # producer while Kafka is down could hang again. This test is why the pin can be lifted with confidence.
    session = ProducerSession(aiokafka.AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{closed_port()}"))
    assert session.can_abort
    await session.stop(timeout=1.0)


async def test_no_broker_means_no_session_and_nothing_counted() -> None:
    producer = Producer(bootstrap=f"127.0.0.1:{closed_port()}", connect_timeout=5.0)
    with pytest.raises(UNREACHABLE):
        await producer.session()
    assert producer.sessions_started == 0
    await producer.close()


async def test_a_closed_producer_refuses_new_sessions() -> None:
    producer = Producer(bootstrap=f"127.0.0.1:{closed_port()}")
    await producer.close()
    await producer.close()  # closing twice is harmless: every owner may close in its finally
    with pytest.raises(BusUnavailable, match="closed"):
        await producer.session()


def test_topic_partitions_are_equal_to_and_hash_like_aiokafkas() -> None:
    # Offsets are keyed by ours; aiokafka hands back its own. Both must find the same entry.
    ours = TopicPartition("gitops.applied", 2)
    theirs = aiokafka.TopicPartition("gitops.applied", 2)
    assert ours == theirs
    assert {ours: 7}[theirs] == 7
