"""Rebuild intake's projection of rectification's outcomes from the outcomes topic.

What intake projects from ``rectify.submission.outcomes.v1`` is each submission's decision (``status``, ``code``,
``reason``, ``case_version``, ``decided_at``) and each case's access (``status``, ``responsible_unit_id``,
``case_version``). The rest of those rows is intake's own record (who submitted what, who filed the case), so
the rebuild copies it into the shadow schema ``intake_rebuild`` as it was before any outcome (``received``,
version 0), replays the topic from the beginning through the worker's own inbox and handler
(``apply_outcomes``), and compares the projected columns with the live ones, row by row hashed.

A swap writes the rebuilt decisions and access over the live rows in one transaction, only forward: a live
submission the log has not decided yet keeps its decision, and a case's access never goes back to an older
version. So it is safe while the intake worker runs (which also moves rows only forward).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from services.common.batch_consumer import apply_in_order, counted
from services.common.contracts import decode_event
from services.common.db import create_pool, fresh_schema
from services.common.inbox import Inbox
from services.common.topics import OUTCOMES
from services.intake.entrypoints.outcomes import apply_outcomes
from services.scoring.adapters.log import read_log

SCHEMA = "intake"
MIGRATIONS = Path(__file__).parent / "migrations"
# each projected table: its key and the columns the outcomes write
PROJECTED: dict[str, tuple[str, str]] = {
    "submissions": ("submission_id", "status, code, reason, case_version, decided_at"),
    "case_access": ("case_id", "status, responsible_unit_id, case_version"),
}


@dataclass(frozen=True, slots=True)
class RebuildReport:
    records: int
    rebuilt: dict[str, str]  # table -> hash of the projected columns
    live: dict[str, str]
    swapped: bool

    @property
    def identical(self) -> bool:
        return self.rebuilt == self.live


async def projected_hashes(conn: asyncpg.Connection, schema: str, shadow: str) -> dict[str, str]:
    """sha256 of the projected columns of ``schema``'s rows that the shadow holds too, in key order."""
    out = {}
    for table, (key, columns) in PROJECTED.items():
        rows = await conn.fetch(
            f"SELECT row({key}, {columns})::text AS row FROM {schema}.{table} "
            f"WHERE {key} IN (SELECT {key} FROM {shadow}.{table}) ORDER BY {key}"
        )
        digest = hashlib.sha256()
        for row in rows:
            digest.update(row["row"].encode() + b"\n")
        out[table] = digest.hexdigest()
    return out


async def rebuild_intake(
    dsn: str,
    bootstrap: str,
    *,
    topic: str = OUTCOMES.name,
    schema: str = SCHEMA,
    idle_s: float = 3.0,
    swap: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RebuildReport:
    shadow = f"{schema}_rebuild"
    await fresh_schema(dsn, shadow, MIGRATIONS)
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "rectify-rebuild"})
    try:
        await _copy_own_record(conn, schema, shadow)
        pool = await create_pool(dsn, shadow, max_size=2)
        try:
            inbox: Inbox = Inbox(  # type: ignore[type-arg]
                pool,
                service=f"{schema}-rebuild",
                decode=decode_event,
                message_id=lambda e: e.event_id,
                handle=apply_outcomes,
            )
            count = await apply_in_order(inbox, counted(read_log(bootstrap, topic, idle_s=idle_s), progress))
        finally:
            await pool.close()
        rebuilt = await projected_hashes(conn, shadow, shadow)
        if swap:
            await _swap(conn, schema, shadow)
        live = await projected_hashes(conn, schema, shadow)
    finally:
        await conn.close()
    return RebuildReport(count, rebuilt, live, swap)


async def _copy_own_record(conn: asyncpg.Connection, schema: str, shadow: str) -> None:
    """Agencies, submissions and case access as intake stored them, before any outcome: one snapshot."""
    async with conn.transaction(isolation="repeatable_read"):
        await conn.execute(f"INSERT INTO {shadow}.agencies SELECT * FROM {schema}.agencies")
        await conn.execute(
            f"INSERT INTO {shadow}.submissions (submission_id, agency_id, idempotency_key, request_hash, command_type,"
            " case_id, status, received_at, complainant_ref) "
            "SELECT submission_id, agency_id, idempotency_key, request_hash, command_type, case_id, 'received',"
            f" received_at, complainant_ref FROM {schema}.submissions"
        )
        await conn.execute(
            f"INSERT INTO {shadow}.case_access (case_id, filed_by, status, case_version, category, filed_at) "
            f"SELECT case_id, filed_by, 'received', 0, category, filed_at FROM {schema}.case_access"
        )


async def _swap(conn: asyncpg.Connection, schema: str, shadow: str) -> None:
    async with conn.transaction():
        await conn.execute(
            f"UPDATE {schema}.submissions s SET status = r.status, code = r.code, reason = r.reason,"
            " case_version = r.case_version, decided_at = r.decided_at "
            f"FROM {shadow}.submissions r WHERE s.submission_id = r.submission_id AND r.status <> 'received'"
            " AND (s.status, s.code, s.reason, s.case_version, s.decided_at)"
            " IS DISTINCT FROM (r.status, r.code, r.reason, r.case_version, r.decided_at)"
        )
        await conn.execute(
            f"UPDATE {schema}.case_access a SET status = r.status, responsible_unit_id = r.responsible_unit_id,"
            " case_version = r.case_version, updated_at = now() "
            f"FROM {shadow}.case_access r WHERE a.case_id = r.case_id AND r.case_version >= a.case_version"
            " AND (a.status, a.responsible_unit_id, a.case_version)"
            " IS DISTINCT FROM (r.status, r.responsible_unit_id, r.case_version)"
        )
