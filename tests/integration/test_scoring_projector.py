"""Scoring on real servers: the worker consuming real case events, rebuild, publish, recompute and what-if.

The module starts a broker of its own (tansu starts in milliseconds), so the real topic names can be used
without meeting other tests' messages, and the `rectify` commands run as an operator would run them.
A simulated month (300 cases, March 2025) is produced to rectify.case.events.v1 once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import asyncpg
import pytest
from typer.testing import CliRunner

from services.cli.local import stack_module
from services.cli.main import app
from services.common.batch_consumer import BatchConsumer
from services.common.contracts import RankingPublished, decode_event, encode_event
from services.common.db import create_pool, migrate
from services.common.inbox import Record
from services.common.kafka import ensure_topics, make_producer
from services.common.settings import Settings, get_settings
from services.common.topics import CASE_EVENTS, RANKINGS
from services.scoring.domain.evidence import check
from services.scoring.domain.hashing import digest
from services.scoring.domain.periods import Period
from services.scoring.domain.projection import Tables
from services.scoring.entrypoints.case_events import CaseEventProjector, FactsCache
from services.scoring.service import TIERS, NotSettled
from services.scoring.wiring import (
    MIGRATIONS,
    PROJECTOR_LOCK,
    ProjectorRunning,
    build_worker,
    case_event_inbox,
    consumer_config,
    publish_ranking,
    rebuild_scoring,
    recompute_ranking,
    scoring_store,
    what_if_ranking,
)
from tests.conftest import fresh_database
from tests.unit.test_scoring_properties import events, simulated_log

pytestmark = pytest.mark.integration
MARCH = Period.parse("2025-03")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    started = stack_module().start_broker(tmp_path_factory.mktemp("scoring-broker"))
    try:
        yield f"127.0.0.1:{started['port']}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(started["pid"]), signal.SIGTERM)


@pytest.fixture(scope="module")
async def settings(broker: str, servers: dict[str, str]) -> Settings:
    dsn = await fresh_database(servers["DATABASE_URL"])
    await migrate(dsn, "scoring", MIGRATIONS)
    await ensure_topics(broker)
    producer = make_producer(broker, "test-scoring")
    await producer.start()
    try:
        sent = [
            await producer.send(CASE_EVENTS.name, encode_event(e), key=e.stream_id.encode()) for e in simulated_log()
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return Settings(kafka_bootstrap_servers=broker, database_url=dsn, kafka_session_timeout_ms=6000)


@pytest.fixture(scope="module")
async def projected(settings: Settings) -> Settings:
    """The scoring worker (its real wiring) has consumed the whole log into the scoring schema."""
    runtime = build_worker(settings)
    await runtime.start()
    try:
        await wait_for_processed(settings, len(simulated_log()))
    finally:
        await runtime.stop()
    return settings


async def wait_for_processed(settings: Settings, count: int, schema: str = "scoring") -> None:
    conn = await asyncpg.connect(settings.database_url, server_settings={"search_path": schema})
    try:
        deadline = time.monotonic() + 40
        while await _count(conn) < count:
            assert time.monotonic() < deadline, f"only {await _count(conn)} of {count} events applied"
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def _count(conn: asyncpg.Connection) -> int:
    try:
        return int(await conn.fetchval("SELECT coalesce(sum(events), 0) FROM log_epochs"))
    except asyncpg.UndefinedTableError:
        return 0


@pytest.fixture
async def store(projected: Settings) -> AsyncIterator:  # type: ignore[type-arg]
    async with scoring_store(projected.database_url) as s:
        yield s


def last_versions() -> dict[str, int]:
    """Every case of the log and its last stream version: what scoring must be applied up to."""
    versions: dict[str, int] = {}
    for e in simulated_log():
        versions[e.stream_id] = max(versions.get(e.stream_id, 0), e.stream_version)
    return versions


async def applied_once(store) -> None:  # type: ignore[no-untyped-def]
    """Every event counted once: each case applied up to its last event, and as many events tallied as logged."""
    assert await store.applied_versions() == last_versions()
    assert sum(t.events for t in (await store.epochs()).values()) == len(simulated_log())


def in_memory() -> Tables:
    tables = Tables()
    tables.apply(events())
    return tables


async def test_the_worker_projects_real_events_like_the_pure_projection(store) -> None:  # type: ignore[no-untyped-def]
    assert (await store.tables()).digest() == in_memory().digest()
    await applied_once(store)


async def test_redelivered_events_change_nothing(projected: Settings, store) -> None:  # type: ignore[no-untyped-def]
    before = (await store.tables()).digest()
    pool = await create_pool(projected.database_url, "scoring", max_size=2)
    projector = CaseEventProjector(FactsCache(1000))
    config = consumer_config(projected, group=f"again-{uuid.uuid4().hex[:6]}")  # a new group reads it all again
    consumer = BatchConsumer(config, case_event_inbox(pool, projector), on_revoked=projector.forget)
    running = asyncio.ensure_future(consumer.run())
    try:
        deadline = time.monotonic() + 30
        while consumer.applied < len(simulated_log()):
            assert time.monotonic() < deadline, f"{consumer.applied} redelivered"
            await asyncio.sleep(0.1)
    finally:
        consumer.stop()
        await running
        await pool.close()
    assert (await store.tables()).digest() == before
    await applied_once(store)


async def test_a_batch_that_does_not_go_as_planned_is_worked_out_again(settings: Settings) -> None:
    """Plans rest on the batches planned before them; a batch not as planned makes the projector drop them. A
    redelivery planned on top of what it repeats is skipped by version in the plan itself."""
    await migrate(settings.database_url, "scoring_plans", MIGRATIONS)
    pool = await create_pool(settings.database_url, "scoring_plans", max_size=3)
    try:
        projector = CaseEventProjector(FactsCache(1000), pool)
        inbox = case_event_inbox(pool, projector)
        log = [encode_event(e) for e in simulated_log()]
        records = [Record(CASE_EVENTS.name, 0, i, None, v) for i, v in enumerate(log)]
        half = len(records) // 2
        batches = [records[:700], records[300:half], records[half:]]  # the second repeats part of the first
        planned = [inbox.prepare(batch) for batch in batches]
        for prepared in planned:
            await projector.plan(prepared)  # all three planned ahead, each on top of the one before
        await inbox.apply(planned[0])
        await inbox.apply(inbox.prepare(batches[1]))  # polled again (a rejoin): not the batch planned
        await inbox.apply(planned[2])  # planned on top of a plan that was dropped
        assert (projector.planned, projector.worked_out) == (1, 2)
        async with scoring_store(settings.database_url, "scoring_plans") as store:
            assert (await store.tables()).digest() == in_memory().digest()
        again = [inbox.prepare(batch) for batch in batches]
        for prepared in again:  # the whole log again: every event skipped by its case's applied version
            await projector.plan(prepared)
        for prepared in again:
            await inbox.apply(prepared)
        async with scoring_store(settings.database_url, "scoring_plans") as store:
            assert (await store.tables()).digest() == in_memory().digest()
        async with scoring_store(settings.database_url, "scoring_plans") as store:
            assert (await store.tables()).digest() == in_memory().digest()
    finally:
        await pool.close()


async def test_rebuild_from_the_log_equals_the_incremental_projection(projected: Settings) -> None:
    report = await rebuild_scoring(projected, expect=len(simulated_log()), idle_s=2)
    assert report.events == len(simulated_log())
    assert report.identical, (report.rebuilt, report.live)
    assert not report.swapped


async def test_a_swap_waits_for_the_worker_to_stop_and_then_keeps_the_same_content(projected: Settings) -> None:
    pool = await create_pool(projected.database_url, "scoring", max_size=1)
    try:
        async with pool.acquire() as worker:
            await worker.execute("SELECT pg_advisory_lock_shared(hashtext($1))", PROJECTOR_LOCK)
            with pytest.raises(ProjectorRunning):
                await rebuild_scoring(projected, expect=len(simulated_log()), swap=True)
            await worker.execute("SELECT pg_advisory_unlock_shared(hashtext($1))", PROJECTOR_LOCK)
    finally:
        await pool.close()
    report = await rebuild_scoring(projected, expect=len(simulated_log()), swap=True)
    assert report.swapped and report.identical


async def test_publish_then_recompute_gives_the_same_result_hash(projected: Settings, store) -> None:  # type: ignore[no-untyped-def]
    now = datetime(2025, 9, 1, tzinfo=UTC)
    published = await publish_ranking(projected, MARCH, list(TIERS), "v1", now)
    assert [p.new for p in published] == [True, True]
    again = await publish_ranking(projected, MARCH, list(TIERS), "v1", now)
    assert [p.new for p in again] == [False, False]
    assert [p.ranking.result_hash for p in again] == [p.ranking.result_hash for p in published]

    sent = await store.conn.fetch("SELECT value FROM outbox WHERE topic = $1 ORDER BY id", RANKINGS.name)
    assert len(sent) == 2
    for raw, publication in zip(sent, published, strict=True):
        payload = decode_event(bytes(raw[0])).payload
        assert isinstance(payload, RankingPublished)
        body = payload.model_dump(mode="json")
        assert check(body) is None  # v2: recomputes from the evidence it carries alone
        body.pop("evidence")
        assert body.pop("result_hash") == digest(body) == publication.ranking.result_hash
        assert payload.position.events > 0 and payload.top_ten

    verdicts = await recompute_ranking(projected, MARCH, list(TIERS), idle_s=1)
    assert [v.problem for v in verdicts] == [None, None]
    recomputed = {v.published.tier: v.recomputed.result_hash for v in verdicts if v.recomputed}
    assert recomputed == {p.ranking.document["tier"]: p.ranking.result_hash for p in published}


async def test_a_period_is_published_only_once_it_has_settled(projected: Settings) -> None:
    with pytest.raises(NotSettled, match="settles at"):
        await publish_ranking(projected, Period.parse("2025-08"), ["township"], "v1")


async def test_what_if_shows_how_the_ranks_move(projected: Settings) -> None:
    before, after, changes = await what_if_ranking(projected, Period.parse("2025-Q1"), "township", "v2", "v1")
    assert before.document["formula_version"] == "v1" and after.document["formula_version"] == "v2"
    assert before.input_hash == after.input_hash and before.result_hash != after.result_hash
    assert any(old != new for _, old, new in changes), "v2 weighs resolution and satisfaction more: ranks move"
    new_ranks = sorted(new for _, _, new in changes if new is not None)
    assert new_ranks == list(range(1, len(new_ranks) + 1))


def test_the_operator_commands(projected: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", projected.kafka_bootstrap_servers)
    monkeypatch.setenv("DATABASE_URL", projected.database_url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        shown = runner.invoke(app, ["ranking", "show", "--period", "2025-Q1", "--tier", "township"])
        assert shown.exit_code == 0, shown.output
        assert "settled" in shown.output and "result hash" in shown.output
        published = runner.invoke(app, ["ranking", "publish", "--period", "2025-Q1"])
        assert published.exit_code == 0, published.output
        hashes = [line.split()[-1] for line in published.output.splitlines() if "result hash" in line]
        recomputed = runner.invoke(app, ["ranking", "recompute", "--period", "2025-Q1", "--idle", "1"])
        assert recomputed.exit_code == 0, recomputed.output
        assert all(h in recomputed.output for h in hashes) and recomputed.output.count("identical") == 2
        what_if = runner.invoke(app, ["ranking", "what-if", "--period", "2025-Q1", "--formula", "v2"])
        assert what_if.exit_code == 0 and "change rank" in what_if.output, what_if.output
        unsettled = runner.invoke(app, ["ranking", "publish", "--period", "2025-12"])
        assert unsettled.exit_code == 1 and "not published" in unsettled.output
        rebuilt = runner.invoke(app, ["rebuild", "scoring", "--idle", "1"])
        assert rebuilt.exit_code == 0 and "equals" in rebuilt.output, rebuilt.output
    finally:
        get_settings.cache_clear()


def test_no_personal_data_in_scoring(projected: Settings) -> None:
    async def stored() -> str:
        conn = await asyncpg.connect(projected.database_url)
        try:
            rows = await conn.fetch("SELECT convert_from(state, 'UTF8') FROM scoring.case_facts")
            payloads = await conn.fetch("SELECT payload::text FROM scoring.published_rankings")
        finally:
            await conn.close()
        return "".join(r[0] for r in [*rows, *payloads])

    text = asyncio.run(stored())
    assert "cp-SIM" not in text and "SIM-PRIVATE" not in text  # complainant refs and private free text
