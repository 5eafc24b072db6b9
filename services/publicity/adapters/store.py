"""The publicity projection on PostgreSQL: batched idempotent writes and the page queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.common.contracts import EventEnvelope, PublicCaseChanged


async def apply_public_facts(conn: asyncpg.Connection, envelopes: list[EventEnvelope]) -> None:
    """Keep the newest version of each case, and every timeline entry. Replays and reorders change nothing."""
    latest: dict[str, tuple[int, PublicCaseChanged, datetime]] = {}
    steps: list[tuple[str, int, str, datetime]] = []
    for env in envelopes:
        p = env.payload
        if not isinstance(p, PublicCaseChanged):
            continue
        steps.append((p.case_id, env.stream_version, p.entry.step, p.entry.at))
        if p.case_id not in latest or latest[p.case_id][0] < env.stream_version:
            latest[p.case_id] = (env.stream_version, p, env.recorded_at)
    if latest:
        rows = [
            (
                p.case_id,
                p.status.value,
                p.category,
                p.unit_id,
                p.responsible_unit_id,
                p.filed_at,
                p.deadline,
                p.redo_count,
                p.problem_summary,
                p.result_summary,
                p.exposed,
                version,
                at,
            )
            for version, p, at in latest.values()
        ]
        await conn.execute(
            "INSERT INTO cases (case_id, status, category, unit_id, responsible_unit_id, filed_at, deadline,"
            " redo_count, problem_summary, result_summary, exposed, version, updated_at) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],"
            " $7::timestamptz[], $8::int[], $9::text[], $10::text[], $11::bool[], $12::int[], $13::timestamptz[]) "
            "ON CONFLICT (case_id) DO UPDATE SET status = EXCLUDED.status, category = EXCLUDED.category,"
            " unit_id = EXCLUDED.unit_id, responsible_unit_id = EXCLUDED.responsible_unit_id,"
            " deadline = EXCLUDED.deadline, redo_count = EXCLUDED.redo_count,"
            " problem_summary = EXCLUDED.problem_summary, result_summary = EXCLUDED.result_summary,"
            " exposed = EXCLUDED.exposed, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at "
            "WHERE cases.version < EXCLUDED.version",
            *[list(col) for col in zip(*rows, strict=True)],
        )
    if steps:
        await conn.execute(
            "INSERT INTO timeline (case_id, version, step, at) "
            "SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::timestamptz[]) ON CONFLICT DO NOTHING",
            *[list(col) for col in zip(*steps, strict=True)],
        )


@dataclass(frozen=True, slots=True)
class CaseFilter:
    unit_id: str | None = None
    category: str | None = None
    status: str | None = None
    limit: int = 50
    offset: int = 0


_CASE_COLUMNS = (
    "case_id, status, category, unit_id, responsible_unit_id, filed_at, deadline, redo_count, problem_summary,"
    " result_summary, exposed, version, updated_at"
)


async def list_cases(pool: asyncpg.Pool, f: CaseFilter) -> tuple[list[dict[str, Any]], int]:
    where, args = [], []
    for column, value in (("unit_id", f.unit_id), ("category", f.category), ("status", f.status)):
        if value:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    total = await pool.fetchval(f"SELECT count(*) FROM cases {clause}", *args)
    rows = await pool.fetch(
        f"SELECT {_CASE_COLUMNS} FROM cases {clause} ORDER BY filed_at DESC, case_id "
        f"LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
        *args,
        f.limit,
        f.offset,
    )
    return [dict(r) for r in rows], int(total)


async def get_case(pool: asyncpg.Pool, case_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(f"SELECT {_CASE_COLUMNS} FROM cases WHERE case_id = $1", case_id)
    if row is None:
        return None
    steps = await pool.fetch("SELECT version, step, at FROM timeline WHERE case_id = $1 ORDER BY version", case_id)
    return dict(row) | {"timeline": [dict(s) for s in steps]}
