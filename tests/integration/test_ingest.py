"""The Kafka ingestion topic on the real PostgreSQL (and, last, the real broker and intake-worker process).

A valid message takes the HTTP API's path, a redelivered one files nothing new, and every kind of invalid
message is dead-lettered with its reason in the headers and without the complainant's data.
"""

import asyncio
import base64
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from services.cli.local import LocalSystem
from services.common.contracts import Role, decode_command
from services.common.db import migrate
from services.common.inbox import Record
from services.common.kafka import ensure_topics
from services.common.topics import DEAD_LETTERS, SUBMISSIONS_IN
from services.intake.adapters.repository import provision_agency
from services.intake.adapters.vault import Vault
from services.intake.entrypoints.http import create_app
from services.intake.entrypoints.ingest import Ingestor
from services.intake.service import Submitter
from tests.conftest import fresh_database
from tests.integration.conftest import SERVICES
from tests.integration.test_outbox_relay import consume_all

pytestmark = pytest.mark.integration
TOPIC = SUBMISSIONS_IN.name
BODY = {
    "category": "inaction",
    "unit_id": "meiwan",
    "description": "路灯坏了三个月无人修",
    "complainant": {"name": "王小明", "phone": "13912345678"},
}


class Setup:
    def __init__(self, pool: asyncpg.Pool, http: httpx.AsyncClient, submitter: Submitter, keys: dict[str, str]) -> None:
        self.pool, self.http, self.keys = pool, http, keys
        self.ingestor = Ingestor(pool, submitter, lambda: datetime.now(UTC))
        self.offset = 0

    def record(self, who: str | None, body: Any = BODY, key: str | None = None, **headers: str) -> Record:
        pairs = [] if who is None else [("authorization", f"Bearer {self.keys.get(who, who)}".encode())]
        if key is not None:
            pairs.append(("idempotency-key", key.encode()))
        pairs += [(k.replace("_", "-"), v.encode()) for k, v in headers.items()]
        value = body if isinstance(body, bytes) else orjson.dumps(body)
        self.offset += 1
        return Record(TOPIC, 0, self.offset, b"k", value, tuple(pairs))

    async def count(self, table: str) -> int:
        return int(await self.pool.fetchval(f"SELECT count(*) FROM {table}"))


@pytest.fixture
async def setup(dsn: str) -> AsyncIterator[Setup]:
    await migrate(dsn, "intake", SERVICES / "intake" / "migrations")
    app = create_app(dsn, lambda: datetime.now(UTC), Vault(os.urandom(32)))
    async with app.router.lifespan_context(app):
        async with app.state.pool.acquire() as conn:
            keys = {
                "hotline": await provision_agency(conn, "hotline", "12345", Role.CHANNEL, channel="hotline_12345"),
                "office": await provision_agency(conn, "office", "纠风办", Role.SUPERVISOR),
                "renwan": await provision_agency(conn, "unit-renwan", "仁湾镇", Role.UNIT, unit_id="renwan"),
            }
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield Setup(app.state.pool, client, app.state.submitter, keys)


async def test_a_valid_message_is_stored_exactly_as_an_http_filing(setup: Setup) -> None:
    await setup.ingestor.process([setup.record("hotline", key="hl-1")])
    r = await setup.http.post("/v1/complaints", json=BODY, headers={"Authorization": f"Bearer {setup.keys['hotline']}"})
    assert r.status_code == 202
    rows = await setup.pool.fetch("SELECT topic, key, value FROM outbox ORDER BY id")
    assert len(rows) == 2 and {row["topic"] for row in rows} == {"rectify.intake.commands.v1"}
    via_kafka, via_http = (decode_command(row["value"]) for row in rows)
    assert via_kafka.actor == via_http.actor and via_kafka.command_type == via_http.command_type == "FileComplaint"
    differ = {"complainant_ref"}
    assert via_kafka.payload.model_dump(exclude=differ) == via_http.payload.model_dump(exclude=differ)
    submission = await setup.pool.fetchrow("SELECT * FROM submissions WHERE idempotency_key = 'hl-1'")
    assert submission["case_id"] == rows[0]["key"] and submission["status"] == "received"
    assert await setup.count("complainants") == await setup.count("case_access") == 2
    sealed = await setup.pool.fetchval("SELECT sealed FROM complainants LIMIT 1")
    assert "王小明".encode() not in sealed


