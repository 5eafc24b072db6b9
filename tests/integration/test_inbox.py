"""The idempotent batch consumer on the real PostgreSQL: duplicates, poison and handler failures."""

import uuid
from collections.abc import AsyncIterator

import asyncpg
import orjson
import pytest

from services.common.contracts import EventEnvelope, decode_event, encode_event
from services.common.inbox import Decoded, Inbox, Record
from services.common.topics import DEAD_LETTERS
from services.publicity.entrypoints.public_facts import apply_public_batch, decode_public_fact
from services.rectification.service import decide_batch
from tests.integration.conftest import migrated_pool
from tests.unit.test_rectification_service import CATS, NOW, UNITS, file_cmd

pytestmark = pytest.mark.integration
TOPIC = "rectify.public.cases.v1"


@pytest.fixture
async def pub_pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await migrated_pool(dsn, "publicity")
    yield pool
    await pool.close()


def public_facts(n: int) -> list[bytes]:
    _, outgoing, _ = decide_batch({}, [file_cmd(f"RC-{i}") for i in range(n)], now=NOW, units=UNITS, categories=CATS)
    return [m.value for m in outgoing if m.topic == TOPIC]


def records(values: list[bytes], start: int = 0) -> list[Record]:
    return [Record(TOPIC, 0, start + i, b"k", v) for i, v in enumerate(values)]


def inbox(pool: asyncpg.Pool, handle=apply_public_batch) -> Inbox[EventEnvelope]:  # type: ignore[no-untyped-def]
    return Inbox(pool, service="publicity", decode=decode_public_fact, message_id=lambda e: e.event_id, handle=handle)


async def snapshot(pool: asyncpg.Pool) -> tuple:  # type: ignore[type-arg]
    return (
        [tuple(r) for r in await pool.fetch("SELECT case_id, status, version FROM cases ORDER BY case_id")],
        await pool.fetchval("SELECT count(*) FROM timeline"),
        await pool.fetchval("SELECT count(*) FROM processed_messages"),
        await pool.fetchval("SELECT count(*) FROM dead_letters"),
        await pool.fetchval("SELECT count(*) FROM outbox"),
    )


async def test_redelivered_batches_change_nothing(pub_pool: asyncpg.Pool) -> None:
    values = public_facts(5)
    box = inbox(pub_pool)
    await box.process(records(values + values[:2]))  # duplicates inside one batch
    first = await snapshot(pub_pool)
    assert first[0] == [(f"RC-{i}", "filed", 1) for i in range(5)] and first[1:3] == (5, 5)
    await box.process(records(values))  # the whole batch again, as after a crash before the offset commit
    assert await snapshot(pub_pool) == first


async def test_an_optimistic_claim_skips_redeliveries_as_well(pub_pool: asyncpg.Pool) -> None:
    values = public_facts(5)
    handed: list[int] = []

    async def counted(conn: asyncpg.Connection, batch: list[Decoded[EventEnvelope]]):  # type: ignore[no-untyped-def]
        handed.append(len(batch))
        return await apply_public_batch(conn, batch)

    box = inbox(pub_pool, handle=counted)
    box.optimistic_claim = True
    await box.process(records(values[:3]))  # all new: claimed without reading the ids back
    await box.process(records(values + values[:1]))  # three again, one of them twice, and two new
    first = await snapshot(pub_pool)
    assert first[0] == [(f"RC-{i}", "filed", 1) for i in range(5)] and first[1:3] == (5, 5)
    await box.process(records(values))
    assert await snapshot(pub_pool) == first
    assert handed == [3, 2]  # only the new ones ever reached the handler


POISON = {
    "bad_json": b"{nope",
    "unknown_type": orjson.dumps({"event_type": "Nope", "schema_version": 1, "payload": {}}),
    "unknown_version": None,  # filled below
    "oversized": b"x" * (1024 * 1024 + 1),
    "not_public": None,  # a case event with private text sent to the public topic
}


async def test_without_a_claim_every_message_reaches_the_handler_and_poison_is_still_dead_lettered(
    pub_pool: asyncpg.Pool,
) -> None:
    values = public_facts(3)
    handed: list[int] = []

    async def counted(conn: asyncpg.Connection, batch: list[Decoded[EventEnvelope]]):  # type: ignore[no-untyped-def]
        handed.append(len(batch))
        return await apply_public_batch(conn, batch)  # deduplicates by the case's version by itself

    box = inbox(pub_pool, handle=counted)
    box.claim = False
    await box.process(records([*values, b"{not json"]))
    await box.process(records(values))  # redelivered: handed over again, the handler's own check skips it
    cases, timeline, claimed, dead, _ = await snapshot(pub_pool)
    assert cases == [(f"RC-{i}", "filed", 1) for i in range(3)] and timeline == 3
    assert (claimed, dead, handed) == (0, 1, [3, 3])


