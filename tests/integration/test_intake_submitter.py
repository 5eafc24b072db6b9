"""Group commit on the real PostgreSQL: submissions share commits; idempotency holds across batches and processes."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest

from services.common.contracts import FileComplaint, Role
from services.common.outbox import OutgoingMessage
from services.intake.adapters.repository import Agency, NewSubmission, Submission, provision_agency, store_submissions
from services.intake.adapters.vault import Contact, Vault
from services.intake.service import CASE_NUMBER_BLOCK, IdempotencyConflict, Submit, Submitter
from tests.integration.conftest import migrated_pool

pytestmark = pytest.mark.integration
HOTLINE = Agency("hotline", "12345", Role.CHANNEL, "hotline_12345", None)
VAULT = Vault(os.urandom(32))
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await migrated_pool(dsn, "intake")
    async with p.acquire() as conn:
        await provision_agency(conn, "hotline", "12345", Role.CHANNEL, channel="hotline_12345")
    yield p
    await p.close()


def filing(key: str | None, digest: bytes = b"d", n: int = 0) -> Submit:
    ref = f"cp-{n:020x}"
    return Submit(
        who=HOTLINE,
        idempotency_key=key,
        digest=digest,
        command=lambda _: FileComplaint(
            channel="hotline_12345", category="inaction", unit_id="meiwan", description=f"第{n}件", complainant_ref=ref
        ),
        contact=Contact(f"投诉人{n}", None, None),
        complainant_ref=ref,
    )


async def counts(pool: asyncpg.Pool) -> tuple[int, int, int, int]:
    return (
        await pool.fetchval("SELECT count(*) FROM submissions"),
        await pool.fetchval("SELECT count(*) FROM complainants"),
        await pool.fetchval("SELECT count(*) FROM case_access"),
        await pool.fetchval("SELECT count(*) FROM outbox"),
    )


async def test_concurrent_submissions_share_commits(pool: asyncpg.Pool) -> None:
    submitter = Submitter(pool, VAULT, lambda: datetime.now(UTC), writers=2)
    submitter.start()
    try:
        results = await asyncio.gather(*(submitter.submit(filing(None, n=n)) for n in range(300)))
    finally:
        await submitter.stop()
    assert len({r.case_id for r in results}) == 300
    assert await counts(pool) == (300, 300, 300, 300)
    assert submitter.commits < 300 / 4, f"{submitter.commits} commits for 300 submissions"


async def test_one_key_in_one_batch_is_stored_once(pool: asyncpg.Pool) -> None:
    submitter = Submitter(pool, VAULT, lambda: datetime.now(UTC), writers=1)
    batch = [filing("k", b"same", 1), filing("k", b"same", 2), filing("k", b"other", 3), filing("k2", b"x", 4)]
    submitter.start()
    try:
        results = await asyncio.gather(*(submitter.submit(s) for s in batch), return_exceptions=True)
    finally:
        await submitter.stop()
    assert isinstance(results[0], object) and results[0].submission_id == results[1].submission_id  # type: ignore[union-attr]
    assert isinstance(results[2], IdempotencyConflict)
    assert (await counts(pool))[0] == 2
    later = Submitter(pool, VAULT, lambda: datetime.now(UTC))
    later.start()
    try:
        again = await later.submit(filing("k", b"same", 5))
        with pytest.raises(IdempotencyConflict):
            await later.submit(filing("k", b"other", 6))
    finally:
        await later.stop()
    assert again.submission_id == results[0].submission_id  # type: ignore[union-attr]
    assert await counts(pool) == (2, 2, 2, 2)


async def test_two_processes_racing_one_key_store_it_once(pool: asyncpg.Pool, dsn: str) -> None:
    other_pool = await migrated_pool(dsn, "intake")
    a = Submitter(pool, VAULT, lambda: datetime.now(UTC))
    b = Submitter(other_pool, VAULT, lambda: datetime.now(UTC))
    a.start()
    b.start()
    try:
        results = await asyncio.gather(*(s.submit(filing("race", b"same", i)) for i, s in enumerate((a, b, a, b))))
    finally:
        await a.stop()
        await b.stop()
        await other_pool.close()
    assert len({r.submission_id for r in results}) == 1
    assert await counts(pool) == (1, 1, 1, 1)


def planned(n: int, key: str | None) -> NewSubmission:
    ref = f"cp-{n:020x}"
    case_id = f"RC-20261123-{n:06d}"
    submission = Submission(
        uuid.uuid4(), "hotline", key, b"d", "FileComplaint", case_id, "received", None, None, None, NOW, None, ref
    )
    message = OutgoingMessage("rectify.commands", case_id, f'{{"n": {n}}}'.encode())
    return NewSubmission(submission, message, files_case=True, category="inaction", sealed=(b"s", b"k"))


async def test_one_statement_stores_a_batch_and_skips_every_row_of_a_known_key(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        first = [planned(1, "dup"), planned(2, None), planned(3, "other")]
        assert await store_submissions(conn, first) == {p.submission.submission_id for p in first}
        again = [planned(4, "dup"), planned(5, None)]  # 4 reuses a stored key: none of its rows may appear
        assert await store_submissions(conn, again) == {again[1].submission.submission_id}
        keys = await conn.fetchval("SELECT count(*) FROM complainant_keys")
        outbox = await conn.fetch("SELECT key, value FROM outbox ORDER BY id")
    assert await counts(pool) == (4, 4, 4, 4)
    assert keys == 4
    assert [r["key"] for r in outbox] == [f"RC-20261123-{n:06d}" for n in (1, 2, 3, 5)]  # in submission order


async def test_a_key_twice_in_one_statement_stores_the_first_and_keeps_every_other_row_in_step(
    pool: asyncpg.Pool,
) -> None:
    """The submitter sends a key once per batch, but the statement alone must hold too: the first of a key repeated
    within one batch is stored, the second leaves no row, and the rows around them (unsealed, without a case) keep
    their own bytes although the byte strings travel in arrays beside the JSON rows."""
    unsealed = planned(3, None)._replace(sealed=None, files_case=False, category=None)
    batch = [planned(1, "twice"), planned(2, None), unsealed, planned(4, "twice"), planned(5, "once")]
    batch = [b._replace(sealed=(b"s%d" % n, b"k%d" % n)) if b.sealed else b for n, b in enumerate(batch, 1)]
    async with pool.acquire() as conn:
        stored = await store_submissions(conn, batch)
        contacts = [tuple(r) for r in await conn.fetch("SELECT complainant_ref, sealed FROM complainants ORDER BY 1")]
        keys = [
            tuple(r) for r in await conn.fetch("SELECT complainant_ref, wrapped_key FROM complainant_keys ORDER BY 1")
        ]
        outbox = [r["key"] for r in await conn.fetch("SELECT key FROM outbox ORDER BY id")]
        access = [r["case_id"] for r in await conn.fetch("SELECT case_id FROM case_access ORDER BY 1")]
    kept = [batch[i] for i in (0, 1, 2, 4)]
    assert stored == {b.submission.submission_id for b in kept}
    assert contacts == [(f"cp-{n:020x}", b"s%d" % n) for n in (1, 2, 5)]
    assert keys == [(f"cp-{n:020x}", b"k%d" % n) for n in (1, 2, 5)]
    assert outbox == [f"RC-20261123-{n:06d}" for n in (1, 2, 3, 5)]
    assert access == [f"RC-20261123-{n:06d}" for n in (1, 2, 5)]


async def test_each_writer_keeps_its_connection_and_takes_a_new_one_when_it_is_closed(pool: asyncpg.Pool) -> None:
    submitter = Submitter(pool, VAULT, lambda: datetime.now(UTC), writers=1)
    submitter.start()
    try:
        await submitter.submit(filing(None, n=1))
        await submitter.submit(filing(None, n=2))
        held = await pool.fetch(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE '%unnest%' AND pid <> pg_backend_pid()"
        )
        assert len(held) == 1, held  # both commits went through the one connection the writer holds
        await pool.execute("SELECT pg_terminate_backend($1)", held[0]["pid"])
        await asyncio.sleep(0.2)  # the writer's connection learns it was closed
        await submitter.submit(filing(None, n=3))  # on a fresh connection, not an error
    finally:
        await submitter.stop()
    assert await counts(pool) == (3, 3, 3, 3)
    assert pool.get_idle_size() == pool.get_size()  # stopping gave the held connection back


async def test_case_numbers_come_from_blocks_unique_across_processes_and_restarts(pool: asyncpg.Pool) -> None:
    def numbers(results: list[Submission]) -> list[int]:
        return [int(r.case_id.rsplit("-", 1)[1]) for r in results]

    a = Submitter(pool, VAULT, lambda: datetime.now(UTC), writers=1)
    b = Submitter(pool, VAULT, lambda: datetime.now(UTC), writers=1)
    a.start()
    b.start()
    try:
        first_a = [await a.submit(filing(None, n=i)) for i in range(3)]
        first_b = [await b.submit(filing(None, n=10 + i)) for i in range(3)]
        then_a = [await a.submit(filing(None, n=20 + i)) for i in range(2)]
    finally:
        await a.stop()
        await b.stop()
    block = CASE_NUMBER_BLOCK
    assert numbers(first_a + then_a) == [1, 2, 3, 4, 5]  # one round trip to the sequence for all five
    assert numbers(first_b) == [block + 1, block + 2, block + 3]  # the other process's block
    restarted = Submitter(pool, VAULT, lambda: datetime.now(UTC), writers=1)
    restarted.start()
    try:
        after_restart = await restarted.submit(filing(None, n=30))
    finally:
        await restarted.stop()
    assert numbers([after_restart]) == [2 * block + 1]  # the rest of the old blocks is a gap, never reused


async def test_two_writers_drawing_full_batches_at_once_each_get_enough_case_numbers(pool: asyncpg.Pool) -> None:
    """Both writers find the spare numbers short and draw at the same moment; the one that resumes last must not
    come up short because the other took from the block it counted on."""
    submitter = Submitter(pool, VAULT, lambda: datetime.now(UTC), writers=2)
    async with pool.acquire() as setup:
        submitter._spare_seqs.extend(
            await setup.fetchval("SELECT array_agg(nextval('case_number')) FROM generate_series(1, 10)")
        )
    async with pool.acquire() as conn_a, pool.acquire() as conn_b:
        got_a, got_b = await asyncio.gather(
            submitter._case_seqs(conn_a, CASE_NUMBER_BLOCK), submitter._case_seqs(conn_b, CASE_NUMBER_BLOCK)
        )
    assert len(got_a) == len(got_b) == CASE_NUMBER_BLOCK
    assert len(set(got_a) | set(got_b)) == 2 * CASE_NUMBER_BLOCK


async def test_every_stored_column_is_the_value_given_byte_for_byte(pool: asyncpg.Pool) -> None:
    """The batch's text and booleans travel as JSON, its byte strings as bytea arrays: what is stored must be exactly
    what was given (bytes of every value, quotes and backslashes in keys, non-ASCII text, NULLs, microseconds)."""
    every_byte = bytes(range(256))
    received = datetime(2026, 11, 23, 17, 5, 6, 789012, tzinfo=timezone(timedelta(hours=8)))
    rows: list[tuple[str | None, bytes, str, tuple[bytes, bytes] | None, bool, str | None, str, bytes]] = [
        ('k"\\\'{}[]$1::?\\u0041', every_byte[:32], "RC-20261123-000001", (every_byte, b"\x00wrapped\xff"), True,
         "inaction", "RC-20261123-000001", '{"描述": "梅湾\\"街道\\\\"}'.encode() + every_byte),
        (None, b"\x00" * 32, "RC-20261123-000002", None, False, None, "案-2", b"{}"),
        ("plain", b"\xff" * 32, "RC-20261123-000003", (b"\x00", b"\x00"), True, "类别", "RC-20261123-000003", b"\x00"),
    ]  # fmt: skip
    items = []
    for n, (key, digest, case_id, sealed, files_case, category, outbox_key, value) in enumerate(rows):
        ref = f"cp-{n:020x}" if sealed else None
        submission = Submission(
            uuid.uuid4(), "hotline", key, digest, "FileComplaint", case_id, "received", None, None, None, received,
            None, ref,
        )  # fmt: skip
        message = OutgoingMessage("rectify.commands", outbox_key, value)
        items.append(NewSubmission(submission, message, files_case=files_case, category=category, sealed=sealed))
    async with pool.acquire() as conn:
        assert await store_submissions(conn, items) == {i.submission.submission_id for i in items}
        stored = {
            r["submission_id"]: tuple(r)
            for r in await conn.fetch(
                "SELECT submission_id, agency_id, idempotency_key, request_hash, command_type, case_id, received_at,"
                " complainant_ref FROM submissions"
            )
        }
        contacts = {tuple(r) for r in await conn.fetch("SELECT complainant_ref, sealed FROM complainants")}
        keys = {tuple(r) for r in await conn.fetch("SELECT complainant_ref, wrapped_key FROM complainant_keys")}
        access = {tuple(r) for r in await conn.fetch("SELECT case_id, filed_by, status, category FROM case_access")}
        outbox = [tuple(r) for r in await conn.fetch("SELECT topic, key, value FROM outbox ORDER BY id")]
    assert stored == {
        i.submission.submission_id: (
            i.submission.submission_id, "hotline", i.submission.idempotency_key, i.submission.request_hash,
            "FileComplaint", i.submission.case_id, received, i.submission.complainant_ref,
        )
        for i in items
    }  # fmt: skip
    assert contacts == {(i.submission.complainant_ref, i.sealed[0]) for i in items if i.sealed}
    assert keys == {(i.submission.complainant_ref, i.sealed[1]) for i in items if i.sealed}
    assert access == {(i.submission.case_id, "hotline", "received", i.category) for i in items if i.files_case}
    assert outbox == [(i.outbox.topic, i.outbox.key, i.outbox.value) for i in items]
