"""The outbox relay: publishes a service's outbox rows to Kafka in id order, a batch at a time.

A broker that lost its data (the local broker keeps everything in memory, so a restart starts it empty) is
refilled from the outbox: published rows are kept, stamped ``published_at``. Before each batch (and each idle poll), the
relay checks that the broker holds its service's marker topic (``topics.relay_marker``); when it does not, the
relay creates the declared topics, marks every row of its outbox unpublished (under the relay lock), then creates
the marker, and publishes the whole outbox again in id order before anything newer. Consumers skip what they had
applied by message id. ``rectify outbox replay`` does the marking by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.common.kafka import ensure_topics
from services.common.metrics import MESSAGES_PRODUCED, OUTBOX_BACKLOG
from services.common.topics import relay_marker

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
        bootstrap: str | None = None,
    ) -> None:
        """``bootstrap`` turns on the check for a broker that lost the outbox (and the refill); without it the relay
        trusts the broker."""
        self.pool = pool
        self.producer = producer
        self.service = service
        self.schema = schema
        self.batch_size = batch_size
        self.idle_wait_s = idle_wait_s
        self.bootstrap = bootstrap
        self.marker = relay_marker(schema)
        self._wake = asyncio.Event()
        self.replays = 0  # times this relay found the broker without its outbox and published it all again

    async def publish_batch(self) -> int:
        """Publish up to one batch; return how many rows were published. If the broker lacks this outbox, mark all
        of it for publishing again instead (``replay``); the next batch starts from its first row.

        The broker is asked while PostgreSQL reads the batch, so the check's round trip overlaps the database's."""
        held = asyncio.ensure_future(self.broker_holds_outbox())
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await self._next_batch(conn)
                if await held and rows:
                    await self._send(conn, rows)
        finally:
            held.cancel()
        if not held.result():
            await self.replay()
            return 0
        topics: dict[str, int] = {}
        for row in rows:
            topics[row["topic"]] = topics.get(row["topic"], 0) + 1
        for topic, n in topics.items():
            MESSAGES_PRODUCED.labels(self.service, topic).inc(n)
        return len(rows)

    async def _next_batch(self, conn: asyncpg.Connection) -> list[asyncpg.Record]:
        """The oldest unpublished rows, if this relay holds the service's relay lock (else none)."""
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1 || '-relay'))", self.schema):
            return []
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT id, topic, key, value, headers FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
            self.batch_size,
        )
        return rows

    async def _send(self, conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> None:
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

    async def broker_holds_outbox(self) -> bool:
        """Whether the broker has this service's marker topic (one metadata request; never creates a topic)."""
        if self.bootstrap is None:
            return True
        metadata = await self.producer.client.fetch_all_metadata()
        return self.marker.name in metadata.topics()

    async def replay(self) -> int:
        """The broker lacks this outbox: create the declared topics, mark every published row for publishing again
        (waiting for the relay lock, so no batch is half-way), then create the marker. Returns the rows marked.

        The marker comes last: a crash before it leaves the broker unmarked, and the next relay marks again."""
        assert self.bootstrap is not None
        await ensure_topics(self.bootstrap)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1 || '-relay'))", self.schema)
            status = await conn.execute("UPDATE outbox SET published_at = NULL WHERE published_at IS NOT NULL")
        await ensure_topics(self.bootstrap, (self.marker,))
        marked = int(status.split()[-1])
        self.replays += 1
        log.log(
            logging.WARNING if marked else logging.INFO,
            "the broker lacks this outbox (restarted empty, or new): publishing all of it again, in order",
            extra={"rows": marked, "marker": self.marker.name},
        )
        self._wake.set()  # publish the first of them at once
        return marked

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
