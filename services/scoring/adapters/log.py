"""Reading the case-event log from its beginning, without a consumer group.

The reader assigns itself every partition of the topic, seeks to the beginning and reads until the topic has
been quiet for ``idle_s`` (or, when the caller knows it, until ``expect`` records have come). It never asks the
broker for end offsets: the local broker answers them wrongly (shared/BROKER.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.batch_consumer import to_records
from services.common.inbox import Record


class NoSuchTopic(RuntimeError):
    pass


async def _partitions(consumer: AIOKafkaConsumer, topic: str, wait_s: float = 10.0) -> list[TopicPartition]:
    deadline = time.monotonic() + wait_s
    while True:
        await consumer.topics()  # refreshes the metadata
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        if time.monotonic() > deadline:
            raise NoSuchTopic(f"topic {topic} does not exist on the broker")
        await asyncio.sleep(0.2)


async def read_log(
    bootstrap: str,
    topic: str,
    *,
    idle_s: float = 3.0,
    expect: int | None = None,
    batch_size: int = 5000,
) -> AsyncIterator[list[Record]]:
    """Every record of ``topic`` from the beginning, a poll at a time."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id="rectify-scoring-log-reader",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen, quiet_since = 0, time.monotonic()
        while expect is None or seen < expect:
            polled = await consumer.getmany(timeout_ms=200, max_records=batch_size)
            if polled:
                records = to_records(polled)
                seen += len(records)
                quiet_since = time.monotonic()
                yield records
            elif time.monotonic() - quiet_since >= idle_s:
                return
    finally:
        await consumer.stop()
