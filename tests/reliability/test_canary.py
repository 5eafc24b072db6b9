"""The personal-data canary, broadened: unique markers in every complainant field (name, phone, email) and every
private free-text field (description, cadre, location, the officer's name, plan, report, inspection note) of many
cases, filed through every door (HTTP, Open311, the Kafka ingestion topic) and driven through publication. No
marker may appear anywhere the public or an operator's dashboard can see: any page of the public site (crawled by
its links), the public JSON API and ledger, the Atom feed, the CSV and JSONL exports, public Open311, the publicity
database, the public-cases and rankings topics (read raw), any log line of any process, or any /metrics output.
Personal markers (name, phone, email) may not appear in plain text in any service's tables either."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections import deque
from urllib.parse import urljoin, urlsplit

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from services.cli.local import LocalSystem
from services.common.topics import PUBLIC_CASES, RANKINGS, SUBMISSIONS_IN
from tests.integration.test_outbox_relay import consume_all
from tests.reliability.conftest import COMPLAINT, Agencies, Figures, Published, bearer, wait_for
from tests.reliability.test_attacks import Markup

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]
MAX_PAGES = 400
PERSONAL = ("name", "phone", "email")
START = [
    "/",
    "/?lang=en",
    "/rankings",
    "/rankings/method",
    "/exposure",
    "/stalled",
    "/statistics",
    "/data",
    "/ledger",
    "/api/docs",
    "/openapi.json",
    "/api/v1/cases?size=200",
    "/api/v1/rankings",
    "/api/v1/exposure",
    "/api/v1/stalled",
    "/api/v1/statistics",
    "/api/v1/reference",
    "/api/v1/ledger",
    "/api/v1/ledger/heads",
    "/feeds/published.atom",
    "/feeds/published.atom?lang=en",
    "/data/cases.csv",
    "/data/rankings.csv",
    "/data/ledger.jsonl",
    "/open311/v2/services.json",
    "/open311/v2/requests.json",
]


def crawl(base: str, start: list[str]) -> dict[str, str]:
    """Every page reachable from ``start`` by same-site links (href, src), up to MAX_PAGES; url -> body."""
    seen: dict[str, str] = {}
    queue = deque(urljoin(base, s) for s in start)
    host = urlsplit(base).netloc
    with httpx.Client(timeout=20) as http:
        while queue and len(seen) < MAX_PAGES:
            url = queue.popleft().split("#")[0]
            if url in seen or urlsplit(url).netloc != host:
                continue
            r = http.get(url)
            seen[url] = r.text
            if "html" in r.headers.get("content-type", ""):
                links = Markup()
                links.feed(r.text)
                queue.extend(urljoin(url, link) for link in links.urls)
    return seen


async def schema_text(dsn: str, schema: str) -> str:
    """Every row of every table of a schema, as text: a dump of its data."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
            schema,
        )
        chunks = []
        for t in tables:
            rows = await conn.fetch(f'SELECT t::text AS row FROM {schema}."{t["table_name"]}" t')
            chunks.extend(r["row"] for r in rows)
        return "\n".join(chunks)
    finally:
        await conn.close()


def other_doors(agencies: Agencies, keys: dict[str, str], system: LocalSystem) -> list[dict[str, str]]:
    """Complaints with markers through Open311 and the Kafka ingestion topic, applied; their markers."""
    filed = []
    o311 = {
        "name": f"CANARYO311{secrets.token_hex(5)}",
        "phone": f"139{secrets.randbelow(10**8):08d}",
        "email": f"o311{secrets.token_hex(5)}@example.org",
        "description": f"CANARYO311DESC{secrets.token_hex(5)}",
        "location": f"CANARYO311ADDR{secrets.token_hex(5)}",
    }
    r = agencies.http.post(
        f"{agencies.intake}/open311/v2/requests.json",
        data={
            "service_code": "inaction",
            "attribute[unit_id]": "meiwan",
            "description": f"开放接口 {o311['description']}",
            "address_string": f"梅湾路 {o311['location']}",
            "first_name": o311["name"],
            "phone": o311["phone"],
            "email": o311["email"],
        },
        headers=bearer(keys["hotline"]),
    )
    assert r.status_code == 200, r.text
    filed.append((o311, r.json()[0]["token"]))
    kafka = {
        "name": f"CANARYKAFKA{secrets.token_hex(5)}",
        "phone": f"139{secrets.randbelow(10**8):08d}",
        "email": f"kafka{secrets.token_hex(5)}@example.org",
        "description": f"CANARYKAFKADESC{secrets.token_hex(5)}",
    }
    idem = f"canary-{uuid.uuid4().hex}"
    body = COMPLAINT | {
        "description": f"主题 {kafka['description']}",
        "complainant": {"name": kafka["name"], "phone": kafka["phone"], "email": kafka["email"]},
    }

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=system.base_env["KAFKA_BOOTSTRAP_SERVERS"])
        await producer.start()
        try:
            headers = [("authorization", f"Bearer {keys['hotline']}".encode()), ("idempotency-key", idem.encode())]
            await producer.send_and_wait(SUBMISSIONS_IN.name, orjson.dumps(body), key=idem.encode(), headers=headers)
        finally:
            await producer.stop()

    asyncio.run(send())

    async def ingested() -> str | None:
        conn = await asyncpg.connect(system.base_env["DATABASE_URL"])
        try:
            sid = await conn.fetchval("SELECT submission_id FROM intake.submissions WHERE idempotency_key = $1", idem)
            return str(sid) if sid else None
        finally:
            await conn.close()

    filed.append((kafka, wait_for(lambda: asyncio.run(ingested()), 60, "the ingested complaint")))
    for _, sid in filed:
        assert agencies.outcome("hotline", sid)["status"] == "applied"
    return [m for m, _ in filed]


