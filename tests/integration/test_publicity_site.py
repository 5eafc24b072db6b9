"""The publicity projection and the public site on the real PostgreSQL, with a simulated month of cases.

The month's public facts go through the real inbox (decoder, dedup, handler) in shuffled batches and twice
over; its rankings come from the scoring domain. Then every page, JSON answer, feed and export is read
through the ASGI app: the answers match the documented models, filters and counts agree, caching works, and
no private text reaches any of it.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import random
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from pydantic import BaseModel

from bench.publicity import Month, simulate_month
from services.common.contracts import EventEnvelope, encode_event
from services.common.db import create_pool
from services.common.inbox import Inbox, Record
from services.common.reference import reference
from services.common.topics import PUBLIC_CASES, RANKINGS
from services.publicity import api_models as m
from services.publicity.adapters.store import CASE_COLUMNS
from services.publicity.entrypoints.public_facts import apply_public_batch, decode_public_fact
from services.publicity.entrypoints.ranking_facts import apply_ranking_batch, decode_ranking_fact
from services.publicity.entrypoints.site import WATERMARK_TTL
from services.publicity.entrypoints.web import create_app
from services.rectification.simulation import PRIVATE
from tests.conftest import fresh_database
from tests.integration.conftest import migrated_pool

pytestmark = pytest.mark.integration
PAGES = ("/", "/rankings", "/rankings/method", "/exposure", "/stalled", "/statistics", "/data", "/ledger")


@pytest.fixture(scope="module")
def month() -> Month:
    return asyncio.run(simulate_month(seed=606, cases=240))


def records(topic: str, envelopes: list[EventEnvelope], start: int = 0) -> list[Record]:
    return [Record(topic, 0, start + i, e.stream_id.encode(), encode_event(e)) for i, e in enumerate(envelopes)]


async def feed(pool: asyncpg.Pool, month: Month) -> None:
    """The month through the real inboxes: by case in order, batches interleaving cases, everything twice."""
    public = Inbox(pool, service="publicity", decode=decode_public_fact, message_id=lambda e: e.event_id,
                   handle=apply_public_batch)  # fmt: skip
    ranks = Inbox(pool, service="publicity", decode=decode_ranking_fact, message_id=lambda e: e.event_id,
                  handle=apply_ranking_batch)  # fmt: skip
    facts = month.public
    for i in range(0, len(facts), 500):
        await public.process(records(PUBLIC_CASES.name, facts[i : i + 500], i))
    await ranks.process(records(RANKINGS.name, month.rankings))
    again = facts[:]
    random.Random(7).shuffle(again)  # a replay out of order changes nothing: versions only move forward
    for i in range(0, len(again), 700):
        await public.process(records(PUBLIC_CASES.name, again[i : i + 700], 10_000 + i))
    await ranks.process(records(RANKINGS.name, month.rankings, 100))


@pytest.fixture(scope="module")
async def db(servers: dict[str, str], month: Month) -> AsyncIterator[str]:
    dsn = await fresh_database(servers["DATABASE_URL"])
    pool = await migrated_pool(dsn, "publicity")
    try:
        await feed(pool, month)
    finally:
        await pool.close()
    yield dsn


@pytest.fixture(scope="module")
async def client(db: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://public.test") as c:
            yield c


@pytest.fixture(scope="module")
async def pool(db: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(db, "publicity", max_size=2)
    yield p
    await p.close()


def final_states(month: Month) -> dict[str, Any]:
    latest: dict[str, tuple[int, Any]] = {}
    for e in month.public:
        if e.stream_id not in latest or latest[e.stream_id][0] < e.stream_version:
            latest[e.stream_id] = (e.stream_version, e.payload)
    return {case_id: payload for case_id, (_, payload) in latest.items()}


# ---------------------------------------------------------------------------- the projection


async def test_the_projection_holds_each_case_at_its_last_version(pool: asyncpg.Pool, month: Month) -> None:
    finals = final_states(month)
    rows = {r["case_id"]: r for r in await pool.fetch("SELECT case_id, status, version, overdue FROM cases")}
    assert set(rows) == set(finals)
    for case_id, p in finals.items():
        assert rows[case_id]["status"] == p.status.value and rows[case_id]["overdue"] == p.overdue
    assert await pool.fetchval("SELECT count(*) FROM dead_letters") == 0
    assert await pool.fetchval("SELECT count(*) FROM rankings") == 2


async def test_statistics_cells_agree_with_a_recount(pool: asyncpg.Pool) -> None:
    kept = await pool.fetch(
        "SELECT month, unit_id, category, status, overdue, exposed, n FROM stats_cells WHERE n <> 0"
        " ORDER BY 1, 2, 3, 4, 5, 6"
    )
    recount = await pool.fetch(
        "SELECT to_char(filed_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM') AS month, unit_id, category, status, overdue,"
        " exposed, count(*)::int AS n FROM cases GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6"
    )
    assert [tuple(r) for r in kept] == [tuple(r) for r in recount]
    assert await pool.fetchval("SELECT count(*) FROM stats_cells WHERE n < 0") == 0


async def test_publication_and_exposure_times_come_from_the_timeline(pool: asyncpg.Pool) -> None:
    wrong = await pool.fetchval(
        "SELECT count(*) FROM cases c WHERE published_at IS DISTINCT FROM"
        " (SELECT max(at) FROM timeline t WHERE t.case_id = c.case_id AND step = 'published')"
        " OR exposed_at IS DISTINCT FROM"
        " (SELECT min(at) FROM timeline t WHERE t.case_id = c.case_id AND step = 'exposed')"
    )
    assert wrong == 0
    assert await pool.fetchval("SELECT count(*) FROM cases WHERE published_at IS NOT NULL") > 0
    assert await pool.fetchval("SELECT count(*) FROM cases WHERE exposed AND exposed_at IS NULL") == 0


async def test_the_schema_holds_public_fields_only(pool: asyncpg.Pool) -> None:
    columns = {
        (r["table_name"], r["column_name"])
        for r in await pool.fetch(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'publicity'"
        )
    }
    assert {c for t, c in columns if t == "cases"} == set(CASE_COLUMNS)
    tables = {t for t, _ in columns}
    assert tables == {
        "cases", "timeline", "stats_cells", "rankings", "watermark",
        "outbox", "processed_messages", "dead_letters", "schema_migrations", "ledger", "ledger_head", "ledger_days",
    }  # fmt: skip
    personal = ("complainant_ref", "name", "phone", "email", "contact", "description", "cadre", "location")
    assert not [c for _, c in columns if any(word in c for word in personal)]
    holders = {h["holder"] for r in await pool.fetch("SELECT holds FROM cases") for h in orjson.loads(r[0])}
    assert holders and all(h in ("supervisor", "complainant") or h.startswith("unit:") for h in holders)


# ---------------------------------------------------------------------------- pages and API


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_every_page_renders_in_both_languages(client: httpx.AsyncClient, month: Month, lang: str) -> None:
    paths = [*PAGES, f"/cases/{month.case_ids[0]}"]
    for path in paths:
        r = await client.get(path, params={"lang": lang} if lang == "en" else None)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html")
        assert f'<html lang="{"zh-CN" if lang == "zh" else "en"}">' in r.text
        assert r.text.count("<h1") == 1, path
        assert "Cache-Control" in r.headers and "ETag" in r.headers
        assert "Content-Security-Policy" in r.headers
        assert PRIVATE not in r.text
        if lang == "en":
            assert "?lang=en" in r.text and "Case search" in r.text
        else:
            assert "案件查询" in r.text


def validate(model: type[BaseModel], body: Any) -> Any:
    return model.model_validate(body)


async def test_the_json_twins_match_their_documented_models(client: httpx.AsyncClient, month: Month) -> None:
    cases = validate(m.CaseList, (await client.get("/api/v1/cases", params={"size": 200})).json())
    assert cases.total == len(month.case_ids) and len(cases.cases) == 200
    detail = validate(m.CaseDetail, (await client.get(f"/api/v1/cases/{month.case_ids[0]}")).json())
    assert detail.timeline[0].step == "filed"
    index = validate(m.RankingIndex, (await client.get("/api/v1/rankings")).json())
    assert {(k.period, k.tier) for k in index.rankings} == {("2025-03", "township"), ("2025-03", "department")}
    ranking = validate(m.RankingAnswer, (await client.get("/api/v1/rankings/2025-03/township")).json())
    assert ranking.ranking.result_hash == month.rankings[0].payload.result_hash  # type: ignore[attr-defined]
    assert ranking.recompute == "rectify ranking recompute --period 2025-03 --tier township"
    published = (await client.get("/api/v1/rankings/2025-03/township")).json()["ranking"]
    claimed = published.pop("result_hash")  # anyone can check it as the method page says
    canonical = json.dumps(published, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert hashlib.sha256(canonical).hexdigest() == claimed
    validate(m.ExposureList, (await client.get("/api/v1/exposure")).json())
    stalled = validate(m.StalledAnswer, (await client.get("/api/v1/stalled")).json())
    assert all(c.overdue for c in stalled.cases)
    stats = validate(m.StatisticsAnswer, (await client.get("/api/v1/statistics", params={"period": "2025-03"})).json())
    assert sum(c.filed for c in stats.by_category) == sum(u.filed for u in stats.by_unit)
    openapi = (await client.get("/api/openapi.json")).json()
    for path in ("/api/v1/cases", "/api/v1/rankings/{period}/{tier}", "/api/v1/statistics", "/feeds/published.atom"):
        assert path in openapi["paths"]
    assert "RankingAnswer" in openapi["components"]["schemas"]
    assert (await client.get("/api/v1/rankings/2031-01/township")).status_code == 404
    assert (await client.get("/api/v1/cases/nope")).status_code == 404
    assert (await client.get("/api/v1/cases", params={"period": "2025-13"})).status_code == 422


async def test_filters_and_counts_agree(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    for params, where in (
        ({"unit": "meiwan"}, "unit_id = 'meiwan'"),
        ({"category": "service_window"}, "category = 'service_window'"),
        ({"status": "closed"}, "status = 'closed'"),
        ({"period": "2025-03"}, "filed_at >= '2025-03-01T00:00:00+08' AND filed_at < '2025-04-01T00:00:00+08'"),
        ({"period": "2025-Q2"}, "filed_at >= '2025-04-01T00:00:00+08' AND filed_at < '2025-07-01T00:00:00+08'"),
        ({"unit": "renwan", "status": "closed", "period": "2025"}, "unit_id = 'renwan' AND status = 'closed'"),
    ):
        expected = await pool.fetchval(f"SELECT count(*) FROM cases WHERE {where}")
        body = (await client.get("/api/v1/cases", params={**params, "size": 200})).json()
        assert body["total"] == expected and len(body["cases"]) == min(expected, 200), params
        page = await client.get("/", params=params)
        assert f"共 {expected} 件" in page.text


async def test_the_case_page_shows_the_timeline_and_who_held_up_an_overdue_case(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    case_id = await pool.fetchval("SELECT case_id FROM cases WHERE overdue ORDER BY case_id LIMIT 1")
    row = await pool.fetchrow("SELECT responsible_unit_id, holds::text FROM cases WHERE case_id = $1", case_id)
    page = (await client.get(f"/cases/{case_id}")).text
    assert "本案已超期" in page and "倒查责任" in page
    unit = reference().units[row["responsible_unit_id"]]
    assert unit.zh in page and "unit:" not in page
    english = (await client.get(f"/cases/{case_id}", params={"lang": "en"})).text
    assert "This case is overdue" in english and unit.en in english
    rejected = await pool.fetchval(
        "SELECT case_id FROM cases WHERE redo_count >= 1 AND problem_summary IS NOT NULL ORDER BY case_id LIMIT 1"
    )
    page = (await client.get(f"/cases/{rejected}")).text
    assert "验收未通过（第 1 次返工）" in page and "经审核公布的内容" in page


async def test_the_leaderboard_shows_every_rate_the_marks_and_how_to_recompute(
    client: httpx.AsyncClient, month: Month
) -> None:
    page = (await client.get("/rankings", params={"period": "2025-03", "tier": "township"})).text
    doc = month.rankings[0].payload
    for words in ("按时签收率", "按时办结率", "一次验收通过率", "解决率", "满意率", "综合得分", "十佳"):
        assert words in page
    assert doc.result_hash in page and doc.input_hash in page and doc.formula_version in page  # type: ignore[attr-defined]
    assert "rectify ranking recompute --period 2025-03 --tier township" in page
    assert 'href="/rankings/method"' in page
    if doc.bottom_flags:  # type: ignore[attr-defined]
        assert "排名靠后" in page
    departments = (await client.get("/rankings", params={"period": "2025-03", "tier": "department"})).text
    assert "区直部门" in departments
    assert "尚未公布" in (await client.get("/rankings", params={"period": "2030-01"})).text


async def test_boards_and_statistics(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    exposed = await pool.fetchval("SELECT count(*) FROM cases WHERE exposed")
    page = (await client.get("/exposure")).text
    assert f"共 {exposed} 件" in page and "曝光时间" in page
    overdue = await pool.fetchval("SELECT count(*) FROM cases WHERE overdue")
    stalled = (await client.get("/stalled")).text
    assert f"共 {overdue} 件" in stalled and "<svg" in stalled
    unit = await pool.fetchval("SELECT responsible_unit_id FROM cases WHERE overdue LIMIT 1")
    one = (await client.get("/stalled", params={"unit": unit})).text
    assert reference().units[unit].zh in one
    stats = (await client.get("/statistics", params={"period": "2025-03"})).text
    assert stats.count("<svg") == 3 and 'role="img"' in stats and "2025年3月" in stats


# ---------------------------------------------------------------------------- caching


async def test_answers_are_cacheable_and_revalidate(client: httpx.AsyncClient, month: Month) -> None:
    for path in ("/", "/api/v1/cases", "/rankings", f"/cases/{month.case_ids[0]}", "/feeds/published.atom",
                 "/data/cases.csv", "/open311/v2/requests.json", "/api/v1/reference"):  # fmt: skip
        first = await client.get(path)
        assert first.status_code == 200, path
        assert first.headers["cache-control"].startswith("public, max-age="), path
        again = await client.get(path, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.content == b"", path
        assert again.headers["etag"] == first.headers["etag"]
    listing = await client.get("/")
    head = await client.head("/")
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == listing.headers["etag"]
    since = await client.get("/", headers={"If-Modified-Since": listing.headers["last-modified"]})
    assert since.status_code == 304
    english = await client.get("/", params={"lang": "en"})
    assert english.headers["etag"] != listing.headers["etag"] or english.text != listing.text
    css = listing.text.split('rel="stylesheet" href="')[1].split('"')[0]
    static = await client.get(css)
    assert static.status_code == 200 and "immutable" in static.headers["cache-control"]


async def test_a_change_to_the_projection_changes_the_validators(client: httpx.AsyncClient, db: str) -> None:
    before = (await client.get("/api/v1/cases")).headers["etag"]
    conn = await asyncpg.connect(db, server_settings={"search_path": "publicity"})
    try:
        await conn.execute("UPDATE watermark SET changes = changes + 1, changed_at = now()")
    finally:
        await conn.close()
    await asyncio.sleep(WATERMARK_TTL)  # the site reads the change counter at most once a second
    after = await client.get("/api/v1/cases", headers={"If-None-Match": before})
    assert after.status_code == 200 and after.headers["etag"] != before


# ---------------------------------------------------------------------------- feeds and open data


async def test_the_atom_feed_lists_published_results(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    r = await client.get("/feeds/published.atom")
    assert r.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(r.content)
    entries = feed.findall("{http://www.w3.org/2005/Atom}entry")
    published = await pool.fetchval("SELECT count(*) FROM cases WHERE published_at IS NOT NULL")
    assert len(entries) == min(50, published) > 0
    assert PRIVATE not in r.text


async def test_the_csv_export_has_every_case(client: httpx.AsyncClient, month: Month) -> None:
    r = await client.get("/data/cases.csv")
    assert r.headers["content-type"].startswith("text/csv") and "attachment" in r.headers["content-disposition"]
    text = r.content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(month.case_ids) and {row["case_id"] for row in rows} == set(month.case_ids)
    assert PRIVATE not in text
    march = list(
        csv.DictReader(io.StringIO((await client.get("/data/cases.csv?period=2025-03")).content.decode("utf-8-sig")))
    )
    assert 0 < len(march) <= len(rows) and all(row["filed_at"].startswith("2025-03") for row in march)
    rankings = list(csv.DictReader(io.StringIO((await client.get("/data/rankings.csv")).content.decode("utf-8-sig"))))
    assert {row["unit_id"] for row in rankings} == set(reference().units)


async def test_open311_lists_public_requests(client: httpx.AsyncClient, month: Month) -> None:
    services = (await client.get("/open311/v2/services.json")).json()
    assert {s["service_code"] for s in services} == set(reference().categories)
    window = {"start_date": "2025-03-01T00:00:00+08:00", "end_date": "2025-05-29T00:00:00+08:00"}
    listed = (await client.get("/open311/v2/requests.json", params=window)).json()
    assert len(listed) == len(month.case_ids)
    fields = set(listed[0])
    assert {"service_request_id", "status", "service_code", "requested_datetime", "agency_responsible"} <= fields
    closed = (await client.get("/open311/v2/requests.json", params=window | {"status": "closed"})).json()
    assert closed and all(r["status"] == "closed" for r in closed)
    one = (await client.get(f"/open311/v2/requests/{month.case_ids[0]}.json")).json()
    assert [r["service_request_id"] for r in one] == [month.case_ids[0]]
    by_id = (await client.get("/open311/v2/requests.json", params={"service_request_id": month.case_ids[1]})).json()
    assert [r["service_request_id"] for r in by_id] == [month.case_ids[1]]
    bad = await client.get("/open311/v2/requests.json", params={"service_code": "nope"})
    assert bad.status_code == 400 and bad.json()[0]["code"] == 400
    too_long = await client.get(
        "/open311/v2/requests.json", params={"start_date": "2025-01-01T00:00:00Z", "end_date": "2025-06-01T00:00:00Z"}
    )
    assert too_long.status_code == 400
    assert (await client.get("/open311/v2/requests/NOPE-1.json")).status_code == 404
    everything = str(listed)
    assert PRIVATE not in everything


def test_no_private_simulation_text_in_the_public_facts(month: Month) -> None:
    """The simulation marks every unapproved text; the public facts it produced never carry one."""
    assert not [e for e in month.public if PRIVATE in encode_event(e).decode()]
