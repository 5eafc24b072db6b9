"""The service layer on the in-memory event store: the same behaviour the PostgreSQL adapter must show."""

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.common.contracts import (
    Actor,
    CommandEnvelope,
    FileComplaint,
    Role,
    decode_command,
    decode_event,
    encode_command,
)
from services.common.reference import reference
from services.common.topics import CASE_EVENTS, OUTCOMES, PUBLIC_CASES
from services.rectification.adapters.event_store import ConcurrencyConflict, InMemoryEventStore
from services.rectification.service import _NS, StateCache, apply_commands, derived_id

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
HOTLINE = Actor(agency_id="hotline-12345", role=Role.CHANNEL)
REF = reference()
UNITS, CATS = frozenset(REF.units), frozenset(REF.categories)


def file_cmd(
    case_id: str = "RC-1", unit: str = "meiwan", actor: Actor = HOTLINE, at: datetime = NOW
) -> CommandEnvelope:
    cid = uuid.uuid4()
    return CommandEnvelope(
        command_id=cid,
        command_type="FileComplaint",
        schema_version=1,
        case_id=case_id,
        issued_at=at,
        actor=actor,
        correlation_id=cid,
        payload=FileComplaint(
            channel="hotline_12345",
            category="inaction",
            unit_id=unit,
            description="私人描述 PRIVATE-TEXT",
            complainant_ref="cp-abc",
        ),
    )


async def run(store: InMemoryEventStore, *cmds: CommandEnvelope, cache: StateCache | None = None):  # type: ignore[no-untyped-def]
    d = await apply_commands(store, list(cmds), clock=lambda: NOW, units=UNITS, categories=CATS, cache=cache)
    return d.outgoing, d.outcomes


async def test_filing_appends_one_event_and_emits_event_public_fact_and_outcome() -> None:
    store = InMemoryEventStore()
    outgoing, outcomes = await run(store, file_cmd())
    assert [e.event_type for e in store.streams["RC-1"]] == ["CaseFiled"]
    assert sorted(m.topic for m in outgoing) == sorted([CASE_EVENTS.name, PUBLIC_CASES.name, OUTCOMES.name])
    assert outcomes[0][1] is None
    public = next(m for m in outgoing if m.topic == PUBLIC_CASES.name)
    assert b"PRIVATE-TEXT" not in public.value and b"cp-abc" not in public.value
    assert decode_event(public.value).payload.status == "filed"  # type: ignore[attr-defined]


async def test_filing_twice_is_refused_with_a_reason() -> None:
    store = InMemoryEventStore()
    await run(store, file_cmd())
    outgoing, outcomes = await run(store, file_cmd())
    assert outcomes[0][1] is not None and outcomes[0][1].code == "already_filed"
    assert [m.topic for m in outgoing] == [OUTCOMES.name]
    assert len(store.streams["RC-1"]) == 1


@pytest.mark.parametrize(
    ("cmd", "code"),
    [
        (file_cmd(unit="atlantis"), "unknown_unit"),
        (file_cmd(actor=Actor(agency_id="x", role=Role.UNIT, unit_id="meiwan")), "forbidden"),
    ],
)
async def test_invalid_filings_are_refused(cmd: CommandEnvelope, code: str) -> None:
    store = InMemoryEventStore()
    _, outcomes = await run(store, cmd)
    assert outcomes[0][1] is not None and outcomes[0][1].code == code
    assert not store.streams.get(cmd.case_id)


async def test_the_same_command_decided_twice_yields_identical_messages() -> None:
    cmd = file_cmd()
    first, _ = await run(InMemoryEventStore(), cmd)
    second, _ = await run(InMemoryEventStore(), cmd)
    assert first == second


def test_derived_ids_are_uuid5_of_source_and_purpose() -> None:
    for _ in range(50):
        source, purpose = uuid.uuid4(), f"event:{uuid.uuid4().int % 7}"
        made, expected = derived_id(source, purpose), uuid.uuid5(_NS, f"{source}:{purpose}")
        assert made == expected and derived_id(str(source), purpose) == expected
        # built without UUID.__init__: every view of it must still be uuid5's
        assert (str(made), made.bytes, hash(made), made.version, made.variant) == (
            str(expected),
            expected.bytes,
            hash(expected),
            5,
            uuid.RFC_4122,
        )
        assert made.is_safe is expected.is_safe and {made: 1}[expected] == 1
    assert derived_id(uuid.UUID(int=0), "公开") == uuid.uuid5(_NS, f"{uuid.UUID(int=0)}:公开")
    assert derived_id(uuid.UUID(int=(1 << 128) - 1), "x") == uuid.uuid5(_NS, f"{uuid.UUID(int=(1 << 128) - 1)}:x")


async def test_a_conflicting_append_is_retried_against_the_new_state() -> None:
    store = InMemoryEventStore()
    cmd_a, cmd_b = file_cmd(), file_cmd()
    real_load = store.load
    raced = False

    async def racing_load(ids, after=None):  # type: ignore[no-untyped-def]
        nonlocal raced
        result = await real_load(ids, after)
        if not raced:
            raced = True
            await run(store, cmd_b)  # another writer gets there between our load and our append
        return result

    store.load = racing_load  # type: ignore[method-assign]
    _, outcomes = await run(store, cmd_a)
    assert outcomes[0][1] is not None and outcomes[0][1].code == "already_filed"
    assert len(store.streams["RC-1"]) == 1


async def test_in_memory_store_rejects_a_version_gap() -> None:
    store = InMemoryEventStore()
    await run(store, file_cmd())
    env = store.streams["RC-1"][0]
    with pytest.raises(ConcurrencyConflict):
        await store.append([env])


async def test_decoded_commands_give_the_bytes_of_the_commands_they_were() -> None:
    """What the worker decides on (a decoded command: its times carry pydantic's TzInfo) gives the messages the
    command itself gives, whether its time came as Z or as +08:00 (the bench and the simulation compare bytes)."""
    for at in (NOW, NOW.astimezone(timezone(timedelta(hours=8)))):
        command = file_cmd(at=at)
        decoded = decode_command(encode_command(command))
        sent, _ = await run(InMemoryEventStore(), command)
        got, _ = await run(InMemoryEventStore(), decoded)
        assert [m.value for m in got] == [m.value for m in sent]
        assert all(at.isoformat()[-6:].replace("+00:00", "Z") in m.value.decode() for m in got)
