"""Scoring's projection tables on PostgreSQL; every write is batched and idempotent."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import asyncpg

from services.scoring.domain import month_of


async def record_filed(conn: asyncpg.Connection, facts: list[tuple[str, str, str, datetime, int]]) -> None:
    """(case id, unit, category, filed at, version). Only newly seen cases count."""
    if not facts:
        return
    rows = await conn.fetch(
        "INSERT INTO case_facts (case_id, unit_id, category, filed_at, version) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::int[]) "
        "ON CONFLICT (case_id) DO NOTHING RETURNING unit_id, filed_at",
        *[list(col) for col in zip(*facts, strict=True)],
    )
    counts = Counter((r["unit_id"], month_of(r["filed_at"])) for r in rows)
    if not counts:
        return
    keys = sorted(counts)
    await conn.execute(
        "INSERT INTO unit_month (unit_id, month, filed) SELECT * FROM unnest($1::text[], $2::text[], $3::int[]) "
        "ON CONFLICT (unit_id, month) DO UPDATE SET filed = unit_month.filed + EXCLUDED.filed",
        [k[0] for k in keys],
        [k[1] for k in keys],
        [counts[k] for k in keys],
    )
