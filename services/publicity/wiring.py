"""Publicity's one wiring module: the public web process and the projection worker (public facts, rankings)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import uvicorn

from services.common.batch_consumer import (
    BatchConsumer,
    ConsumerConfig,
    apply_in_order,
    counted,
    require_ready,
    run_service,
)
from services.common.contracts import EventEnvelope
from services.common.db import create_pool, fresh_schema
from services.common.inbox import Inbox
from services.common.metrics import serve_metrics
from services.common.settings import Settings, get_settings
from services.common.topics import PUBLIC_CASES, RANKINGS
from services.common.worker import Runtime, add_outbox_relay, prepare
from services.publicity.adapters import ledger as ledger_store
from services.publicity.adapters.store import bump_watermark
from services.publicity.entrypoints.public_facts import apply_public_batch, decode_public_fact
from services.publicity.entrypoints.ranking_facts import apply_ranking_batch, decode_ranking_fact
from services.publicity.entrypoints.web import create_app
from services.publicity.ledger import Verdict, verify
from services.scoring.adapters.log import read_log

SERVICE = "publicity"
SCHEMA = "publicity"
GROUP = "rectify-publicity"  # the group (and so the committed offsets) of the faust agents these loops replaced
MIGRATIONS = Path(__file__).parent / "migrations"


def consumer_config(settings: Settings, topic: str, group: str = GROUP) -> ConsumerConfig:
    return ConsumerConfig(
        bootstrap=settings.kafka_bootstrap_servers,
        topic=topic,
        group_id=group,
        client_id=f"{group}-{topic}",
        batch_size=settings.consumer_batch_size,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        fetch_wait_ms=settings.consumer_fetch_wait_ms,
    )


def build_worker(
    settings: Settings, cases_topic: str = PUBLIC_CASES.name, rankings_topic: str = RANKINGS.name, group: str = GROUP
) -> Runtime:
    """The publicity worker: one batch loop per public topic (both members of the same group) and the outbox relay.

    Each loop applies a poll in one transaction; both append to the one ledger, whose head row lock serialises the
    two transactions, so the ledger holds the facts in the order they were applied. Neither keeps a cache.
    """
    runtime = Runtime(settings, SERVICE, SCHEMA)

    def consume(topic: str, make_inbox: Callable[[asyncpg.Pool], Inbox[EventEnvelope]]) -> None:
        require_ready(topic)

        async def run() -> None:
            await BatchConsumer(consumer_config(settings, topic, group), make_inbox(await runtime.pool())).run()

        run.__name__ = f"consume_{topic}"
        runtime.background(run)

    consume(cases_topic, public_facts_inbox)
    consume(rankings_topic, rankings_inbox)
    add_outbox_relay(runtime)  # dead letters leave through the outbox
    return runtime


def main_http() -> None:
    settings = get_settings()
    asyncio.run(prepare(settings, SCHEMA, MIGRATIONS))
    serve_metrics(settings.metrics_port, settings.metrics_host)
    uvicorn.run(
        create_app(settings.database_url),
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


def main_worker() -> None:
    settings = get_settings()
    asyncio.run(prepare(settings, SCHEMA, MIGRATIONS))
    serve_metrics(settings.metrics_port, settings.metrics_host)
    run_service(build_worker(settings), settings.log_level)


# ---------------------------------------------------------------------------- rebuild (rectify rebuild publicity)

PROJECTION_TABLES = ("cases", "timeline", "stats_cells", "rankings")
_WHERE = {"stats_cells": "WHERE n <> 0"}  # a cell emptied by a later version stays as a zero row in the live table


def public_facts_inbox(pool: asyncpg.Pool, service: str = SERVICE) -> Inbox[EventEnvelope]:
    return Inbox(
        pool, service=service, decode=decode_public_fact, message_id=lambda e: e.event_id, handle=apply_public_batch
    )


def rankings_inbox(pool: asyncpg.Pool, service: str = SERVICE) -> Inbox[EventEnvelope]:
    return Inbox(
        pool, service=service, decode=decode_ranking_fact, message_id=lambda e: e.event_id, handle=apply_ranking_batch
    )


async def table_hashes(conn: asyncpg.Connection, schema: str) -> dict[str, str]:
    """A content hash of each projection table: sha256 over its rows' text, in text order."""
    out = {}
    for table in PROJECTION_TABLES:
        out[table] = await conn.fetchval(
            "SELECT encode(sha256(convert_to(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), ''), 'UTF8')),"
            f" 'hex') FROM {schema}.{table} t {_WHERE.get(table, '')}"
        )
    return out