def test_no_marker_anywhere_public_in_any_log_or_metric(
    system: LocalSystem, agencies: Agencies, keys: dict[str, str], published: Published, figures: Figures
) -> None:
    doors = other_doors(agencies, keys, system)
    dsn = system.base_env["DATABASE_URL"]
    bootstrap = system.base_env["KAFKA_BOOTSTRAP_SERVERS"]
    all_markers = [*published.markers.values(), *doors]
    secret = {value for markers in all_markers for value in markers.values()}
    personal = {value for markers in all_markers for field, value in markers.items() if field in PERSONAL}

    case_pages = [f"/cases/{c}" for c in published.markers] + [f"/api/v1/cases/{c}" for c in published.markers]
    pages = crawl(agencies.public, START + case_pages)
    assert all(any(c in body for body in pages.values()) for c in published.markers)  # the scan saw the cases
    surfaces: dict[str, str] = {f"page {url}": body for url, body in pages.items()}
    surfaces["publicity database"] = asyncio.run(schema_text(dsn, "publicity"))
    for topic in (PUBLIC_CASES.name, RANKINGS.name):
        records = asyncio.run(consume_all(bootstrap, topic, 10**7, timeout_ms=1500))
        surfaces[f"topic {topic}"] = "\n".join(
            r.value.decode(errors="replace") + repr(r.headers) + (r.key or b"").decode(errors="replace")
            for r in records
        )
    assert any(c in surfaces[f"topic {PUBLIC_CASES.name}"] for c in published.markers)
    for name, running in system.running.items():
        surfaces[f"metrics {name}"] = httpx.get(f"http://127.0.0.1:{running.metrics_port}/metrics", timeout=10).text
    for log in sorted(system.log_dir.glob("*.log")):
        surfaces[f"log {log.name}"] = log.read_text(errors="replace")
    leaks = [(where, m) for where, text in surfaces.items() for m in secret if m in text]
    assert not leaks, leaks[:10]

    # at rest, personal data exists only sealed in intake's vault: no service's tables hold it in plain text
    stored = {schema: asyncio.run(schema_text(dsn, schema)) for schema in ("intake", "rectification", "scoring")}
    at_rest = [(schema, m) for schema, text in stored.items() for m in personal if m in text]
    assert not at_rest, at_rest[:10]
    # the scan can see markers: the private text it looks for is there, inside, where it belongs
    assert all(m["description"] in stored["rectification"] for m in published.markers.values())

    log_lines = sum(text.count("\n") for where, text in surfaces.items() if where.startswith("log "))
    figures["canary"] = {
        "cases": len(all_markers),
        "doors": ["HTTP", "Open311", "Kafka ingestion topic"],
        "published_cases": len(published.markers),
        "markers": len(secret),
        "fields": sorted({f for markers in published.markers.values() for f in markers}),
        "public_pages_crawled": len(pages),
        "topic_records_read": {t: surfaces[f"topic {t}"].count("\n") + 1 for t in (PUBLIC_CASES.name, RANKINGS.name)},
        "log_files": sum(1 for w in surfaces if w.startswith("log ")),
        "log_lines": log_lines,
        "metrics_endpoints": sum(1 for w in surfaces if w.startswith("metrics ")),
        "found": 0,
    }
