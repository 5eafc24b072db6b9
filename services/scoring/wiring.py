"""Scoring's one wiring module: the only place that knows its real adapters."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from services.common.batch_consumer import BatchConsumer, ConsumerConfig, apply_in_order, counted, run_service
from services.common.contracts import ContractError
from services.common.db import create_pool, fresh_schema, migrate
from services.common.inbox import Inbox, Record
from services.common.metrics import serve_metrics
from services.common.reference import reference
from services.common.settings import Settings, get_settings
from services.common.topics import CASE_EVENTS
from services.common.worker import Runtime, add_outbox_relay, prepare
from services.rectification.domain.calendar import load_calendar
from services.scoring import service
from services.scoring.adapters.log import read_log
from services.scoring.adapters.store import ScoringStore, copy_projection
from services.scoring.adapters.wire import read_event
from services.scoring.domain.events import ScoredEvent
from services.scoring.domain.formula import load_formula
from services.scoring.domain.periods import Period
from services.scoring.domain.ranking import Ranking
from services.scoring.entrypoints.case_events import CaseEventProjector, FactsCache
from services.scoring.service import Publication, Rules, Verdict

SERVICE = "scoring"
SCHEMA = "scoring"
GROUP = "rectify-scoring"
MIGRATIONS = Path(__file__).parent / "migrations"
CACHED_CASES = 100_000
# records per poll (and per transaction) at least: a case's contributions are diffed and its row written once per
# batch it appears in, so larger polls mean fewer of those per event (docs/benchmarks.md: 4,000 -> 16,000 cut the
# projector's CPU per event by about a quarter); at 30,000 events/s a poll is about half a second of events
POLL_RECORDS = 16_000
PROJECTOR_LOCK = "rectify-scoring-projector"  # held shared by every running projector; a swap needs it alone


def case_event_inbox(pool: asyncpg.Pool, projector: CaseEventProjector, service: str = SERVICE) -> Inbox[ScoredEvent]:
    return Inbox(
        pool,
        service=service,
        decode=read_event,
        message_id=lambda e: e.event_id,
        handle=projector,
        claim=False,  # exactly once by each case's applied stream version, in the projector's own writes
    )


def consumer_config(settings: Settings, topic: str = CASE_EVENTS.name, group: str = GROUP) -> ConsumerConfig:
    return ConsumerConfig(
        bootstrap=settings.kafka_bootstrap_servers,
        topic=topic,
        group_id=group,
        client_id=f"{group}-projector",
        batch_size=max(settings.consumer_batch_size, POLL_RECORDS),
        session_timeout_ms=settings.kafka_session_timeout_ms,
    )


def build_worker(settings: Settings, topic: str = CASE_EVENTS.name, group: str = GROUP) -> Runtime:
    """The scoring worker: the case-event projector (a bare batch consumer) and the outbox relay."""
    runtime = Runtime(settings, SERVICE, SCHEMA)

    async def project_case_events() -> None:
        pool = await runtime.pool()
        projector = CaseEventProjector(FactsCache(CACHED_CASES), pool)
        async with pool.acquire() as guard:
            await guard.execute("SELECT pg_advisory_lock_shared(hashtext($1))", PROJECTOR_LOCK)
            try:
                consumer = BatchConsumer(
                    consumer_config(settings, topic, group),
                    case_event_inbox(pool, projector),
                    on_revoked=projector.forget,
                    plan=projector.plan,
                )
                await consumer.run()
            finally:
                with contextlib.suppress(Exception):
                    await guard.execute("SELECT pg_advisory_unlock_shared(hashtext($1))", PROJECTOR_LOCK)

    runtime.background(project_case_events)
    add_outbox_relay(runtime)  # rankings and dead letters leave through the outbox
    return runtime


# tracked objects allocated (net) before the collector scans the young generation. A poll keeps ~5 per record alive
# (record, decoded event, its id, ...) and every case it touches gets new contributions (a dict, a tuple or two),
# so at 50,000 a collection came in every poll and scanned all of that: ~0.7 µs per object on this machine, 4-6 µs
# per event, a fifth of the projector's CPU (docs/benchmarks.md). At 1,000,000 a collection comes only as the cache
# grows (about one per million events until it is full) or cyclic garbage builds up; acyclic garbage is freed by
# reference counting whatever the threshold.
YOUNG_OBJECTS = 1_000_000


def tune_gc() -> None:
    """The projector holds up to ``CACHED_CASES`` cases in memory and allocates a few tracked objects per event, most
    of which live for a whole poll: freeze what start-up made and collect the young generation only every
    ``YOUNG_OBJECTS`` (the older ones every 5 and 50 of those)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_OBJECTS, 5, 10)


def main_worker() -> None:
    settings = get_settings()
    asyncio.run(prepare(settings, SCHEMA, MIGRATIONS))
    serve_metrics(settings.metrics_port, settings.metrics_host)
    tune_gc()
    run_service(build_worker(settings), settings.log_level)


