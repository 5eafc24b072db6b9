"""The outbox relay: publishes a service's outbox rows to Kafka in id order, a batch at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.common.metrics import MESSAGES_PRODUCED, OUTBOX_BACKLOG

log = logging.getLogger(__name__)


class OutboxRelay:
    """One relay per service publishes at a time (advisory lock), so per-key order is the commit order."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        *,
        service: str,
        schema: str,
        batch_size: int = 2000,
        idle_wait_s: float = 0.5,
    ) -> None:
        self.pool = pool
        self.producer = producer
        self.service = service
        self.schema = schema
        self.batch_size = batch_size
        self.idle_wait_s = idle_wait_s
        self._wake = asyncio.Event()

    async def publish_batch(self) -> int:
        """Publish up to one batch; return how many rows were published."""
        async with self.pool.acquire() as conn, conn.transaction():
            locked = await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1 || '-relay'))", self.schema)
            if not locked:
                return 0
            rows = await conn.fetch(
                "SELECT id, topic, key, value, headers FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
                self.batch_size,
            )
            if not rows:
                return 0
            futures = []
            for row in rows:
                headers = [(k, str(v).encode()) for k, v in orjson.loads(row["headers"]).items()]
                futures.append(
                    await self.producer.send(row["topic"], row["value"], key=row["key"].encode(), headers=headers)
                )
            await asyncio.gather(*futures)
            await conn.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
            )
        topics: dict[str, int] = {}
        for row in rows:
            topics[row["topic"]] = topics.get(row["topic"], 0) + 1
        for topic, n in topics.items():
            MESSAGES_PRODUCED.labels(self.service, topic).inc(n)
        return len(rows)

    async def backlog(self) -> int:
        n: int = await self.pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        OUTBOX_BACKLOG.labels(self.service).set(n)
        return n

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Publish forever: woken by NOTIFY on insert, and by a poll as a fallback."""
        listener = await self.pool.acquire()
        channel = f"{self.schema}_outbox"
        await listener.add_listener(channel, self._notified)
        try:
            while True:
                self._wake.clear()
                try:
                    published = await self.publish_batch()
                except (OSError, KafkaError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                    log.warning("outbox relay failed, retrying", extra={"error": repr(exc)})
                    published = 0
                    await asyncio.sleep(1.0)
                if published == self.batch_size:
                    continue
                with contextlib.suppress(Exception):
                    await self.backlog()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_wait_s)
        finally:
            with contextlib.suppress(Exception):
                await listener.remove_listener(channel, self._notified)
            await self.pool.release(listener)