async def test_poison_is_dead_lettered_counted_and_the_rest_applied(pub_pool: asyncpg.Pool) -> None:
    good = public_facts(3)
    wrong_version = orjson.loads(good[0])
    wrong_version["schema_version"] = 7
    _, outgoing, _ = decide_batch({}, [file_cmd("RC-private")], now=NOW, units=UNITS, categories=CATS)
    private = next(m.value for m in outgoing if m.topic == "rectify.case.events.v1")
    poison = dict(POISON, unknown_version=orjson.dumps(wrong_version), not_public=private)
    batch = records([good[0], *poison.values(), good[1], good[2]])
    await inbox(pub_pool).process(batch)
    cases, _, _, dead, outbox = await snapshot(pub_pool)
    assert [c[0] for c in cases] == ["RC-0", "RC-1", "RC-2"]
    codes = [r["code"] for r in await pub_pool.fetch("SELECT code FROM dead_letters ORDER BY kafka_offset")]
    assert codes == list(poison)
    assert outbox == dead == len(poison)
    headers = [orjson.loads(r["headers"]) for r in await pub_pool.fetch("SELECT headers FROM outbox ORDER BY id")]
    assert all(h["x-source-topic"] == TOPIC for h in headers)
    assert {r["topic"] for r in await pub_pool.fetch("SELECT topic FROM outbox")} == {DEAD_LETTERS.name}
    await inbox(pub_pool).process(batch)  # redelivered: no second dead letter
    assert (await snapshot(pub_pool))[3:] == (dead, outbox)


async def test_a_message_the_handler_cannot_apply_is_isolated(pub_pool: asyncpg.Pool) -> None:
    values = public_facts(4)
    bad_id = decode_event(values[2]).event_id

    async def fragile(conn: asyncpg.Connection, batch: list[Decoded[EventEnvelope]]) -> None:
        if any(d.message.event_id == bad_id for d in batch):
            raise RuntimeError("cannot apply this one")
        await apply_public_batch(conn, batch)

    await inbox(pub_pool, fragile).process(records(values))
    cases, _, processed, dead, _ = await snapshot(pub_pool)
    assert [c[0] for c in cases] == ["RC-0", "RC-1", "RC-3"]
    assert processed == 3 and dead == 1
    assert await pub_pool.fetchval("SELECT code FROM dead_letters") == "handler_error"


async def test_an_older_fact_never_overwrites_a_newer_one(pub_pool: asyncpg.Pool) -> None:
    v1 = decode_event(public_facts(1)[0])
    v2 = v1.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "stream_version": 2,
            "payload": v1.payload.model_copy(update={"redo_count": 1}),
        }
    )
    await inbox(pub_pool).process(records([encode_event(v2)]))
    await inbox(pub_pool).process(records([encode_event(v1)], start=1))
    assert await pub_pool.fetchval("SELECT version FROM cases") == 2
    assert await pub_pool.fetchval("SELECT redo_count FROM cases") == 1


@pytest.mark.parametrize(
    "outage",
    [
        asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.CrashShutdownError,
        asyncpg.exceptions.ConnectionFailureError,
        asyncpg.CannotConnectNowError,
    ],
)
async def test_a_database_going_away_is_retried_never_dead_lettered(pub_pool: asyncpg.Pool, outage: type) -> None:
    """A shutdown or a broken connection in the middle of a batch is the database's trouble, not the message's:
    the batch fails as a whole (the consumer retries it) and nothing is dead-lettered or half applied."""
    values = public_facts(3)

    async def away(conn: asyncpg.Connection, batch: list[Decoded[EventEnvelope]]) -> None:
        await apply_public_batch(conn, batch)
        raise outage("terminating connection due to administrator command")

    with pytest.raises(outage):
        await inbox(pub_pool, away).process(records(values))
    assert await snapshot(pub_pool) == ([], 0, 0, 0, 0)
    await inbox(pub_pool).process(records(values))  # the retry, once the database is back
    cases, _, processed, dead, _ = await snapshot(pub_pool)
    assert (len(cases), processed, dead) == (3, 3, 0)