# ---------------------------------------------------------------------------- the operator's commands


def load_rules() -> Rules:
    return Rules(calendar=load_calendar(), reference=reference())


@asynccontextmanager
async def scoring_store(dsn: str, schema: str = SCHEMA) -> AsyncIterator[ScoringStore]:
    await migrate(dsn, schema, MIGRATIONS)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema, "application_name": "rectify-cli"})
    try:
        yield ScoringStore(conn)
    finally:
        await conn.close()


async def show_ranking(settings: Settings, period: Period, tier: str, formula_version: str) -> tuple[Ranking, bool]:
    async with scoring_store(settings.database_url) as store:
        return await service.show(store, period, tier, load_formula(formula_version), load_rules())


async def what_if_ranking(
    settings: Settings, period: Period, tier: str, formula_version: str, against: str
) -> tuple[Ranking, Ranking, list[tuple[str, int | None, int | None]]]:
    base, other = load_formula(against), load_formula(formula_version)
    async with scoring_store(settings.database_url) as store:
        return await service.what_if(store, period, tier, base, other, load_rules())


async def publish_ranking(
    settings: Settings, period: Period, tiers: list[str], formula_version: str, now: datetime | None = None
) -> list[Publication]:
    async with scoring_store(settings.database_url) as store:
        return await service.publish(
            store, period, tiers, load_formula(formula_version), load_rules(), now or datetime.now(UTC)
        )


async def scored_batches(
    records: AsyncIterator[list[Record]], progress: Callable[[int], None] | None = None
) -> AsyncIterator[list[ScoredEvent]]:
    """The log's records as scoring reads them; what the consumer would dead-letter is left out."""
    async for batch in records:
        events = []
        for record in batch:
            with contextlib.suppress(ContractError):
                events.append(read_event(record.value))
        if progress is not None:
            progress(len(batch))
        yield events


async def recompute_ranking(
    settings: Settings,
    period: Period,
    tiers: list[str],
    *,
    topic: str = CASE_EVENTS.name,
    idle_s: float = 3.0,
    progress: Callable[[int], None] | None = None,
) -> list[Verdict]:
    """Every ranking published for ``period``, recomputed from the case-event log alone."""
    async with scoring_store(settings.database_url) as store:
        entries = await service.published(store, period, tiers)
    if not entries:
        return []
    log = read_log(settings.kafka_bootstrap_servers, topic, idle_s=idle_s)
    tables = await service.fold_log(scored_batches(log, progress), period.cutoff)
    rules = load_rules()
    return [service.verdict(entry, tables, rules) for entry in entries]


@dataclass(frozen=True, slots=True)
class RebuildReport:
    events: int
    rebuilt: dict[str, str]  # table -> content hash
    live: dict[str, str]
    swapped: bool

    @property
    def identical(self) -> bool:
        return self.rebuilt == self.live


class ProjectorRunning(RuntimeError):
    """A scoring worker holds the projector lock: stop it before swapping tables under it."""


async def rebuild_scoring(
    settings: Settings,
    *,
    topic: str = CASE_EVENTS.name,
    schema: str = SCHEMA,
    idle_s: float = 3.0,
    expect: int | None = None,
    swap: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RebuildReport:
    """Replay the log into a fresh shadow schema through the consumer's own path, compare, and optionally swap in."""
    shadow = f"{schema}_rebuild"
    dsn = settings.database_url
    await fresh_schema(dsn, shadow, MIGRATIONS)
    pool = await create_pool(dsn, shadow, max_size=3)
    try:
        projector = CaseEventProjector(FactsCache(CACHED_CASES), pool)
        inbox = case_event_inbox(pool, projector, service=f"{SERVICE}-rebuild")
        batches = read_log(
            settings.kafka_bootstrap_servers, topic, idle_s=idle_s, expect=expect, batch_size=POLL_RECORDS
        )
        count = await apply_in_order(inbox, counted(batches, progress), plan=projector.plan)
    finally:
        await pool.close()
    async with scoring_store(dsn, shadow) as rebuilt, scoring_store(dsn, schema) as live:
        rebuilt_hash = (await rebuilt.tables()).digest()
        if swap:
            await _swap(live, shadow, schema)
        live_hash = (await live.tables()).digest()
    return RebuildReport(count, rebuilt_hash, live_hash, swap)


async def _swap(live: ScoringStore, shadow: str, schema: str) -> None:
    if not await live.conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", PROJECTOR_LOCK):
        raise ProjectorRunning("a scoring worker is running; stop it, then swap (its offsets resume after the swap)")
    try:
        async with live.conn.transaction():
            await copy_projection(live.conn, shadow, schema)
    finally:
        await live.conn.execute("SELECT pg_advisory_unlock(hashtext($1))", PROJECTOR_LOCK)
