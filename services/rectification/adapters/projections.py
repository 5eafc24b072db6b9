"""Rectification's own projections, written in the transaction of the append that changed them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import asyncpg

from services.rectification.domain.calendar import WorkCalendar
from services.rectification.domain.case import CaseState, holdups, pending_deadlines

DeadlineRow = tuple[str, str, datetime]
HoldRow = tuple[str, int, str, str, datetime, datetime | None, float | None]

UPSERT_DEADLINES = (
    "INSERT INTO open_deadlines (case_id, which, due_at) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]) "
    "ON CONFLICT (case_id, which) DO UPDATE SET due_at = EXCLUDED.due_at"
)
UPSERT_HOLDS = (
    "INSERT INTO case_holds (case_id, seq, step, holder, started_at, ended_at, working_days) "
    "SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::timestamptz[],"
    " $6::timestamptz[], $7::float8[]) "
    "ON CONFLICT (case_id, seq) DO UPDATE SET step = EXCLUDED.step, holder = EXCLUDED.holder,"
    " started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at, working_days = EXCLUDED.working_days"
)


def _deadlines(case_id: str, state: CaseState | None) -> dict[str, DeadlineRow]:
    if state is None:
        return {}
    return {kind.value: (case_id, kind.value, due) for kind, due in pending_deadlines(state)}


def _holds(case_id: str, state: CaseState, calendar: WorkCalendar | None, since: int = 0) -> list[HoldRow]:
    """The case's spells from the ``since``-th on; a closed spell's time held in working days, an open one's none."""
    return [
        (case_id, seq, h.step, h.holder, h.started_at, h.ended_at, h.working_days if h.ended_at is not None else None)
        for seq, h in enumerate(holdups(state, calendar, since=since), start=since)
    ]


async def refresh_projections(
    conn: asyncpg.Connection,
    states: dict[str, CaseState | None],
    touched: Iterable[str],
    calendar: WorkCalendar | None,
) -> None:
    """Replace the open deadlines and the holds of the ``touched`` cases, whatever the tables held for them."""
    ids = sorted(set(touched))
    if not ids:
        return
    deadlines: list[DeadlineRow] = []
    holds: list[HoldRow] = []
    for case_id in ids:
        state = states.get(case_id)
        if state is None:
            continue
        deadlines += _deadlines(case_id, state).values()
        holds += _holds(case_id, state, calendar)
    await conn.execute("DELETE FROM open_deadlines WHERE case_id = ANY($1::text[])", ids)
    await conn.execute("DELETE FROM case_holds WHERE case_id = ANY($1::text[])", ids)
    await _upsert(conn, deadlines, holds)


async def update_projections(
    conn: asyncpg.Connection,
    before: dict[str, CaseState | None],
    after: dict[str, CaseState | None],
    calendar: WorkCalendar | None,
) -> None:
    """Write only what changed between ``before`` (what the tables show: the states the batch started from) and
    ``after``: deadlines that stopped or started running or moved, spells opened or closed. A case missing from
    ``before`` is taken as new. ``refresh_projections`` is the full rewrite, for cases whose rows are in doubt."""
    stopped: list[tuple[str, str]] = []
    deadlines: list[DeadlineRow] = []
    holds: list[HoldRow] = []
    for case_id, state in after.items():
        old = before.get(case_id)
        if state is None or state is old:
            continue
        old_deadlines, new_deadlines = _deadlines(case_id, old), _deadlines(case_id, state)
        stopped += [(case_id, which) for which in old_deadlines.keys() - new_deadlines.keys()]
        deadlines += [row for which, row in new_deadlines.items() if old_deadlines.get(which) != row]
        old_holds = old.holds if old is not None else ()
        if len(state.holds) < len(old_holds):
            raise ValueError(
                f"case {case_id}: spells are never removed, yet {len(old_holds)} became {len(state.holds)}"
            )
        first = next(
            (seq for seq, h in enumerate(state.holds) if seq >= len(old_holds) or old_holds[seq] != h),
            len(state.holds),
        )
        if first < len(state.holds):
            holds += _holds(case_id, state, calendar, since=first)
    if stopped:
        await conn.execute(
            "DELETE FROM open_deadlines d USING unnest($1::text[], $2::text[]) AS s(case_id, which) "
            "WHERE d.case_id = s.case_id AND d.which = s.which",
            *[list(col) for col in zip(*stopped, strict=True)],
        )
    await _upsert(conn, deadlines, holds)


async def _upsert(conn: asyncpg.Connection, deadlines: list[DeadlineRow], holds: list[HoldRow]) -> None:
    if deadlines:
        await conn.execute(UPSERT_DEADLINES, *[list(col) for col in zip(*deadlines, strict=True)])
    if holds:
        await conn.execute(UPSERT_HOLDS, *[list(col) for col in zip(*holds, strict=True)])


async def due_deadlines(conn: asyncpg.Connection, now: datetime, limit: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT case_id, which, due_at FROM open_deadlines WHERE due_at < $1 ORDER BY due_at, case_id LIMIT $2",
        now,
        limit,
    )
    return rows
