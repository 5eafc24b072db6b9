"""Poison on every consumed topic, against the real broker and the real services.

For each topic a service consumes, every kind of poison is produced, all under one key (so on one partition),
followed by a valid message under the same key. What this proves, per topic:
- each poison message is dead-lettered (the dead-letter topic carries its source partition and offset, its error
  code and reason in headers) and counted in ``rectify_dead_letters_total`` of the consuming process, or, when it
  is a well-formed command that the case cannot take, refused with its reason;
- the valid message produced after them is applied: the partition kept moving.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from services.cli.local import LocalSystem
from services.common.contracts import (
    AcceptRectification,
    Actor,
    CaseStatus,
    CommandEnvelope,
    FileComplaint,
    RectificationAccepted,
    Role,
    SubmissionRefused,
    encode_command,
    encode_event,
    wrap_event,
)
from services.common.topics import CASE_EVENTS, COMMANDS, DEAD_LETTERS, OUTCOMES, PUBLIC_CASES, RANKINGS, SUBMISSIONS_IN
from tests.reliability.conftest import COMPLAINT, Agencies, Figures, bearer, wait_for
from tests.unit.test_publicity_decoders import case_filed, public_fact, ranking

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]

CONSUMER = {
    SUBMISSIONS_IN.name: "intake-worker",
    COMMANDS.name: "rectification-worker",
    CASE_EVENTS.name: "scoring-worker",
    OUTCOMES.name: "intake-worker",
    PUBLIC_CASES.name: "publicity-worker",
    RANKINGS.name: "publicity-worker",
}
OVERSIZED = 1024 * 1024 + 1  # above every consumer's limit (intake's ingestion topic allows 64 KiB)
SYSTEM = Actor(agency_id="rectification", role=Role.SYSTEM)
NOW = datetime.now(UTC)


@dataclass
class Poison:
    kind: str
    value: bytes
    code: str | None  # the dead letter's x-error-code; None: refused by the decider instead
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def envelope(payload: Any, stream_id: str, version: int = 1, event_id: uuid.UUID | None = None) -> dict[str, Any]:
    env = wrap_event(
        payload,
        stream_id=stream_id,
        stream_version=version,
        occurred_at=NOW,
        recorded_at=NOW,
        actor=SYSTEM,
        correlation_id=uuid.uuid4(),
        causation_id=None,
        event_id=event_id,
    )
    return orjson.loads(encode_event(env))  # type: ignore[no-any-return]


def command(payload: Any, case_id: str, agency: str, role: Role) -> dict[str, Any]:
    cid = uuid.uuid4()
    env = CommandEnvelope(
        command_id=cid,
        command_type=payload.message_type,
        schema_version=payload.schema_version,
        case_id=case_id,
        issued_at=NOW,
        actor=Actor(agency_id=agency, role=role),
        correlation_id=cid,
        payload=payload,
    )
    return orjson.loads(encode_command(env))  # type: ignore[no-any-return]


def the_usual_poison(valid: dict[str, Any], type_key: str) -> list[Poison]:
    """Bad JSON, an unknown type, a wrong schema version and an oversized message, from one valid message."""
    return [
        Poison("bad JSON", b'{"event_id": "not closed', "bad_json"),
        Poison("unknown type", orjson.dumps(valid | {type_key: "Teleported"}), "unknown_type"),
        Poison("wrong schema version", orjson.dumps(valid | {"schema_version": 99}), "unknown_version"),
        Poison("oversized", orjson.dumps(valid | {"padding": "x" * OVERSIZED}), "oversized"),
    ]


def outcome_label(topic: str, p: Poison) -> str:
    if p.code is not None:
        return f"dead-lettered ({p.code})"
    if topic == PUBLIC_CASES.name:
        return "ignored: older than the version the projection holds"
    return "refused by the case decider, with its reason"


def dead_letter_counts(system: LocalSystem, process: str) -> dict[tuple[str, str], float]:
    text = httpx.get(f"http://127.0.0.1:{system.running[process].metrics_port}/metrics", timeout=5).text
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "rectify_dead_letters":
            for s in family.samples:
                if s.name == "rectify_dead_letters_total":
                    counts[(s.labels["topic"], s.labels["code"])] = s.value
    return counts


async def produce(bootstrap: str, topic: str, key: bytes, messages: list[tuple[bytes, list[tuple[str, bytes]]]]):  # type: ignore[no-untyped-def]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 * 1024 * 1024, acks="all")
    await producer.start()
    try:
        return [await producer.send_and_wait(topic, v, key=key, headers=h) for v, h in messages]
    finally:
        await producer.stop()


async def dead_letters_of(bootstrap: str, wanted: set[tuple[str, int, int]], within: float) -> dict[tuple, dict]:  # type: ignore[type-arg]
    """The dead letters whose (source topic, partition, offset) are wanted, by that triple; their headers."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_bytes=8 << 20)
    await consumer.start()
    found: dict[tuple, dict] = {}  # type: ignore[type-arg]
    try:
        tp = TopicPartition(DEAD_LETTERS.name, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + within
        while wanted - found.keys() and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    h = {k: v.decode() for k, v in r.headers}
                    source = (h["x-source-topic"], int(h["x-source-partition"]), int(h["x-source-offset"]))
                    if source in wanted:
                        found[source] = h
    finally:
        await consumer.stop()
    return found


async def fetchval(dsn: str, schema: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def test_poison_on_every_consumed_topic_is_dead_lettered_or_refused_and_the_partition_moves_on(
    system: LocalSystem, agencies: Agencies, keys: dict[str, str], figures: Figures
) -> None:
    bootstrap = system.base_env["KAFKA_BOOTSTRAP_SERVERS"]
    dsn = system.base_env["DATABASE_URL"]
    run = uuid.uuid4().hex[:8]

    # a real case, filed and applied, for the impossible transitions that need one
    filed = agencies.file("hotline", COMPLAINT | {"description": f"poison run {run}"})
    assert agencies.outcome("hotline", filed["submission_id"])["status"] == "applied"
    case_id = filed["case_id"]

    auth = [("authorization", f"Bearer {keys['hotline']}".encode())]
    office = [("authorization", f"Bearer {keys['office']}".encode())]
    submission_body = {k: v for k, v in COMPLAINT.items()}
    valid_command = command(
        FileComplaint(
            channel="hotline_12345",
            category="inaction",
            unit_id="meiwan",
            description="有效命令",
            complainant_ref="cp-poison",
        ),
        f"RC-20260101-9{run[:5].translate(str.maketrans('abcdef', '123456'))}",
        "rel-hotline",
        Role.CHANNEL,
    )
    accept_too_early = command(AcceptRectification(), case_id, "rel-office", Role.SUPERVISOR)
    valid_event = envelope(case_filed(), f"RC-poison-{run}")
    unfiled_accept = envelope(RectificationAccepted(first_pass=True, at=NOW), f"RC-never-filed-{run}", version=5)
    valid_outcome = envelope(
        SubmissionRefused(submission_id=uuid.uuid4(), case_id=case_id, code="x", reason="a valid outcome"), case_id
    )
    second_outcome = envelope(
        SubmissionRefused(
            submission_id=uuid.UUID(filed["submission_id"]), case_id=case_id, code="forged", reason="a second verdict"
        ),
        case_id,
    )
    public = public_fact().model_copy(update={"case_id": f"RC-pub-{run}"})
    valid_public = envelope(public, f"RC-pub-{run}", version=2)
    stale_public = envelope(public.model_copy(update={"status": CaseStatus.DISMISSED}), f"RC-pub-{run}", version=1)
    valid_ranking = envelope(ranking(), "ranking-2025-03-township")

    plans: dict[str, tuple[list[Poison], dict[str, Any] | bytes, list[tuple[str, bytes]]]] = {
        SUBMISSIONS_IN.name: (
            [
                Poison("bad JSON", b"{nope", "bad_json", auth),
                Poison("unknown type", b"{}", "unknown_command", [*office, ("x-command", b"teleport")]),
                Poison(
                    "wrong schema version",
                    orjson.dumps(submission_body | {"schema_version": 2}),
                    "invalid_fields",
                    auth,
                ),
                Poison("oversized", orjson.dumps(submission_body | {"description": "长" * 30000}), "oversized", auth),
                Poison(
                    "impossible transition",
                    b"{}",
                    None,
                    [
                        *office,
                        ("x-command", b"accept"),
                        ("x-case-id", case_id.encode()),
                        ("idempotency-key", f"early-{run}".encode()),
                    ],
                ),
            ],
            orjson.dumps(submission_body | {"description": f"after the poison {run}"}),
            [*auth, ("idempotency-key", f"valid-{run}".encode())],
        ),
        COMMANDS.name: (
            [
                *the_usual_poison(valid_command, "command_type"),
                Poison("impossible transition", orjson.dumps(accept_too_early), None),
            ],
            valid_command,
            [],
        ),
        CASE_EVENTS.name: (
            [
                *the_usual_poison(valid_event, "event_type"),
                Poison("impossible transition", orjson.dumps(unfiled_accept), "handler_error"),
            ],
            valid_event,
            [],
        ),
        OUTCOMES.name: (
            [
                *the_usual_poison(valid_outcome, "event_type"),
                Poison("impossible transition", orjson.dumps(second_outcome), "handler_error"),
            ],
            valid_outcome,
            [],
        ),
        PUBLIC_CASES.name: (
            [
                *the_usual_poison(valid_public, "event_type"),
                Poison("impossible transition", orjson.dumps(stale_public), None),
            ],
            valid_public,
            [],
        ),
        RANKINGS.name: (the_usual_poison(valid_ranking, "event_type"), valid_ranking, []),
    }
    before = {p: dead_letter_counts(system, p) for p in set(CONSUMER.values())}
    sent: dict[str, list[Any]] = {}
    for topic, (poison, valid, valid_headers) in plans.items():
        messages = [(p.value, p.headers) for p in poison]
        value = valid if isinstance(valid, bytes) else orjson.dumps(valid)
        # the public fact's newer version goes first: the stale one after it is the impossible transition
        if topic == PUBLIC_CASES.name:
            messages.insert(0, (value, valid_headers))
        else:
            messages.append((value, valid_headers))
        sent[topic] = asyncio.run(produce(bootstrap, topic, f"poison-{run}".encode(), messages))
        assert len({m.partition for m in sent[topic]}) == 1

    # every poison message that should be dead-lettered is, with its reason, from the right consumer
    wanted: dict[tuple[str, int, int], tuple[str, Poison]] = {}
    for topic, (poison, _, _) in plans.items():
        metas = sent[topic][1:] if topic == PUBLIC_CASES.name else sent[topic][: len(poison)]
        for p, meta in zip(poison, metas, strict=True):
            if p.code is not None:
                wanted[(topic, meta.partition, meta.offset)] = (topic, p)
    found = asyncio.run(dead_letters_of(bootstrap, set(wanted), within=90))
    missing = {(t, p.kind) for source, (t, p) in wanted.items() if source not in found}
    assert not missing, f"not dead-lettered: {sorted(missing)}"
    for source, (topic, p) in wanted.items():
        h = found[source]
        assert h["x-error-code"] == p.code, (topic, p.kind, h)
        assert h["x-error-reason"] and h["x-consumer"] == CONSUMER[topic].split("-")[0], (topic, p.kind, h)

    # counted, by the consuming process
    after = {p: dead_letter_counts(system, p) for p in set(CONSUMER.values())}
    for topic, (poison, _, _) in plans.items():
        proc = CONSUMER[topic]
        for code in {p.code for p in poison if p.code}:
            expected = sum(1 for p in poison if p.code == code)
            delta = after[proc].get((topic, code), 0) - before[proc].get((topic, code), 0)
            assert delta == expected, (topic, code, delta, expected)

    # the impossible transitions that are well-formed commands: refused, with the reason where the sender looks
    early = wait_for(
        lambda: asyncio.run(
            fetchval(dsn, "intake", "SELECT submission_id FROM submissions WHERE idempotency_key = $1", f"early-{run}")
        ),
        90,
        "the ingested accept",
    )
    refused = agencies.outcome("office", str(early))
    assert refused["status"] == "refused" and "cannot accept" in refused["reason"], refused
    assert (
        asyncio.run(
            fetchval(
                dsn,
                "rectification",
                "SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'RectificationAccepted'",
                case_id,
            )
        )
        == 0
    )

    # the partition moved on: the valid message after the poison was applied on every topic
    def applied(topic: str) -> bool:
        if topic == SUBMISSIONS_IN.name:
            sql, arg, schema = "SELECT count(*) FROM submissions WHERE idempotency_key = $1", f"valid-{run}", "intake"
        else:
            valid = plans[topic][1]
            assert isinstance(valid, dict)
            mid = uuid.UUID(valid.get("event_id") or valid["command_id"])
            schema = {"rectification-worker": "rectification", "scoring-worker": "scoring"}.get(
                CONSUMER[topic], CONSUMER[topic].split("-")[0]
            )
            sql, arg = "SELECT count(*) FROM processed_messages WHERE message_id = $1", mid
            if schema == "scoring":  # exactly once by version: its case is applied up to it
                sql = "SELECT count(*) FROM case_facts WHERE case_id = $1 AND version >= $2"
                return bool(asyncio.run(fetchval(dsn, schema, sql, valid["stream_id"], valid["stream_version"])))
        return bool(asyncio.run(fetchval(dsn, schema, sql, arg)))

    for topic in plans:
        wait_for(lambda t=topic: applied(t), 60, f"the valid message on {topic}")  # type: ignore[misc]
    # the command decided too early was refused, and the refusal (with its reason) left for the submitter
    refusal = asyncio.run(
        fetchval(
            dsn,
            "rectification",
            "SELECT convert_from(value, 'UTF8') FROM outbox WHERE topic = $1 AND convert_from(value, 'UTF8') LIKE $2",
            OUTCOMES.name,
            f"%{accept_too_early['command_id']}%",
        )
    )
    assert refusal is not None, "no outcome for the early accept"
    refusal_message = orjson.loads(refusal)
    assert refusal_message["event_type"] == "SubmissionRefused", refusal_message
    assert "cannot accept" in refusal_message["payload"]["reason"], refusal_message
    # the stale public fact did not overwrite the newer one; the forged second verdict did not change the status
    assert asyncio.run(fetchval(dsn, "publicity", "SELECT version FROM cases WHERE case_id = $1", f"RC-pub-{run}")) == 2
    own = httpx.get(f"{agencies.intake}/v1/submissions/{filed['submission_id']}", headers=bearer(keys["hotline"]))
    assert own.json()["status"] == "applied"

    figures["poison"] = {
        topic: {
            "consumer": CONSUMER[topic],
            "poison": {p.kind: outcome_label(topic, p) for p in poison},
            "dead_lettered": sum(1 for p in poison if p.code),
            "refused": sum(1 for p in poison if p.code is None),
            "valid_after_applied": True,
        }
        for topic, (poison, _, _) in plans.items()
    }