async def test_redelivery_files_nothing_new(setup: Setup) -> None:
    keyed = setup.record("hotline", key="hl-2")
    unkeyed = setup.record("hotline", BODY | {"description": "另一件事"})
    await setup.ingestor.process([keyed, unkeyed, keyed])  # a duplicate inside the batch, too
    first = await setup.pool.fetch("SELECT submission_id, idempotency_key FROM submissions ORDER BY idempotency_key")
    await setup.ingestor.process([keyed, unkeyed])  # the batch again, as after a crash before the offset commit
    assert (
        await setup.pool.fetch("SELECT submission_id, idempotency_key FROM submissions ORDER BY idempotency_key")
        == first
    )
    assert len(first) == 2 and first[1]["idempotency_key"].startswith("kafka:")
    assert await setup.count("outbox") == 2 and await setup.count("dead_letters") == 0


async def test_every_invalid_kind_is_dead_lettered_with_its_reason_and_no_personal_data(setup: Setup) -> None:
    await setup.ingestor.process([setup.record("hotline", key="taken")])
    invalid = {
        "bad_json": (setup.record("hotline", b"{nope"), ""),
        "invalid_fields": (
            setup.record("hotline", BODY | {"complainant": {"name": "王小明", "phone": "<x>"}}),
            "phone",
        ),
        "invalid_fields/unit": (setup.record("hotline", BODY | {"unit_id": "atlantis"}), "unit_id"),
        "invalid_fields/extra": (setup.record("hotline", BODY | {"admin": True}), "admin"),
        "invalid_fields/every": (  # one reason names every field wrong, the reference checks too
            setup.record(
                "hotline",
                {k: v for k, v in BODY.items() if k != "description"} | {"category": "gossip", "unit_id": "atlantis"},
            ),
            "description: Field required; category: unknown category; see docs/intake.md; unit_id: unknown unit",
        ),
        "unauthenticated": (setup.record(None), "authorization"),
        "unauthenticated/unknown": (setup.record("rk_abc_nope"), "unknown"),
        "unauthenticated/garbled": (setup.record("rk_a\x00b_c"), "unknown"),
        "forbidden": (setup.record("office"), "filing channel"),
        "invalid_header": (setup.record("hotline", key="bad key with spaces"), "idempotency-key"),
        "oversized": (setup.record("hotline", BODY | {"description": "长" * 30000}), "bytes"),
        "idempotency_conflict": (setup.record("hotline", BODY | {"description": "别的"}, key="taken"), "idempotency"),
        "unknown_command": (setup.record("office", {}, x_command="teleport", x_case_id="RC-20260101-000001"), ""),
        "not_found": (setup.record("renwan", {}, x_command="acknowledge", x_case_id="RC-20260101-000001"), "x-case-id"),
    }
    good = setup.record("hotline", key="fine")
    batch = [good, *(record for record, _ in invalid.values())]
    await setup.ingestor.process(batch)

    assert await setup.count("submissions") == 2  # "taken" and "fine"
    rows = await setup.pool.fetch("SELECT kafka_offset, code, value FROM dead_letters ORDER BY kafka_offset")
    assert [r["code"] for r in rows] == [kind.split("/")[0] for kind in invalid]
    sent = await setup.pool.fetch(
        "SELECT topic, key, value, headers FROM outbox WHERE topic = $1 ORDER BY id", DEAD_LETTERS.name
    )
    assert len(sent) == len(invalid)
    by_offset = sorted(((json.loads(row["headers"]), row) for row in sent), key=lambda hr: hr[0]["x-source-offset"])
    for (kind, (record, mentions)), (headers, row) in zip(invalid.items(), by_offset, strict=True):
        assert headers["x-error-code"] == kind.split("/")[0] and mentions in headers["x-error-reason"], headers
        assert (headers["x-source-topic"], headers["x-source-offset"], headers["x-consumer"]) == (
            TOPIC,
            record.offset,
            "intake",
        )
        assert b"13912345678" not in row["value"] and "王小明".encode() not in row["value"]
    await setup.ingestor.process(batch)  # redelivered: nothing new, not even a second dead letter
    assert (await setup.count("submissions"), await setup.count("dead_letters")) == (2, len(invalid))


