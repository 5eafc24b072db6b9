"""The event store on the real PostgreSQL, including concurrent appends to one case."""

import asyncio

import asyncpg
import pytest

from services.common.outbox import enqueue
from services.rectification.adapters.event_store import ConcurrencyConflict, PostgresEventStore
from services.rectification.service import apply_commands
from tests.unit.test_rectification_service import CATS, NOW, UNITS, file_cmd

pytestmark = pytest.mark.integration


async def test_append_and_load_round_trip(rect_pool: asyncpg.Pool) -> None:
    async with rect_pool.acquire() as conn, conn.transaction():
        store = PostgresEventStore(conn)
        decisions = await apply_commands(store, [file_cmd("RC-A")], clock=lambda: NOW, units=UNITS, categories=CATS)
        await enqueue(conn, decisions.outgoing)
    async with rect_pool.acquire() as conn:
        streams = await PostgresEventStore(conn).load(["RC-A", "RC-none"])
        assert [e.event_type for e in streams["RC-A"]] == ["CaseFiled"]
        assert "RC-none" not in streams
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 3


async def test_a_second_append_at_the_same_version_conflicts(rect_pool: asyncpg.Pool) -> None:
    async with rect_pool.acquire() as conn:
        store = PostgresEventStore(conn)
        await apply_commands(store, [file_cmd("RC-B")], clock=lambda: NOW, units=UNITS, categories=CATS)
        env = (await store.load(["RC-B"]))["RC-B"][0]
        clone = env.model_copy(update={"event_id": __import__("uuid").uuid4()})
        with pytest.raises(ConcurrencyConflict):
            await store.append([clone])
        assert len((await store.load(["RC-B"]))["RC-B"]) == 1


async def test_concurrent_commands_on_one_case_one_wins(rect_pool: asyncpg.Pool) -> None:
    """Many writers file the same case at once: exactly one CaseFiled, every other is refused, nobody crashes."""
    cmds = [file_cmd("RC-C") for _ in range(8)]
    barrier = asyncio.Barrier(len(cmds))

    async def writer(cmd):  # type: ignore[no-untyped-def]
        async with rect_pool.acquire() as conn, conn.transaction():
            store = PostgresEventStore(conn)
            real_load = store.load
            first = True

            async def load_then_wait(ids, after=None):  # type: ignore[no-untyped-def]
                nonlocal first
                result = await real_load(ids, after)
                if first:  # every writer has loaded the empty stream before anyone appends
                    first = False
                    await asyncio.wait_for(barrier.wait(), 10)
                return result

            store.load = load_then_wait  # type: ignore[method-assign]
            return await apply_commands(store, [cmd], clock=lambda: NOW, units=UNITS, categories=CATS)

    results = await asyncio.gather(*(writer(c) for c in cmds))
    refusals = [r.outcomes[0][1] for r in results]
    assert sum(1 for r in refusals if r is None) == 1
    assert {r.code for r in refusals if r is not None} == {"already_filed"}
    async with rect_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events WHERE stream_id = 'RC-C'") == 1
