"""The public ledger on PostgreSQL: appended in the projection's transaction, read by sequence and by day."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from typing import Any

import asyncpg

from services.common.contracts import EventEnvelope
from services.publicity.ledger import Entry, Head, chain, fact_text, kind_of
from services.publicity.periods import CHINA


async def head(conn: asyncpg.Connection | asyncpg.Pool, *, lock: bool = False) -> Head:
    row = await conn.fetchrow(f"SELECT seq, hash, appended_at FROM ledger_head{' FOR UPDATE' if lock else ''}")
    assert row is not None, "migration 004 creates the head row"
    return Head(row["seq"], row["hash"], row["appended_at"])


async def append(conn: asyncpg.Connection, envelopes: Sequence[EventEnvelope]) -> list[Entry]:
    """Append the facts of ``envelopes`` not yet in the ledger, in order, in the caller's transaction.

    A fact already recorded (by event id) is skipped, so a redelivery or a replay appends nothing.
    """
    return await append_facts(conn, [(str(env.event_id), kind_of(env), fact_text(env)) for env in envelopes])


async def append_facts(conn: asyncpg.Connection, items: Sequence[tuple[str, str, str]]) -> list[Entry]:
    """``append`` for facts already in their ledger form: (event id, kind, canonical fact text)."""
    facts: dict[str, tuple[str, str, str]] = {}
    for item in items:
        facts.setdefault(item[0], item)
    if not facts:
        return []
    known = {
        str(r[0]) for r in await conn.fetch("SELECT event_id FROM ledger WHERE event_id = ANY($1::uuid[])", list(facts))
    }
    fresh = [fact for event_id, fact in facts.items() if event_id not in known]
    if not fresh:
        return []
    top = await head(conn, lock=True)
    now: datetime = await conn.fetchval("SELECT clock_timestamp()")
    entries = chain(top, fresh, now)
    await conn.execute(
        "INSERT INTO ledger (seq, appended_at, event_id, kind, prev_hash, fact, hash) SELECT * FROM unnest("
        "$1::bigint[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[])",
        [e.seq for e in entries],
        [e.appended_at for e in entries],
        [e.event_id for e in entries],
        [e.kind for e in entries],
        [e.prev_hash for e in entries],
        [e.fact for e in entries],
        [e.hash for e in entries],
    )
    last = entries[-1]
    await conn.execute(
        "UPDATE ledger_head SET seq = $1, hash = $2, appended_at = $3", last.seq, last.hash, last.appended_at
    )
    day = datetime.fromisoformat(last.appended_at).astimezone(CHINA).date()
    await conn.execute(
        "INSERT INTO ledger_days (day, seq, hash) VALUES ($1, $2, $3) "
        "ON CONFLICT (day) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash WHERE ledger_days.seq < EXCLUDED.seq",
        day,
        last.seq,
        last.hash,
    )
    return entries


def _entry(row: asyncpg.Record) -> Entry:
    return Entry(
        row["seq"], row["appended_at"], str(row["event_id"]), row["kind"], row["prev_hash"], row["fact"], row["hash"]
    )


_COLUMNS = "seq, appended_at, event_id, kind, prev_hash, fact, hash"


async def entries(pool: asyncpg.Pool | asyncpg.Connection, after: int, limit: int) -> list[Entry]:
    """Up to ``limit`` entries with a sequence number above ``after``, in order."""
    rows = await pool.fetch(f"SELECT {_COLUMNS} FROM ledger WHERE seq > $1 ORDER BY seq LIMIT $2", after, limit)
    return [_entry(r) for r in rows]


async def every_entry(pool: asyncpg.Pool, chunk: int = 2000) -> AsyncIterator[list[Entry]]:
    """The whole chain in order, a chunk at a time, through one server-side cursor (one consistent snapshot)."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        out: list[Entry] = []
        async for row in conn.cursor(f"SELECT {_COLUMNS} FROM ledger ORDER BY seq", prefetch=chunk):
            out.append(_entry(row))
            if len(out) >= chunk:
                yield out
                out = []
        if out:
            yield out


async def daily_heads(pool: asyncpg.Pool, limit: int = 60) -> list[dict[str, Any]]:
    """The head at the end of each day with entries (China time), newest day first."""
    rows = await pool.fetch("SELECT day, seq, hash FROM ledger_days ORDER BY day DESC LIMIT $1", limit)
    return [{"day": r["day"], "seq": r["seq"], "hash": r["hash"]} for r in rows]


async def head_on(pool: asyncpg.Pool, day: date) -> dict[str, Any] | None:
    """The head as it stood at the end of ``day`` (the newest day with entries on or before it)."""
    row = await pool.fetchrow("SELECT day, seq, hash FROM ledger_days WHERE day <= $1 ORDER BY day DESC LIMIT 1", day)
    return None if row is None else {"day": row["day"], "seq": row["seq"], "hash": row["hash"]}


async def facts_by_event(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, tuple[str, str]]:
    """event id -> (kind, fact text), for every entry, in ledger order (for rebuild's comparison)."""
    return {str(r[0]): (r[1], r[2]) for r in await conn.fetch("SELECT event_id, kind, fact FROM ledger ORDER BY seq")}