async def test_lifecycle_commands_go_the_http_way_too(setup: Setup) -> None:
    await setup.ingestor.process([setup.record("hotline", key="to-assign")])
    case_id = await setup.pool.fetchval("SELECT case_id FROM submissions")
    assign = {"responsible_unit_id": "renwan", "first_officer": "仁湾镇 李主任"}
    await setup.ingestor.process(
        [
            setup.record("office", assign, key="assign-1", x_command="assign", x_case_id=case_id),
            setup.record("hotline", assign, x_command="assign", x_case_id=case_id),  # a channel may not assign
        ]
    )
    command = decode_command(await setup.pool.fetchval("SELECT value FROM outbox ORDER BY id DESC LIMIT 1 OFFSET 1"))
    assert (
        command.case_id == case_id
        and command.payload.message_type == "AssignCase"
        and command.actor.role == "supervisor"
    )
    assert await setup.pool.fetchval("SELECT code FROM dead_letters") == "forbidden"


@pytest.fixture(scope="module")
def worker(servers: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Any:
    dsn = asyncio.run(fresh_database(servers["DATABASE_URL"]))
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": servers["KAFKA_BOOTSTRAP_SERVERS"],
        "DATABASE_URL": dsn,
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "INTAKE_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    system = LocalSystem(env, Path(tmp_path_factory.mktemp("ingest-logs")))
    try:
        system.start("intake-worker")
        yield system, dsn
    finally:
        system.stop_all()


def test_the_intake_worker_consumes_the_topic(worker: Any, bootstrap: str) -> None:
    """The real process: headers reach the consumer, the Submitter runs in it, dead letters reach their topic."""
    system, dsn = worker
    marker = uuid.uuid4().hex[:12]

    async def scenario() -> tuple[list[Any], int]:
        await ensure_topics(bootstrap)
        deadline = time.monotonic() + 60
        key = None
        while key is None:  # the worker migrates its schema on start; provision once the tables exist
            try:
                conn = await asyncpg.connect(dsn, server_settings={"search_path": "intake"})
                key = await provision_agency(conn, "hotline", "12345", Role.CHANNEL, channel="hotline_12345")
                await conn.close()
            except asyncpg.UndefinedTableError:
                assert time.monotonic() < deadline, "intake-worker did not migrate"
                await asyncio.sleep(0.2)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            auth = [("authorization", f"Bearer {key}".encode())]
            body = orjson.dumps(BODY | {"description": f"ingest {marker}"})
            for _ in range(3):  # the same message three times: one submission
                await producer.send_and_wait(
                    TOPIC, body, key=marker.encode(), headers=[*auth, ("idempotency-key", marker.encode())]
                )
            bad = await producer.send_and_wait(TOPIC, b"{nope", key=marker.encode(), headers=auth)
        finally:
            await producer.stop()
        conn = await asyncpg.connect(dsn, server_settings={"search_path": "intake"})
        try:
            while (await conn.fetchval("SELECT count(*) FROM dead_letters")) < 1 or not await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE topic = $1 AND published_at IS NOT NULL", DEAD_LETTERS.name
            ):
                system.assert_alive()
                assert time.monotonic() < deadline, "the worker did not consume the topic in time"
                await asyncio.sleep(0.2)
            submissions = await conn.fetch("SELECT * FROM submissions")
        finally:
            await conn.close()
        dead = await consume_all(bootstrap, DEAD_LETTERS.name, 10**6, timeout_ms=2000)
        ours = [
            d
            for d in dead
            if dict(d.headers).get("x-source-topic") == TOPIC.encode()
            and dict(d.headers)["x-source-offset"] == str(bad.offset).encode()
            and dict(d.headers)["x-source-partition"] == str(bad.partition).encode()
        ]
        return submissions, len(ours)

    submissions, dead_letters = asyncio.run(scenario())
    assert len(submissions) == 1 and submissions[0]["idempotency_key"] == marker
    assert dead_letters == 1
