"""Rectification's own projections, written in the transaction of the append that changed them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import asyncpg

from services.rectification.domain.calendar import WorkCalendar
from services.rectification.domain.case import CaseState, holdups, pending_deadlines


async def refresh_projections(
    conn: asyncpg.Connection,
    states: dict[str, CaseState | None],
    touched: Iterable[str],
    calendar: WorkCalendar | None,
) -> None:
    """Replace the open deadlines and the holds of every case the batch changed: two statements each way."""
    ids = sorted(set(touched))
    if not ids:
        return
    deadlines: list[tuple[str, str, datetime]] = []
    holds: list[tuple[str, int, str, str, datetime, datetime | None, float | None]] = []
    for case_id in ids:
        state = states.get(case_id)
        if state is None:
            continue
        deadlines += [(case_id, kind.value, due) for kind, due in pending_deadlines(state)]
        for seq, h in enumerate(holdups(state, calendar)):
            days = h.working_days if h.ended_at is not None else None
            holds.append((case_id, seq, h.step, h.holder, h.started_at, h.ended_at, days))
    await conn.execute("DELETE FROM open_deadlines WHERE case_id = ANY($1::text[])", ids)
    await conn.execute("DELETE FROM case_holds WHERE case_id = ANY($1::text[])", ids)
    if deadlines:
        await conn.execute(
            "INSERT INTO open_deadlines (case_id, which, due_at) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])",
            *[list(col) for col in zip(*deadlines, strict=True)],
        )
    if holds:
        await conn.execute(
            "INSERT INTO case_holds (case_id, seq, step, holder, started_at, ended_at, working_days) "
            "SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::timestamptz[],"
            " $6::timestamptz[], $7::float8[])",
            *[list(col) for col in zip(*holds, strict=True)],
        )


async def due_deadlines(conn: asyncpg.Connection, now: datetime, limit: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT case_id, which, due_at FROM open_deadlines WHERE due_at < $1 ORDER BY due_at, case_id LIMIT $2",
        now,
        limit,
    )
    return rows
