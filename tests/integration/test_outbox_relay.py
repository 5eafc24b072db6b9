"""The outbox relay against the real broker: everything committed is published, in order, once; a broker that lost
its data gets the whole outbox again, in order."""

import asyncio
import os
import signal
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from services.cli.local import stack_module
from services.common.kafka import ensure_topics, make_producer
from services.common.outbox import OutgoingMessage, enqueue
from services.common.relay import OutboxRelay
from services.common.topics import COMMANDS, TopicSpec
from services.scoring.adapters.log import read_log

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


async def test_a_broker_that_lost_the_outbox_gets_all_of_it_again_in_order_before_anything_newer(
    rect_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """The relay's own broker restarts empty: before its next batch the relay marks the whole outbox unpublished
    and publishes it again in id order, then the new rows; on the same broker it does not do it twice."""
    stack = stack_module()
    broker = stack.start_broker(tmp_path)
    bootstrap = f"127.0.0.1:{broker['port']}"
    spec = COMMANDS  # a declared topic, which the relay creates on a broker that lacks it (this one is private)
    producer = make_producer(bootstrap, "test-relay-refill")
    try:
        await producer.start()
        relay = OutboxRelay(rect_pool, producer, service="test", schema="rectification", bootstrap=bootstrap)
        async with rect_pool.acquire() as conn, conn.transaction():
            await enqueue(conn, [OutgoingMessage(spec.name, f"case-{i % 3}", f"{i}".encode()) for i in range(10)])
        assert await relay.publish_batch() == 0
        assert relay.replays == 1  # a new broker: nothing had been published, the marker is put there first
        assert await relay.publish_batch() == 10
        assert await relay.publish_batch() == 0

        os.kill(int(broker["pid"]), signal.SIGTERM)
        await asyncio.to_thread(os.waitpid, int(broker["pid"]), 0)
        broker = stack.start_broker(tmp_path, port=int(broker["port"]))
        async with rect_pool.acquire() as conn, conn.transaction():
            await enqueue(conn, [OutgoingMessage(spec.name, f"case-{i % 3}", f"{i}".encode()) for i in range(10, 15)])
        assert await relay.publish_batch() == 0
        assert relay.replays == 2  # the marker is gone: everything is marked for publishing again
        published = 0
        while (n := await relay.publish_batch()) > 0:
            published += n
        assert published == 15
        assert await relay.publish_batch() == 0
        assert relay.replays == 2
    finally:
        await producer.stop()
    try:
        records = [r async for batch in read_log(bootstrap, spec.name, idle_s=2.0) for r in batch]
    finally:
        os.kill(int(broker["pid"]), signal.SIGTERM)
    by_key: dict[bytes | None, list[int]] = {}
    for r in records:
        by_key.setdefault(r.key, []).append(int(r.value))
    assert sorted(v for values in by_key.values() for v in values) == list(range(15))
    for values in by_key.values():
        assert values == sorted(values)
