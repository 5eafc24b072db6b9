"""Scoring's facts and durations go to PostgreSQL as JSON rows: every instant must come back the same, to the
microsecond, whatever its offset, and the stored states byte for byte. A write refused for a stale version leaves
nothing behind."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest

from services.common.db import create_pool, migrate
from services.scoring.adapters.store import ConcurrentUpdate, ScoringStore, Writes, _columns, _json
from services.scoring.domain.figures import WIDTH
from services.scoring.wiring import MIGRATIONS

pytestmark = pytest.mark.integration

ZONES = [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-3, minutes=-30)), timezone(timedelta(hours=14))]
INSTANTS = [
    datetime(2025, 3, 31, 23, 59, 59, 999_999, tzinfo=ZONES[i % 4]) + timedelta(microseconds=7_919 * i, days=i)
    for i in range(40)
] + [datetime(2024, 2, 29, 0, 0, tzinfo=UTC), datetime(1999, 12, 31, 16, 0, 0, 1, tzinfo=ZONES[1])]


async def test_instants_and_states_come_back_exactly(dsn: str) -> None:
    await migrate(dsn, "scoring", MIGRATIONS)
    pool = await create_pool(dsn, "scoring", max_size=1)
    try:
        async with pool.acquire() as conn:
            facts = [
                (f"RC-{i}", i + 2, 0, t, "unit-é", "2025-03", f'[{i},"ü\\"x"]'.encode()) for i, t in enumerate(INSTANTS)
            ]
            facts.append(("RC-none", 3, 0, None, None, None, None))  # a case with no facts: its version alone
            durations = [
                ("2025-03", "unit-é", "response", f"RC-{i}", t, t + timedelta(hours=i)) for i, t in enumerate(INSTANTS)
            ]
            await write(conn, facts, added=durations)
            rows = await conn.fetch("SELECT case_id, version, recorded_at, unit_id, month, state FROM case_facts")
            assert {tuple(r) for r in rows} == {(c, v, t, u, m, s) for c, v, _, t, u, m, s in facts}
            stored = {tuple(r) for r in await conn.fetch("SELECT * FROM unit_durations")}
            assert stored == set(durations)

            await write(conn, [], removed=durations[:25])  # a removal matches its row exactly, instants included
            stored = {tuple(r) for r in await conn.fetch("SELECT * FROM unit_durations")}
            assert stored == set(durations[25:])
    finally:
        await pool.close()


async def test_a_stale_version_writes_nothing_and_the_transaction_goes_on(dsn: str) -> None:
    await migrate(dsn, "scoring", MIGRATIONS)
    pool = await create_pool(dsn, "scoring", max_size=1)
    t = INSTANTS[0]
    span = ("2025-03", "unit-a", "response", "RC-1", t, t + timedelta(hours=1))
    try:
        async with pool.acquire() as conn:
            store = ScoringStore(conn)
            async with conn.transaction():
                await store.write(whole([("RC-1", 1, 0)], added=[span], epoch_events=1))
                before = await contents(conn)
                # RC-2 is new and would be written; RC-1 is at version 1, not 0: the whole write is refused
                stale = whole([("RC-2", 1, 0), ("RC-1", 2, 0)], added=[(*span[:3], "RC-2", *span[4:])], removed=[span])
                with pytest.raises(ConcurrentUpdate):
                    await store.write(stale)
                assert await contents(conn) == before
                await store.write(whole([("RC-2", 1, 0), ("RC-1", 2, 1)], removed=[span], epoch_events=2))
            rows = await conn.fetch("SELECT case_id, version, previous_version FROM case_facts ORDER BY case_id")
            assert [tuple(r) for r in rows] == [("RC-1", 2, 1), ("RC-2", 1, 0)]
            assert await conn.fetchval("SELECT count(*) FROM unit_durations") == 0
            assert await conn.fetchval("SELECT complained FROM unit_month") == 3
            assert await conn.fetchval("SELECT events FROM log_epochs") == 3
    finally:
        await pool.close()


def whole(
    cases: list[tuple[str, int, int]],
    *,
    added: Sequence[tuple] = (),
    removed: Sequence[tuple] = (),
    epoch_events: int = 5,
) -> Writes:
    """A write with a part of every kind: cases (id, version, previous version), their count, spans, an epoch."""
    t = INSTANTS[0]
    facts = [(c, v, p, t, "unit-a", "2025-03") for c, v, p in cases]
    counts = [("unit-a", "2025-03", len(cases), *([0] * (WIDTH - 1)))]  # complained: one per case
    return Writes(
        cases=len(facts),
        facts=(_json(facts), [f"{c}".encode() for c, _, _ in cases]),
        counts=_columns(counts, WIDTH + 2),
        removed=_json(list(removed)) if removed else None,
        added=_json(list(added)) if added else None,
        epochs=_columns([("2025-04", epoch_events, 12345, t)], 4),
    )


async def contents(conn: asyncpg.Connection) -> dict[str, set[tuple]]:
    tables = ("case_facts", "unit_month", "unit_durations", "log_epochs")
    return {table: {tuple(r) for r in await conn.fetch(f"SELECT * FROM {table}")} for table in tables}


async def write(
    conn: asyncpg.Connection, facts: list[tuple], *, added: Sequence[tuple] = (), removed: Sequence[tuple] = ()
) -> None:
    writes = Writes(
        cases=len(facts),
        facts=(_json([f[:6] for f in facts]), [f[6] for f in facts]) if facts else None,
        counts=[],
        removed=_json(list(removed)) if removed else None,
        added=_json(list(added)) if added else None,
        epochs=[],
    )
    async with conn.transaction():
        await ScoringStore(conn).write(writes)
