"""Kafka plumbing on aiokafka: explicit topic creation and the producer the relays use."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from services.common.topics import ALL_TOPICS, TopicSpec


async def ensure_topics(
    bootstrap: str, specs: tuple[TopicSpec, ...] = ALL_TOPICS, replication: int = 1, attempts: int = 60
) -> None:
    """Create the topics that do not exist yet; waits for the broker to come up."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="rectify-admin")
    for attempt in range(attempts):
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5)
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                s.name,
                s.partitions,
                replication,
                topic_configs={"cleanup.policy": s.cleanup_policy, "retention.ms": str(s.retention_ms)},
            )
            for s in specs
            if s.name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
    finally:
        await admin.close()


def make_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    # acks=all and no idempotent producer: the consumers are idempotent instead (see docs/architecture.md).
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        linger_ms=2,
        max_batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
        compression_type=None,
    )
