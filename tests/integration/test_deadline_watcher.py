"""The deadline watcher on the real PostgreSQL, driven by an injected clock: each breach once, across restarts."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.common.contracts import Actor, AssignCase, CommandEnvelope, Role, decode_event
from services.common.inbox import Decoded, Record
from services.rectification.adapters.event_store import PostgresEventStore
from services.rectification.adapters.projections import refresh_projections
from services.rectification.entrypoints.commands import command_handler
from services.rectification.service import StateCache, load_states
from services.rectification.simulation import month_of_cases
from services.rectification.watcher import watch_once
from services.rectification.wiring import load_rules
from tests.integration.conftest import migrated_pool
from tests.unit.test_rectification_service import file_cmd

pytestmark = pytest.mark.integration
RULES = load_rules()
FILED = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # Monday 09:00 in China
OFFICE = Actor(agency_id="office", role=Role.SUPERVISOR)


def assign_cmd(case_id: str, at: datetime) -> CommandEnvelope:
    cid = uuid.uuid4()
    return CommandEnvelope(
        command_id=cid,
        command_type="AssignCase",
        schema_version=1,
        case_id=case_id,
        issued_at=at,
        actor=OFFICE,
        correlation_id=cid,
        payload=AssignCase(responsible_unit_id="meiwan", first_officer="李主任"),
    )


async def handle(pool: asyncpg.Pool, *cmds: CommandEnvelope, cache: StateCache | None = None) -> None:
    handler = command_handler(RULES, cache)
    async with pool.acquire() as conn:
        async with conn.transaction():
            done = await handler(conn, [Decoded(Record("t", 0, i, None, b""), c) for i, c in enumerate(cmds)])
        if done:
            done()


async def events_of(pool: asyncpg.Pool, case_id: str) -> list[str]:
    rows = await pool.fetch("SELECT event_type FROM events WHERE stream_id = $1 ORDER BY stream_version", case_id)
    return [r["event_type"] for r in rows]


async def test_each_breach_is_recorded_once_and_escalated(dsn: str) -> None:
    pool = await migrated_pool(dsn, "rectification")
    try:
        await handle(pool, file_cmd("RC-W", at=FILED), assign_cmd("RC-W", FILED + timedelta(hours=1)))
        deadlines = {r["which"]: r["due_at"] for r in await pool.fetch("SELECT which, due_at FROM open_deadlines")}
        assert set(deadlines) == {"acknowledgment", "rectification"}
        ack_due, rectify_due = deadlines["acknowledgment"], deadlines["rectification"]

        assert await watch_once(pool, RULES, ack_due - timedelta(seconds=1)) == 0
        assert await watch_once(pool, RULES, ack_due + timedelta(minutes=1)) == 1
        assert await watch_once(pool, RULES, ack_due + timedelta(minutes=2)) == 0
        assert await events_of(pool, "RC-W") == ["CaseFiled", "CaseAssigned", "DeadlinePassed"]
        assert {r["which"] for r in await pool.fetch("SELECT which FROM open_deadlines")} == {"rectification"}

        later = rectify_due + timedelta(hours=1)
        results = await asyncio.gather(*(watch_once(pool, RULES, later) for _ in range(4)))
        assert sum(results) == 1
        assert await events_of(pool, "RC-W") == [
            "CaseFiled",
            "CaseAssigned",
            "DeadlinePassed",
            "DeadlinePassed",
            "CaseEscalated",
        ]
        env = decode_event(await pool.fetchval("SELECT envelope::text FROM events WHERE event_type = 'CaseEscalated'"))
        assert env.payload.longest_holder == "unit:meiwan"  # type: ignore[attr-defined]
        assert env.actor.role == "system"
        assert await pool.fetchval("SELECT count(*) FROM open_deadlines") == 0
        outbox_topics = [r["topic"] for r in await pool.fetch("SELECT topic FROM outbox")]
        assert "rectify.submission.outcomes.v1" not in outbox_topics[-6:]
    finally:
        await pool.close()

    restarted = await migrated_pool(dsn, "rectification")  # a restart: a new pool, the same database
    try:
        assert await watch_once(restarted, RULES, rectify_due + timedelta(days=30)) == 0
        assert len(await events_of(restarted, "RC-W")) == 5
    finally:
        await restarted.close()


async def test_who_held_it_up_is_kept_per_step(dsn: str) -> None:
    pool = await migrated_pool(dsn, "rectification")
    try:
        await handle(pool, file_cmd("RC-H", at=FILED), assign_cmd("RC-H", FILED + timedelta(days=1)))
        holds = await pool.fetch("SELECT step, holder, started_at, ended_at, working_days FROM case_holds ORDER BY seq")
        assert [(h["step"], h["holder"]) for h in holds] == [
            ("triage", "supervisor"),
            ("acknowledgment", "unit:meiwan"),
        ]
        assert holds[0]["ended_at"] == FILED + timedelta(days=1) and holds[0]["working_days"] == pytest.approx(1.0)
        assert holds[1]["ended_at"] is None and holds[1]["working_days"] is None
    finally:
        await pool.close()


async def test_the_hot_cache_never_runs_ahead_of_the_store(dsn: str) -> None:
    """A cached state behind the store catches up; one ahead of it (a rolled-back batch) cannot leave a gap."""
    pool = await migrated_pool(dsn, "rectification")
    cache = StateCache()
    try:
        await handle(pool, file_cmd("RC-K", at=FILED), cache=cache)
        assert cache.get(["RC-K"])["RC-K"].version == 1  # type: ignore[union-attr]
        await handle(pool, assign_cmd("RC-K", FILED + timedelta(hours=1)))  # another writer, cache not told
        await handle(pool, assign_cmd("RC-K", FILED + timedelta(hours=2)), cache=cache)  # refused: already assigned
        assert cache.get(["RC-K"])["RC-K"].version == 2  # type: ignore[union-attr]
        stale = cache.get(["RC-K"])["RC-K"]
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await command_handler(RULES, cache)(
                conn, [Decoded(Record("t", 0, 0, None, b""), file_cmd("RC-K2", at=FILED))]
            )
            await tx.rollback()  # the post-commit callback is never called, so the cache is not touched
        assert cache.get(["RC-K2"]) == {}
        assert cache.get(["RC-K"])["RC-K"] is stale
        versions = [
            r["stream_version"] for r in await pool.fetch("SELECT stream_version FROM events WHERE stream_id = 'RC-K'")
        ]
        assert versions == [1, 2]
    finally:
        await pool.close()


async def test_projections_written_by_difference_match_a_full_rewrite(dsn: str) -> None:
    """The command handler writes only what each batch changed in open_deadlines and case_holds. After a month of
    cases that walks every path of the lifecycle (transfers, extensions, rejections, reopenings, merges), in
    batches with a warm cache, a stale one and none, the tables hold exactly what rewriting them from the
    streams gives."""
    assert RULES.calendar is not None and RULES.policy is not None
    simulation = month_of_cases(
        seed=11,
        calendar=RULES.calendar,
        policy=RULES.policy,
        units=sorted(RULES.units),
        categories=sorted(RULES.categories),
        cases=60,
    )
    commands = simulation.envelopes()
    pool = await migrated_pool(dsn, "rectification")
    cache = StateCache()

    async def tables(conn: asyncpg.Connection) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        deadlines = await conn.fetch("SELECT * FROM open_deadlines ORDER BY case_id, which")
        holds = await conn.fetch("SELECT * FROM case_holds ORDER BY case_id, seq")
        return [tuple(r) for r in deadlines], [tuple(r) for r in holds]

    async def check() -> tuple[int, int]:
        """Compare with a full rewrite, in a transaction rolled back so that the run goes on from the same rows."""
        async with pool.acquire() as conn:
            incremental = await tables(conn)
            tx = conn.transaction()
            await tx.start()
            ids = [r["stream_id"] for r in await conn.fetch("SELECT DISTINCT stream_id FROM events")]
            await refresh_projections(conn, await load_states(PostgresEventStore(conn), ids), ids, RULES.calendar)
            rewritten = await tables(conn)
            await tx.rollback()
        assert incremental == rewritten
        return len(rewritten[0]), len(rewritten[1])

    try:
        batches = range(0, len(commands), 40)
        for n, start in enumerate(batches):
            await handle(pool, *commands[start : start + 40], cache=None if n % 4 == 3 else cache)
            if n == len(batches) // 3:
                deadlines, holds = await check()
                assert deadlines > 10 and holds > 100  # not vacuous: deadlines running, many spells
        await check()
    finally:
        await pool.close()