@dataclass(frozen=True, slots=True)
class LedgerComparison:
    """The live ledger against the facts of the log (as the rebuild recorded them)."""

    in_log: int
    missing: list[str]  # event ids in the log that the live ledger lacks
    unknown: list[str]  # event ids in the live ledger that the log lacks (e.g. past the topic's retention)
    altered: list[str]  # event ids recorded with other bytes than the log's fact
    chain: Verdict  # the live chain, verified

    @property
    def consistent(self) -> bool:
        return not self.missing and not self.altered and self.chain.ok


@dataclass(frozen=True, slots=True)
class PublicityRebuild:
    facts: int
    rankings: int
    rebuilt: dict[str, str]  # table -> content hash
    live: dict[str, str]
    ledger: LedgerComparison
    swapped: bool
    appended: int  # facts appended to the live ledger by the swap

    @property
    def identical(self) -> bool:
        return self.rebuilt == self.live


class LiveAhead(RuntimeError):
    """The live projection applied facts the replay did not see: replaying again (or waiting) is needed first."""


async def rebuild_publicity(
    settings: Settings,
    *,
    cases_topic: str = PUBLIC_CASES.name,
    rankings_topic: str = RANKINGS.name,
    schema: str = SCHEMA,
    idle_s: float = 3.0,
    expect: tuple[int, int] | None = None,
    swap: bool = False,
    progress: Callable[[int], None] | None = None,
) -> PublicityRebuild:
    """Replay both public topics into a fresh shadow schema through the consumer's own code; compare; maybe swap.

    The live ledger is never rewritten: the rebuild checks that it holds every fact of the log exactly once with the
    same bytes and that its chain verifies; ``swap`` replaces the projection tables and appends (never rewrites)
    the facts the live ledger lacks, in the order the replay recorded them.
    """
    shadow = f"{schema}_rebuild"
    dsn = settings.database_url
    await fresh_schema(dsn, shadow, MIGRATIONS)
    pool = await create_pool(dsn, shadow, max_size=3)
    counts = []
    try:
        for topic, inbox, wanted in (
            (cases_topic, public_facts_inbox(pool, f"{SERVICE}-rebuild"), expect[0] if expect else None),
            (rankings_topic, rankings_inbox(pool, f"{SERVICE}-rebuild"), expect[1] if expect else None),
        ):
            batches = read_log(settings.kafka_bootstrap_servers, topic, idle_s=idle_s, expect=wanted)
            counts.append(await apply_in_order(inbox, counted(batches, progress)))
    finally:
        await pool.close()
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "rectify-cli"})
    try:
        rebuilt = await table_hashes(conn, shadow)
        await conn.execute(f"SET search_path TO {shadow}")
        replayed = await ledger_store.facts_by_event(conn)
        await conn.execute(f"SET search_path TO {schema}")
        appended = 0
        if swap:
            async with conn.transaction():
                appended = await _swap(conn, shadow, schema, replayed)
        comparison = await _compare(conn, replayed)
        live = await table_hashes(conn, schema)
    finally:
        await conn.close()
    return PublicityRebuild(counts[0], counts[1], rebuilt, live, comparison, swap, appended)


async def _compare(conn: asyncpg.Connection, replayed: dict[str, tuple[str, str]]) -> LedgerComparison:
    live = await ledger_store.facts_by_event(conn)
    entries = [e.to_json() for e in await ledger_store.entries(conn, 0, 2**62)]
    return LedgerComparison(
        in_log=len(replayed),
        missing=[i for i in replayed if i not in live],
        unknown=[i for i in live if i not in replayed],
        altered=[i for i, (_, fact) in replayed.items() if i in live and live[i][1] != fact],
        chain=verify(entries),
    )


async def _swap(conn: asyncpg.Connection, shadow: str, schema: str, replayed: dict[str, tuple[str, str]]) -> int:
    """Replace the projection tables with the shadow's and append what the live ledger lacks; in one transaction."""
    for table in (*PROJECTION_TABLES, "ledger_head", "watermark"):
        await conn.execute(f"LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE")  # the worker's next batch waits
    applied = {str(r[0]) for r in await conn.fetch(f"SELECT event_id FROM {schema}.ledger")}
    ahead = applied - set(replayed)
    if ahead:
        raise LiveAhead(
            f"the live projection applied {len(ahead)} facts the replay did not read (e.g. {min(ahead)}); "
            "replay again once the topics hold them"
        )
    for table in PROJECTION_TABLES:
        await conn.execute(f"TRUNCATE {schema}.{table}")
        await conn.execute(f"INSERT INTO {schema}.{table} SELECT * FROM {shadow}.{table}")
    missing = [(i, kind, fact) for i, (kind, fact) in replayed.items() if i not in applied]
    appended = await ledger_store.append_facts(conn, missing)
    await bump_watermark(conn)
    return len(appended)
