"""Rebuild rectification's projections (``open_deadlines``, ``case_holds``) from its event store.

The event store is rectification's own log, so the rebuild reads it in one REPEATABLE READ snapshot, folds every
case with the decider's ``evolve`` and writes the rows with the worker's own full rewrite (``refresh_projections``)
into the shadow schema ``rectification_rebuild``. The live tables are hashed in the same snapshot: the worker
writes them in the transaction of each append, so in one snapshot they must equal what the events say, exactly,
even while the worker runs.

A swap copies the rebuilt rows over the live ones in one transaction that first takes ``events`` in SHARE mode
(appends wait for it, reads do not), and only if no event was appended since the snapshot; otherwise it says so
and nothing changes (run it again).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from services.common.db import fresh_schema
from services.rectification.adapters.event_store import PostgresEventStore
from services.rectification.adapters.projections import refresh_projections
from services.rectification.domain.calendar import load_calendar
from services.rectification.service import load_states

SCHEMA = "rectification"
MIGRATIONS = Path(__file__).parent / "migrations"
CASES_PER_BATCH = 500
# each projection table and the order that makes its content canonical
TABLES: dict[str, str] = {
    "open_deadlines": "case_id, which",
    "case_holds": "case_id, seq",
}


class EventsMoved(RuntimeError):
    """Events were appended after the rebuild's snapshot; the rebuilt rows are not current: run it again."""


@dataclass(frozen=True, slots=True)
class RebuildReport:
    events: int
    cases: int
    rebuilt: dict[str, str]  # table -> content hash
    live: dict[str, str]
    swapped: bool

    @property
    def identical(self) -> bool:
        return self.rebuilt == self.live


async def table_hashes(conn: asyncpg.Connection, schema: str) -> dict[str, str]:
    """sha256 of each table's rows as text, in key order: equal content, equal hash."""
    out = {}
    for table, order in TABLES.items():
        rows = await conn.fetch(f"SELECT t::text AS row FROM {schema}.{table} t ORDER BY {order}")
        digest = hashlib.sha256()
        for row in rows:
            digest.update(row["row"].encode())
            digest.update(b"\n")
        out[table] = digest.hexdigest()
    return out


async def rebuild_rectification(
    dsn: str,
    *,
    schema: str = SCHEMA,
    swap: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RebuildReport:
    """Fold the event store into ``<schema>_rebuild`` through the worker's own code, compare, optionally swap."""
    shadow = f"{schema}_rebuild"
    await fresh_schema(dsn, shadow, MIGRATIONS)
    calendar = load_calendar()
    live = await asyncpg.connect(dsn, server_settings={"search_path": schema, "application_name": "rectify-rebuild"})
    target = await asyncpg.connect(dsn, server_settings={"search_path": shadow, "application_name": "rectify-rebuild"})
    try:
        async with live.transaction(isolation="repeatable_read", readonly=True):
            events = int(await live.fetchval("SELECT count(*) FROM events"))
            case_ids = [r["stream_id"] for r in await live.fetch("SELECT DISTINCT stream_id FROM events ORDER BY 1")]
            store = PostgresEventStore(live)
            for i in range(0, len(case_ids), CASES_PER_BATCH):
                ids = case_ids[i : i + CASES_PER_BATCH]
                states = await load_states(store, ids)
                async with target.transaction():
                    await refresh_projections(target, states, ids, calendar)
                if progress is not None:
                    progress(i + len(ids), len(case_ids))
            live_hash = await table_hashes(live, schema)
        rebuilt_hash = await table_hashes(target, shadow)
        if swap:
            await _swap(live, shadow, schema, events)
            live_hash = await table_hashes(live, schema)
    finally:
        await target.close()
        await live.close()
    return RebuildReport(events, len(case_ids), rebuilt_hash, live_hash, swap)


async def _swap(live: asyncpg.Connection, shadow: str, schema: str, events: int) -> None:
    async with live.transaction():
        await live.execute(f"LOCK TABLE {schema}.events IN SHARE MODE")
        now = int(await live.fetchval(f"SELECT count(*) FROM {schema}.events"))
        if now != events:
            raise EventsMoved(f"{now - events} event(s) appended since the rebuild's snapshot; run it again")
        for table in TABLES:
            await live.execute(f"DELETE FROM {schema}.{table}")
            await live.execute(f"INSERT INTO {schema}.{table} SELECT * FROM {shadow}.{table}")
