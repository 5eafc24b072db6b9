"""The public ledger on real PostgreSQL and a real broker: appended by the real consumer, verified, tampered with,
downloaded, recomputed, and rebuilt from the topics.

A simulated month (its public facts and the rankings scoring's own code publishes) goes through publicity's real
inboxes twice; the module starts a broker of its own so the rebuild can replay the real topic names.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from typer.testing import CliRunner

from bench.publicity import Month, simulate_month
from services.cli.local import stack_module
from services.cli.main import app
from services.cli.verify import entries_of_database, verify_entries
from services.common.contracts import encode_event
from services.common.db import create_pool
from services.common.kafka import ensure_topics, make_producer
from services.common.settings import Settings
from services.common.topics import PUBLIC_CASES, RANKINGS
from services.publicity import api_models as m
from services.publicity.adapters import ledger as ledger_store
from services.publicity.entrypoints.web import create_app
from services.publicity.ledger import GENESIS, canonical, entry_hash, verify
from services.publicity.wiring import LiveAhead, public_facts_inbox, rankings_inbox, rebuild_publicity
from services.rectification.simulation import PRIVATE
from tests.conftest import fresh_database
from tests.integration.conftest import migrated_pool
from tests.integration.test_publicity_site import records

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def month() -> Month:
    return asyncio.run(simulate_month(seed=1010, cases=120))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    started = stack_module().start_broker(tmp_path_factory.mktemp("ledger-broker"))
    try:
        yield f"127.0.0.1:{started['port']}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(started["pid"]), signal.SIGTERM)


async def feed(pool: asyncpg.Pool, month: Month, facts: list[Any] | None = None) -> None:
    """Through the real inboxes, in batches that interleave the two topics; then everything again, shuffled."""
    public, ranks = public_facts_inbox(pool), rankings_inbox(pool)
    facts = month.public if facts is None else facts
    half = len(facts) // 2
    await public.process(records(PUBLIC_CASES.name, facts[:half]))
    await ranks.process(records(RANKINGS.name, month.rankings))
    await public.process(records(PUBLIC_CASES.name, facts[half:], half))
    again = facts[:]
    random.Random(3).shuffle(again)
    await public.process(records(PUBLIC_CASES.name, again, 10_000))  # redelivered: nothing is appended
    await ranks.process(records(RANKINGS.name, month.rankings, 100))


@pytest.fixture(scope="module")
async def db(servers: dict[str, str], month: Month) -> str:
    dsn = await fresh_database(servers["DATABASE_URL"])
    pool = await migrated_pool(dsn, "publicity")
    try:
        await feed(pool, month)
    finally:
        await pool.close()
    return dsn


@pytest.fixture
async def pool(db: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(db, "publicity", max_size=2)
    yield p
    await p.close()


@pytest.fixture
async def client(db: str) -> AsyncIterator[httpx.AsyncClient]:
    site = create_app(db, page_cache=0)
    transport = httpx.ASGITransport(app=site)
    async with site.router.lifespan_context(site), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def stored(conn: asyncpg.Connection | asyncpg.Pool) -> list[dict[str, Any]]:
    return [e.to_json() for e in await ledger_store.entries(conn, 0, 1_000_000)]


def rechain(entries: list[dict[str, Any]], start: int) -> None:
    """What a forger would do after changing entry ``start``: recompute every hash from there on."""
    prev = entries[start - 2]["hash"] if start > 1 else GENESIS
    for e in entries[start - 1 :]:
        e["prev_hash"] = prev
        e["hash"] = prev = entry_hash(e["seq"], e["appended_at"], prev, e["fact"])


# ---------------------------------------------------------------------------- appending


async def test_every_fact_is_appended_once_and_the_chain_verifies(pool: asyncpg.Pool, month: Month) -> None:
    entries = await stored(pool)
    verdict = verify(entries)
    assert verdict.ok, verdict.broken
    assert verdict.facts == {"case": len(month.public), "ranking": len(month.rankings)}
    recorded = {json.loads(e["fact"])["event_id"] for e in entries}
    assert recorded == {str(e.event_id) for e in [*month.public, *month.rankings]}
    head = await ledger_store.head(pool)
    assert (head.seq, head.hash) == (len(entries), entries[-1]["hash"])
    days = await ledger_store.daily_heads(pool)
    assert days and (days[0]["seq"], days[0]["hash"]) == (head.seq, head.hash)
    # the interleaving of the two topics is kept: rankings sit between the two halves of the case facts
    kinds = [json.loads(e["fact"])["kind"] for e in entries]
    assert kinds.index("ranking") == len(month.public) // 2


async def test_a_fact_is_recorded_exactly_as_published_and_nothing_private(pool: asyncpg.Pool, month: Month) -> None:
    entries = await stored(pool)
    first = json.loads(entries[0]["fact"])
    envelope = month.public[0]
    assert first["event_id"] == str(envelope.event_id) and first["stream_version"] == envelope.stream_version
    assert first["payload"]["case_id"] == envelope.payload.case_id and first["payload"]["entry"]["step"] == "filed"
    assert set(first) == {"kind", "event_id", "stream_id", "stream_version", "recorded_at", "message_type",
                          "schema_version", "payload"}  # fmt: skip
    assert set(first["payload"]) == set(type(envelope.payload).model_fields)
    everything = "".join(e["fact"] for e in entries)
    assert PRIVATE not in everything and "complainant_ref" not in everything and "cp-" not in everything
    assert all(canonical(json.loads(e["fact"])) == e["fact"] for e in entries)


async def test_a_failed_batch_appends_nothing(pool: asyncpg.Pool, month: Month) -> None:
    before = await ledger_store.head(pool)
    async with pool.acquire() as conn:
        with contextlib.suppress(RuntimeError):
            async with conn.transaction():
                await ledger_store.append_facts(conn, [("00000000-0000-0000-0000-000000000001", "case", "{}")])
                raise RuntimeError("the projection's write failed")
    assert await ledger_store.head(pool) == before


async def test_concurrent_appenders_take_turns_and_the_chain_stays_whole(servers: dict[str, str]) -> None:
    """The two agents (public facts, rankings) append from their own transactions: the head row orders them."""
    dsn = await fresh_database(servers["DATABASE_URL"])
    pool = await migrated_pool(dsn, "publicity")
    try:

        async def appender(name: str) -> None:
            for batch in range(10):
                async with pool.acquire() as conn, conn.transaction():
                    ids = [str(uuid.uuid4()) for _ in range(5)]
                    facts = [(i, "case", canonical({"event_id": i, "kind": name, "batch": batch})) for i in ids]
                    await ledger_store.append_facts(conn, facts)

        await asyncio.gather(appender("public"), appender("rankings"), appender("third"))
        entries = await stored(pool)
        verdict = verify(entries)
        assert verdict.ok and verdict.facts == {"public": 50, "rankings": 50, "third": 50}
        assert [e["seq"] for e in entries] == list(range(1, 151))
    finally:
        await pool.close()


async def test_rectify_verify_reads_the_database_too(db: str, pool: asyncpg.Pool) -> None:
    assert await entries_of_database(db) == await stored(pool)


# ---------------------------------------------------------------------------- tampering


async def tampered(pool: asyncpg.Pool, *statements: str) -> list[dict[str, Any]]:
    """The stored chain after ``statements``, read inside a transaction that is then rolled back."""
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            for sql in statements:
                await conn.execute(sql)
            return await stored(conn)
        finally:
            await tx.rollback()


async def test_changing_one_byte_of_a_stored_fact_breaks_that_link(pool: asyncpg.Pool) -> None:
    entries = await tampered(pool, "UPDATE ledger SET fact = overlay(fact PLACING 'x' FROM 30 FOR 1) WHERE seq = 7")
    verdict = verify(entries)
    assert (
        verdict.broken is not None and verdict.broken.seq == 7 and "does not match its content" in str(verdict.broken)
    )
    assert verdict.head.seq == 6


async def test_deleting_a_stored_entry_names_the_missing_one(pool: asyncpg.Pool) -> None:
    verdict = verify(await tampered(pool, "DELETE FROM ledger WHERE seq = 5"))
    assert verdict.broken is not None and verdict.broken.seq == 5 and "entry 5 is missing" in verdict.broken.problem


async def test_reordering_stored_entries_breaks_the_first_moved_link(pool: asyncpg.Pool) -> None:
    entries = await tampered(
        pool,
        "UPDATE ledger SET seq = -3 WHERE seq = 3",
        "UPDATE ledger SET seq = 3 WHERE seq = 4",
        "UPDATE ledger SET seq = 4 WHERE seq = -3",
    )
    verdict = verify(entries)
    assert verdict.broken is not None and verdict.broken.seq == 3 and "prev_hash" in verdict.broken.problem


async def test_a_rewritten_history_is_caught_by_an_archived_head(pool: asyncpg.Pool) -> None:
    entries = await stored(pool)
    archived = entries[20]["hash"]  # someone kept the head as it stood after entry 21
    forged = [dict(e) for e in entries]
    fact = json.loads(forged[9]["fact"])
    fact["payload"]["category"] = "other"
    forged[9]["fact"] = canonical(fact)
    rechain(forged, 10)  # every hash recomputed: the chain alone still verifies ...
    assert verify(forged).ok
    verdict = verify(forged, expect_head=archived)  # ... but it no longer passes through the archived head
    assert not verdict.ok and "never reaches the expected head" in verdict.broken.problem  # type: ignore[union-attr]
    assert verify(entries, expect_head=archived).ok


async def test_a_duplicated_fact_is_named(pool: asyncpg.Pool) -> None:
    entries = await stored(pool)
    doubled = [*entries[:10], dict(entries[3], seq=11)]
    rechain(doubled, 11)
    verdict = verify(doubled)
    assert verdict.broken is not None and verdict.broken.seq == 11 and "recorded twice" in verdict.broken.problem


# ---------------------------------------------------------------------------- rankings from the ledger alone


async def test_every_ranking_recomputes_from_the_ledger_alone(pool: asyncpg.Pool, month: Month) -> None:
    report = verify_entries(await stored(pool))
    assert report.ok and len(report.rankings) == len(month.rankings)
    for check, published in zip(report.rankings, month.rankings, strict=True):
        assert check.problem is None and check.result_hash == published.payload.result_hash  # type: ignore[attr-defined]
        assert check.anchored > 0 and not check.unanchored
        assert any("is this build's file" in note for note in check.notes)


async def test_a_ranking_whose_inputs_were_altered_does_not_recompute(pool: asyncpg.Pool) -> None:
    entries = await stored(pool)
    at = next(i for i, e in enumerate(entries) if json.loads(e["fact"])["kind"] == "ranking")
    fact = json.loads(entries[at]["fact"])
    unit = fact["payload"]["evidence"]["inputs"]["units"][0]
    unit["counts"]["satisfied"] += 1
    entries[at]["fact"] = canonical(fact)
    rechain(entries, at + 1)  # a forger who keeps the chain whole
    report = verify_entries(entries)
    assert report.chain.ok and not report.ok
    assert "input_hash" in (report.rankings[0].problem or "")


# ---------------------------------------------------------------------------- the site and the command


async def test_the_api_pages_through_the_chain_and_the_download_holds_it_all(client: httpx.AsyncClient) -> None:
    paged: list[dict[str, Any]] = []
    url: str | None = "/api/v1/ledger?limit=100"
    while url is not None:
        body = m.LedgerPage.model_validate((await client.get(url)).json())
        paged += [e.model_dump() for e in body.entries]
        url = body.next
    download = await client.get("/data/ledger.jsonl")
    assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
    lines = [json.loads(line) for line in download.text.splitlines()]
    assert lines == paged and verify(lines).ok
    heads = m.LedgerHeads.model_validate((await client.get("/api/v1/ledger/heads")).json())
    assert heads.head.seq == len(lines) and heads.days[0].hash == lines[-1]["hash"]
    for lang in ("zh", "en"):
        page = await client.get("/ledger", params={"lang": lang})
        assert page.status_code == 200 and lines[-1]["hash"] in page.text and "rectify verify --url" in page.text
        home = await client.get("/", params={"lang": lang})
        assert heads.days[0].hash in home.text  # the day's head hash on the public page
    assert "/api/v1/ledger" in (await client.get("/api/openapi.json")).json()["paths"]


async def test_rectify_verify_checks_a_downloaded_file(client: httpx.AsyncClient, tmp_path: Path) -> None:
    good = tmp_path / "ledger.jsonl"
    good.write_bytes((await client.get("/data/ledger.jsonl")).content)
    runner = CliRunner()
    result = runner.invoke(app, ["verify", "--file", str(good)])
    assert result.exit_code == 0, result.output
    assert "the chain verifies" in result.output and "recomputes byte for byte" in result.output
    lines = good.read_text(encoding="utf-8").splitlines()
    entry = json.loads(lines[11])
    entry["fact"] = entry["fact"].replace('"case"', '"cas3"', 1)
    lines[11] = json.dumps(entry, ensure_ascii=False)
    bad = tmp_path / "tampered.jsonl"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["verify", "--file", str(bad)])
    assert result.exit_code == 1 and "broken at entry 12" in result.output


def test_the_standalone_checker_in_the_docs_agrees(db: str, tmp_path: Path) -> None:
    """docs/public-ledger.md's checker, run as printed, on the download."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "public-ledger.md").read_text(encoding="utf-8")
    checker = doc.split("```python\n", 1)[1].split("```", 1)[0]

    async def download() -> bytes:
        site = create_app(db, page_cache=0)
        transport = httpx.ASGITransport(app=site)
        async with site.router.lifespan_context(site), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return (await c.get("/data/ledger.jsonl")).content

    path = tmp_path / "ledger.jsonl"
    path.write_bytes(asyncio.run(download()))
    ok = subprocess.run([sys.executable, "-c", checker, str(path)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "entries; head" in ok.stdout, ok.stderr
    lines = path.read_text(encoding="utf-8").splitlines()
    del lines[4]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    broken = subprocess.run([sys.executable, "-c", checker, str(path)], capture_output=True, text=True, check=False)
    assert broken.returncode != 0 and "entry 5" in broken.stderr


# ---------------------------------------------------------------------------- rebuild from the topics


async def test_rebuild_replays_the_topics_into_a_shadow_equal_to_the_live_projection(
    servers: dict[str, str], broker: str, month: Month
) -> None:
    dsn = await fresh_database(servers["DATABASE_URL"])
    pool = await migrated_pool(dsn, "publicity")
    live_facts = month.public[: len(month.public) - 10]  # the live side has not yet seen the last ten facts
    try:
        await feed(pool, month, live_facts)
    finally:
        await pool.close()
    await ensure_topics(broker)
    producer = make_producer(broker, "test-ledger")
    await producer.start()
    try:
        sent = [await producer.send(topic, encode_event(e), key=e.stream_id.encode())
                for topic, log in ((PUBLIC_CASES.name, month.public), (RANKINGS.name, month.rankings))
                for e in log]  # fmt: skip
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    settings = Settings(kafka_bootstrap_servers=broker, database_url=dsn)
    expect = (len(month.public), len(month.rankings))

    report = await rebuild_publicity(settings, idle_s=2, expect=expect)
    assert (report.facts, report.rankings) == expect
    assert not report.identical  # ten facts behind
    assert report.ledger.chain.ok and len(report.ledger.missing) == 10 and not report.ledger.altered

    report = await rebuild_publicity(settings, idle_s=2, expect=expect, swap=True)
    assert report.identical and report.appended == 10 and report.ledger.consistent and not report.ledger.unknown

    again = await rebuild_publicity(settings, idle_s=2, expect=expect)  # rebuilt == live, and the ledger agrees
    assert again.identical and again.ledger.consistent and again.ledger.chain.entries == sum(expect)

    conn = await asyncpg.connect(dsn, server_settings={"search_path": "publicity"})
    try:  # an altered entry is named, and a live side ahead of the log refuses the swap
        await conn.execute('UPDATE ledger SET fact = replace(fact, \'"kind":"case"\', \'"kind":"cas3"\') WHERE seq = 2')
        altered = await rebuild_publicity(settings, idle_s=2, expect=expect)
        assert not altered.ledger.consistent and altered.ledger.chain.broken.seq == 2  # type: ignore[union-attr]
        assert len(altered.ledger.altered) == 1
        await ledger_store.append_facts(conn, [("00000000-0000-0000-0000-0000000000aa", "case", "{}")])
        with pytest.raises(LiveAhead):
            await rebuild_publicity(settings, idle_s=2, expect=expect, swap=True)
    finally:
        await conn.close()
