"""Scoring's facts and durations go to PostgreSQL as JSON rows: every instant must come back the same, to the
microsecond, whatever its offset, and the stored states byte for byte."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest

from services.common.db import create_pool, migrate
from services.scoring.adapters.store import ScoringStore, Writes, _json
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
