"""The outbox relay against the real broker: everything committed is published, in order, once."""

import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from services.common.kafka import ensure_topics, make_producer
from services.common.outbox import OutgoingMessage, enqueue
from services.common.relay import OutboxRelay
from services.common.topics import TopicSpec

pytestmark = pytest.mark.integration


async def consume_all(bootstrap: str, topic: str, expected: int, timeout_ms: int = 15000) -> list:  # type: ignore[type-arg]
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"t-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    got = []
    try:
        while len(got) < expected:
            batch = await consumer.getmany(timeout_ms=timeout_ms)
            if not batch:
                break
            for records in batch.values():
                got.extend(records)
    finally:
        await consumer.stop()
    return got


async def test_relay_publishes_committed_rows_in_order_and_only_once(bootstrap: str, rect_pool: asyncpg.Pool) -> None:
    spec = TopicSpec(f"test.relay.{uuid.uuid4().hex[:8]}", 2, "case id", "test")
    await ensure_topics(bootstrap, (spec,))
    async with rect_pool.acquire() as conn, conn.transaction():
        await enqueue(conn, [OutgoingMessage(spec.name, f"case-{i % 3}", f"{i}".encode()) for i in range(30)])
    async with rect_pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await enqueue(conn, [OutgoingMessage(spec.name, "rolled-back", b"never")])
        await tx.rollback()

    producer = make_producer(bootstrap, "test-relay")
    await producer.start()
    try:
        relay = OutboxRelay(rect_pool, producer, service="test", schema="rectification", batch_size=7)
        published = 0
        while (n := await relay.publish_batch()) > 0:
            published += n
        assert published == 30
        assert await relay.publish_batch() == 0
        assert await relay.backlog() == 0
    finally:
        await producer.stop()

    records = await consume_all(bootstrap, spec.name, 30)
    assert len(records) == 30
    by_key: dict[bytes, list[int]] = {}
    for r in records:
        by_key.setdefault(r.key, []).append(int(r.value))
    assert b"rolled-back" not in by_key
    for values in by_key.values():
        assert values == sorted(values)
    assert await rect_pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
