"""Running a service's consuming side as a faust worker.

faust owns the process: its lifecycle, signals, consumer group and rebalancing. Each
subscription is a faust agent that takes a poll's worth of events (``take_events``) and hands
them to an ``Inbox``, which applies them in one PostgreSQL transaction. Outbox relays run as
faust tasks beside the agents. The pool and producer are created in the running loop on
first use, never at import time.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import faust
import mode
from aiokafka import AIOKafkaProducer

from services.common.db import create_pool, migrate
from services.common.inbox import TRANSIENT, Inbox, Record
from services.common.kafka import ensure_topics, make_producer
from services.common.metrics import CONSUMER_LAG, HEALTH
from services.common.relay import OutboxRelay
from services.common.settings import Settings
from services.common.topics import TopicSpec

log = logging.getLogger(__name__)


def faust_broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


def make_app(service: str, settings: Settings) -> faust.App:
    datadir = Path(settings.faust_data_dir) / service
    datadir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        f"rectify-{service}",
        broker=faust_broker_url(settings.kafka_bootstrap_servers),
        web_enabled=False,
        datadir=str(datadir),
        store="memory://",
        autodiscover=False,
        topic_allow_declare=False,  # topics are created explicitly by ensure_topics
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.kafka_session_timeout_ms / 1000,
        broker_heartbeat_interval=min(3.0, settings.kafka_session_timeout_ms / 3000),
        stream_buffer_maxsize=max(4096, settings.consumer_batch_size * 2),
        logging_config=None,
    )


class Runtime(mode.Service):
    """The process's pool and producer, created once inside faust's running loop and closed when faust stops."""

    def __init__(self, settings: Settings, service: str, schema: str) -> None:
        super().__init__()
        self.settings = settings
        self.service = service
        self.schema = schema
        self._pool: asyncpg.Pool | None = None
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._background: list[Callable[[], Awaitable[None]]] = []

    def background(self, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` while the worker runs; it is cancelled before the pool and producer close."""
        self._background.append(job)

    async def on_started(self) -> None:
        for job in self._background:
            self.add_future(job())

    async def pool(self) -> asyncpg.Pool:
        async with self._lock:
            if self._pool is None:
                self._pool = await create_pool(self.settings.database_url, self.schema, max_size=8)
            return self._pool

    async def producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = make_producer(self.settings.kafka_bootstrap_servers, f"rectify-{self.service}-relay")
                await producer.start()
                self._producer = producer
            return self._producer

    async def on_shutdown(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
        if self._pool is not None:
            await self._pool.close()


def add_batch_agent(
    app: faust.App,
    spec: TopicSpec,
    make_inbox: Callable[[], Awaitable[Inbox[Any]]],
    settings: Settings,
) -> None:
    topic = app.topic(spec.name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    ready_flag = f"consumer {spec.name}"
    HEALTH.require(ready_flag)
    positions: dict[int, int] = {}  # partition -> next offset to apply

    async def consume(stream: faust.StreamT[bytes]) -> None:
        inbox = await make_inbox()
        HEALTH.mark(ready_flag, True)
        async for events in stream.take_events(settings.consumer_batch_size, within=settings.consumer_batch_window_s):
            records = [
                Record(
                    e.message.topic,
                    e.message.partition,
                    e.message.offset,
                    e.message.key,
                    e.message.value or b"",
                    kafka_headers(e.message.headers),
                )
                for e in events
            ]
            while True:
                try:
                    await inbox.process(records)
                    break
                except TRANSIENT as exc:
                    log.warning("database unavailable; retrying batch", extra={"error": repr(exc)})
                    await asyncio.sleep(1.0)
            for r in records:
                positions[r.partition] = max(positions.get(r.partition, 0), r.offset + 1)
            note_lag(app, spec.name, inbox.service, positions)

    consume.__name__ = f"apply_{spec.name.replace('.', '_').replace('-', '_')}"
    app.agent(topic, name=f"{app.conf.id}.{consume.__name__}")(consume)


def note_lag(app: faust.App, topic: str, service: str, positions: Mapping[int, int]) -> None:
    """Events behind, from the high watermarks the consumer saw in its fetch responses (never ListOffsets, which
    the local broker answers wrongly: shared/BROKER.md). Refreshed after each batch, so an idle consumer keeps its
    last value; partitions this process has not consumed yet are not counted."""
    from faust.types import TP

    behind = 0
    for partition, position in positions.items():
        try:
            highwater = app.consumer.highwater(TP(topic, partition))
        except Exception:
            return
        if highwater is not None and highwater >= 0:
            behind += max(0, highwater - position)
    CONSUMER_LAG.labels(service, topic).set(behind)


def kafka_headers(headers: Any) -> tuple[tuple[str, bytes], ...]:
    """faust hands headers as a list of pairs or a mapping; an inbox record keeps them as pairs."""
    if not headers:
        return ()
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(k), bytes(v or b"")) for k, v in pairs)


def add_outbox_relay(runtime: Runtime) -> None:
    async def relay_outbox() -> None:
        relay = OutboxRelay(
            await runtime.pool(),
            await runtime.producer(),
            service=runtime.service,
            schema=runtime.schema,
            idle_wait_s=runtime.settings.outbox_poll_interval_s * 10,
            bootstrap=runtime.settings.kafka_bootstrap_servers,
        )
        await relay.run()

    runtime.background(relay_outbox)


def tune_gc() -> None:
    """For a worker that keeps many objects (a hot cache) and allocates a few per message: freeze what start-up
    made, so the collector stops rescanning it, and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def run_worker(app: faust.App, loglevel: str = "INFO") -> None:
    """Hand the process to faust; it returns when the worker stops (SIGTERM, SIGINT)."""
    # logging is set up by ``rectify serve`` (services/common/logs.py): JSON lines; faust must not replace it
    worker = faust.Worker(app, loglevel=loglevel.lower(), quiet=True, override_logging=False)
    worker.execute_from_commandline()


async def prepare(settings: Settings, schema: str, migrations: Path) -> None:
    """Before serving: apply the service's migrations and make sure every topic exists."""
    await migrate(settings.database_url, schema, migrations)
    await ensure_topics(settings.kafka_bootstrap_servers, replication=settings.kafka_replication_factor)


def utcnow() -> datetime:
    return datetime.now(UTC)
