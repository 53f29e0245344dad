"""Topic names of the bus, and creating them; also a small CLI the local stack uses."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from dataclasses import dataclass
from enum import StrEnum

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from gitops_mesh.errors import BusUnavailable

DEFAULT_PREFIX = "gitops."
DEFAULT_PARTITIONS = 6


class Topic(StrEnum):
    """Each topic's name without the configurable prefix."""

    ARTIFACT_READY = "artifact-ready"
    APPLIED = "applied"
    FAILED = "failed"
    EVENTS = "events"
    RECONCILE_REQUESTS = "reconcile-requests"
    DLQ = "dlq"


@dataclass(frozen=True, slots=True)
class Topics:
    """Full topic names under one prefix (tests use their own prefix to stay apart)."""

    prefix: str = DEFAULT_PREFIX

    def name(self, topic: Topic) -> str:
        return f"{self.prefix}{topic.value}"

    def all(self) -> list[str]:
        return [self.name(t) for t in Topic]

    def group(self, consumer: str) -> str:
        """A consumer group under the same prefix: installations (and tests) that keep their topics apart keep
        their groups apart too, instead of rebalancing one group across unrelated processes."""
        return f"{self.prefix}{consumer}"


async def ensure_topics(
    bootstrap: str,
    names: list[str],
    *,
    partitions: int = DEFAULT_PARTITIONS,
    replication: int = 1,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; returns the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            # Another process may win the race; the topic is then there, which is all we want.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(n, num_partitions=partitions, replication_factor=replication) for n in missing]
                )
        return missing
    except KafkaError as e:
        raise BusUnavailable(f"cannot create topics on {bootstrap}: {e}") from e
    finally:
        await admin.close()


async def _check(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        await admin.list_topics()
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Check Kafka or create gitops-mesh's topics.")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--prefix", default=DEFAULT_PREFIX)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--check", action="store_true", help="exit 0 when the broker answers")
    g.add_argument("--ensure", action="store_true", help="create missing topics")
    a = p.parse_args(argv)
    try:
        if a.check:
            asyncio.run(asyncio.wait_for(_check(a.bootstrap), 5))
        else:
            created = asyncio.run(ensure_topics(a.bootstrap, Topics(a.prefix).all()))
            print(f"topics created: {', '.join(created) or 'none (all exist)'}")
    except (KafkaError, BusUnavailable, OSError, TimeoutError) as e:
        print(f"kafka at {a.bootstrap}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
