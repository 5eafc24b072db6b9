"""The deadline watcher: records each breach of a running deadline, and escalates late rectifications.

It scans ``open_deadlines`` for deadlines before ``clock()`` and decides ``MarkOverdue`` (and, for a
rectification deadline, ``EscalateCase``) as the SYSTEM actor through the same path as every other
command: load, decide, append, outbox, projections, in one transaction. Command ids are derived from
the case, the deadline and its due time, and claimed in ``processed_messages``, so a breach is
recorded exactly once however often the watcher runs, crashes or restarts; the decider refuses a
repeated breach as well (``already_marked``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime

import asyncpg

from services.common.contracts import (
    Actor,
    CommandEnvelope,
    DeadlineKind,
    EscalateCase,
    MarkOverdue,
    Role,
)
from services.common.metrics import COMMANDS_DECIDED, DEADLINE_BREACHES
from services.common.outbox import enqueue
from services.common.topics import OUTCOMES
from services.rectification.adapters.event_store import PostgresEventStore
from services.rectification.adapters.projections import due_deadlines, refresh_projections
from services.rectification.service import Rules, apply_commands, load_states

log = logging.getLogger(__name__)
WATCHER = Actor(agency_id="deadline-watcher", role=Role.SYSTEM)
_NS = uuid.UUID("9d5c07f4-53a4-4bd7-a4e5-0b1dd2d0a7f1")
WATCHER_LOCK = "rectification-deadline-watcher"  # one watcher at a time; `rectify seed` holds it while it replays


def breach_commands(case_id: str, which: DeadlineKind, due: datetime, now: datetime) -> list[CommandEnvelope]:
    """The commands one breach calls for, with ids that depend only on the breach."""
    key = f"{case_id}|{which.value}|{due.isoformat()}"
    payloads: list[MarkOverdue | EscalateCase] = [MarkOverdue(which=which, due=due)]
    if which is DeadlineKind.RECTIFICATION:
        payloads.append(EscalateCase(reason=f"整改超期：时限 {due.isoformat()} 已过 (rectification deadline passed)"))
    commands = []
    for payload in payloads:
        command_id = uuid.uuid5(_NS, f"{key}|{payload.message_type}")
        commands.append(
            CommandEnvelope(
                command_id=command_id,
                command_type=payload.message_type,
                schema_version=payload.schema_version,
                case_id=case_id,
                issued_at=now,
                actor=WATCHER,
                correlation_id=uuid.uuid5(_NS, key),
                payload=payload,
            )
        )
    return commands


async def watch_once(pool: asyncpg.Pool, rules: Rules, now: datetime, limit: int = 500) -> int:
    """Record the breaches due at ``now``; returns how many deadlines were recorded as breached."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))", WATCHER_LOCK):
            return 0
        rows = await due_deadlines(conn, now, limit)
        commands = [
            cmd
            for row in rows
            for cmd in breach_commands(row["case_id"], DeadlineKind(row["which"]), row["due_at"], now)
        ]
        if not commands:
            return 0
        claimed = {
            r["message_id"]
            for r in await conn.fetch(
                "INSERT INTO processed_messages (message_id, topic) SELECT unnest($1::uuid[]), 'deadline-watcher' "
                "ON CONFLICT DO NOTHING RETURNING message_id",
                [c.command_id for c in commands],
            )
        }
        fresh = [c for c in commands if c.command_id in claimed]
        store = PostgresEventStore(conn)
        decisions = await apply_commands(
            store,
            fresh,
            clock=lambda: now,
            units=rules.units,
            categories=rules.categories,
            calendar=rules.calendar,
            policy=rules.policy,
        )
        await enqueue(conn, [m for m in decisions.outgoing if m.topic != OUTCOMES.name])
        states = decisions.states | await load_states(store, {r["case_id"] for r in rows} - decisions.states.keys())
        await refresh_projections(conn, states, states.keys(), rules.calendar)
        breaches = sum(1 for e in decisions.appended if e.event_type == "DeadlinePassed")
        for cmd, refusal in decisions.outcomes:
            COMMANDS_DECIDED.labels("refused" if refusal else "applied").inc()
            if refusal is not None:
                log.info("watcher command refused", extra={"case_id": cmd.case_id, "code": refusal.code})
    DEADLINE_BREACHES.inc(breaches)
    return breaches


async def run_watcher(pool: asyncpg.Pool, rules: Rules, clock: Callable[[], datetime], interval_s: float) -> None:
    while True:
        try:
            while await watch_once(pool, rules, clock()) > 0:
                pass
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("deadline watcher failed; retrying", extra={"error": repr(exc)})
        await asyncio.sleep(interval_s)
