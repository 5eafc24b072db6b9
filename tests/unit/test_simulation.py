"""A month of cases through the real service layer on the in-memory event store, under a fake clock.

300 complaints against the reference units walk every path of the lifecycle (services/rectification/simulation.py).
The run is deterministic: twice over, the event streams are the same bytes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from functools import cache

import orjson

from services.common import contracts as c
from services.common.contracts import CaseStatus, CommandEnvelope, EventEnvelope, decode_event, encode_event
from services.common.outbox import OutgoingMessage
from services.common.reference import reference
from services.common.topics import PUBLIC_CASES
from services.rectification.adapters.event_store import InMemoryEventStore
from services.rectification.domain.calendar import load_calendar
from services.rectification.domain.case import UNIT_STATUSES, CaseState, Refused, evolve, fold, public_view
from services.rectification.domain.time_limits import load_time_limits
from services.rectification.service import apply_commands, decide_batch
from services.rectification.simulation import PATHS, PRIVATE, Simulation, month_of_cases

SEED = 2026
CASES = 300
BATCH = 40
CALENDAR = load_calendar()
POLICY = load_time_limits()
REF = reference()
UNITS, CATEGORIES = frozenset(REF.units), frozenset(REF.categories)


@dataclass(frozen=True)
class Outcome:
    simulation: Simulation
    streams: dict[str, list[EventEnvelope]]
    outgoing: list[OutgoingMessage]
    refusals: list[tuple[CommandEnvelope, Refused | None]]

    def encoded(self) -> bytes:
        return b"\n".join(encode_event(e) for case_id in sorted(self.streams) for e in self.streams[case_id])

    def events(self, cls: type[c.CaseEvent]) -> list[tuple[str, c.CaseEvent]]:
        return [(e.stream_id, e.payload) for s in self.streams.values() for e in s if isinstance(e.payload, cls)]  # type: ignore[misc]

    def final(self, case_id: str) -> CaseState:
        state = fold(case_id, [e.payload for e in self.streams[case_id]])
        assert state is not None
        return state


async def simulate() -> Outcome:
    simulation = month_of_cases(
        seed=SEED, calendar=CALENDAR, policy=POLICY, units=sorted(UNITS), categories=sorted(CATEGORIES), cases=CASES
    )
    commands = simulation.envelopes()
    store = InMemoryEventStore()
    outgoing: list[OutgoingMessage] = []
    outcomes: list[tuple[CommandEnvelope, Refused | None]] = []
    for i in range(0, len(commands), BATCH):
        batch = commands[i : i + BATCH]
        decisions = await apply_commands(
            store,
            batch,
            clock=lambda batch=batch: batch[-1].issued_at,  # type: ignore[misc]
            units=UNITS,
            categories=CATEGORIES,
            calendar=CALENDAR,
            policy=POLICY,
        )
        outgoing += decisions.outgoing
        outcomes += decisions.outcomes
    return Outcome(simulation, dict(store.streams), outgoing, outcomes)


@cache
def outcome() -> Outcome:
    return asyncio.run(simulate())


def test_the_month_replays_byte_for_byte() -> None:
    again = asyncio.run(simulate())
    assert again.encoded() == outcome().encoded()
    assert [m.value for m in again.outgoing] == [m.value for m in outcome().outgoing]


def test_every_command_applies_except_the_ones_meant_to_be_refused() -> None:
    run = outcome()
    expected = [item.expect for item in run.simulation.schedule]
    got = [refusal.code if refusal else None for _, refusal in run.refusals]
    assert got == expected
    assert Counter(code for code in got if code) == {
        "not_your_case": Counter(run.simulation.paths.values())["transferred"],
        "already_marked": got.count("already_marked"),
        "already_rated": got.count("already_rated"),
    }
    assert got.count("already_marked") > 0 and got.count("already_rated") > 0
    refused = {command.command_id for command, refusal in run.refusals if refusal}
    assert not any(e.causation_id in refused for s in run.streams.values() for e in s)


def test_every_path_and_every_case_event_occurs() -> None:
    run = outcome()
    assert len(run.streams) == CASES
    assert set(PATHS) <= set(run.simulation.paths.values())
    seen = Counter(e.event_type for s in run.streams.values() for e in s)
    case_events = {cls.message_type for cls in c.MESSAGE_CLASSES if issubclass(cls, c.CaseEvent)}
    assert case_events <= set(seen), case_events - set(seen)
    assert seen["CaseFiled"] == CASES


def test_streams_are_whole_and_versions_count_events() -> None:
    for case_id, stream in outcome().streams.items():
        assert stream[0].event_type == "CaseFiled"
        assert [e.stream_version for e in stream] == list(range(1, len(stream) + 1))
        assert outcome().final(case_id).version == len(stream)


def test_outcomes_of_the_paths() -> None:
    run = outcome()
    paths = run.simulation.paths
    finals = {case_id: run.final(case_id) for case_id in run.streams}
    by_status = Counter(state.status for state in finals.values())
    assert by_status[CaseStatus.DISMISSED] == Counter(paths.values())["dismissed"]
    assert by_status[CaseStatus.MERGED] == Counter(paths.values())["merged"]
    for case_id, path in paths.items():
        state = finals[case_id]
        if path == "stalled":
            assert state.status in UNIT_STATUSES and state.marked
        elif path == "reopened":
            assert state.reopen_count >= 1 and state.status is CaseStatus.CLOSED
        elif path == "merged_survivor":
            assert len(state.complainant_refs) == 2
        elif path == "transferred":
            assert state.responsible_unit_id == state.unit_id
    redos = sum(state.redo_count for state in finals.values())
    assert redos == len(run.events(c.RectificationRejected)) > 0


def test_aggregate_rates_look_like_a_real_month() -> None:
    run = outcome()
    acks = [e for _, e in run.events(c.CaseAcknowledged)]
    on_time_acks = sum(e.on_time for e in acks) / len(acks)  # type: ignore[attr-defined]
    rectified = [e for _, e in run.events(c.RectificationSubmitted)]
    on_time_rectified = sum(e.on_time for e in rectified) / len(rectified)  # type: ignore[attr-defined]
    assert 0.7 < on_time_acks < 1 and 0.7 < on_time_rectified < 1
    first_pass = [e.first_pass for _, e in run.events(c.RectificationAccepted)]  # type: ignore[attr-defined]
    assert 0.7 < sum(first_pass) / len(first_pass) < 1
    units = {e.responsible_unit_id for _, e in run.events(c.CaseAssigned)}  # type: ignore[attr-defined]
    assert units == UNITS
    assert {e.policy_version for _, e in run.events(c.CaseAssigned)} == {POLICY.version}  # type: ignore[attr-defined]


def test_each_deadline_breach_is_recorded_once_and_escalation_names_the_late_unit() -> None:
    run = outcome()
    breaches = Counter((case_id, e.which, e.due) for case_id, e in run.events(c.DeadlinePassed))  # type: ignore[attr-defined]
    assert breaches and max(breaches.values()) == 1
    escalations = run.events(c.CaseEscalated)
    assert len(escalations) == Counter(run.simulation.paths.values())["overdue"]
    for case_id, e in escalations:
        assert e.longest_holder == e.holder == f"unit:{run.final(case_id).responsible_unit_id}"  # type: ignore[attr-defined]


def test_the_public_sees_only_approved_text() -> None:
    run = outcome()
    approved = {
        text
        for _, e in run.events(c.CasePublished)
        for text in (e.problem_summary, e.result_summary)  # type: ignore[attr-defined]
    }
    public = [m.value for m in run.outgoing if m.topic == PUBLIC_CASES.name]
    # one public fact per event that changed what the public sees; internal steps add none
    positions = {(decode_event(raw).stream_id, decode_event(raw).stream_version) for raw in public}
    assert len(positions) == len(public) < sum(len(s) for s in run.streams.values())
    assert positions <= {(e.stream_id, e.stream_version) for s in run.streams.values() for e in s}
    assert {case_id for case_id, _ in positions} == set(run.streams)
    for raw in public:
        assert PRIVATE.encode() not in raw and b"cp-" not in raw and "办公室主任".encode() not in raw
        view = decode_event(raw).payload
        assert isinstance(view, c.PublicCaseChangedV2)
        assert {view.problem_summary, view.result_summary} <= approved | {None}


def test_each_public_fact_is_the_public_view_of_its_version() -> None:
    """The worker writes its public facts from field values, each spell's bytes encoded once and copied into later
    facts: every fact holds ``public_view`` of the case at the version it names, written as that model would be."""
    run = outcome()
    states: dict[tuple[str, int], CaseState] = {}
    for case_id, stream in run.streams.items():
        state: CaseState | None = None
        for e in stream:
            state = evolve(state, e.payload, case_id)
            states[(case_id, e.stream_version)] = state
    public = [m.value for m in run.outgoing if m.topic == PUBLIC_CASES.name]
    assert len(public) > 1000 and max(len(decode_event(raw).payload.holds) for raw in public) >= 5  # type: ignore[attr-defined]
    for raw in public:
        fact = decode_event(raw)
        view = public_view(states[(fact.stream_id, fact.stream_version)], CALENDAR)
        assert fact.payload == view
        assert raw == encode_event(fact.model_copy(update={"payload": view}))


def _decoded_both_ways(raw: bytes | dict[str, object], kind: str) -> tuple[object, object]:
    """What ``decode_command`` / ``decode_event`` give (value, or the refusal's code and reason), and what the
    envelope-then-payload validation alone gives."""
    cls, key, base = (
        (c.CommandEnvelope, "command_type", c.Command)
        if kind == "command"
        else (c.EventEnvelope, "event_type", c.DomainEvent)
    )
    decode = c.decode_command if kind == "command" else c.decode_event
    results: list[object] = []
    for way in (decode, lambda r: c._decode_checked(c._load(r), cls, key, base)):
        try:
            model = way(raw)  # type: ignore[no-untyped-call]
            results.append(
                (
                    type(model),
                    model,
                    model.model_fields_set,
                    encode_event(model) if kind == "event" else c.encode_command(model),
                )
            )
        except c.ContractError as exc:
            results.append((exc.code, exc.reason))
    return results[0], results[1]


def test_decoding_in_one_validation_gives_what_validating_payload_and_envelope_gives() -> None:
    """Messages at their type's latest version are validated envelope and payload together: the same models (fields
    set included) and bytes for every command, event and outgoing message of the month, the same refusals (code and
    reason) for invalid ones."""
    run = outcome()
    commands = [c.encode_command(cmd) for cmd in run.simulation.envelopes()]
    events = [encode_event(e) for s in run.streams.values() for e in s] + [m.value for m in run.outgoing]
    for raw in commands:
        fast, checked = _decoded_both_ways(raw, "command")
        assert fast == checked and isinstance(fast[1], c.CommandEnvelope)  # type: ignore[index]
    for raw in events:
        fast, checked = _decoded_both_ways(raw, "event")
        assert fast == checked and isinstance(fast[1], c.EventEnvelope)  # type: ignore[index]
    samples = {orjson.loads(raw)["command_type"]: orjson.loads(raw) for raw in commands}
    broken: list[dict[str, object]] = []
    for good in samples.values():
        payload = good["payload"]
        first = next(iter(payload), "extra")  # some commands carry no fields
        for key in good:
            broken += [{**good, key: bad} for bad in (None, 7, True, "", [1], {"x": 1}, "not-a-uuid")]
            broken.append({k: v for k, v in good.items() if k != key})
        broken += [
            {**good, "extra": 1},
            {**good, "schema_version": 99},
            {**good, "schema_version": True},
            {**good, "command_type": "CaseFiled"},
            {**good, "command_type": "NoSuchCommand"},
            {**good, "issued_at": "2026-03-02T09:00:00"},
            {**good, "payload": {**payload, "extra": 1}},
            {**good, "payload": {k: v for k, v in payload.items() if k != first}},
            {**good, "payload": {**payload, first: None}},
            {**good, "payload": {**payload, first: [1]}},
        ]
    refused = 0
    for data in broken:
        for raw in (orjson.dumps(data), data):
            fast, checked = _decoded_both_ways(raw, "command")  # type: ignore[arg-type]
            assert fast == checked, (data, fast, checked)
            refused += isinstance(fast[0], str)  # type: ignore[index]
    assert refused > len(broken)  # most of them are refused, each with the same reason both ways


def test_messages_are_the_bytes_pydantic_would_write() -> None:
    """``encode_event`` / ``encode_command`` write with msgspec; the bytes must be what pydantic's serialiser writes,
    for every event as decided (time zones from the calendar) and as stored, every outgoing message and every command
    of the month."""
    run = outcome()
    commands = run.simulation.envelopes()
    decided, _, _ = decide_batch(
        {},
        commands,
        now=commands[-1].issued_at,
        units=UNITS,
        categories=CATEGORIES,
        calendar=CALENDAR,
        policy=POLICY,
    )

    def pydantic_json(envelope: c.EventEnvelope | CommandEnvelope) -> bytes:
        return type(envelope).__pydantic_serializer__.to_json(envelope, serialize_as_any=True)

    events = [*decided, *(e for s in run.streams.values() for e in s)]
    outgoing = [decode_event(m.value) for m in run.outgoing]
    assert {type(m.payload) for m in outgoing} >= {c.PublicCaseChangedV2, c.SubmissionAppliedV2, c.SubmissionRefused}
    assert len({type(e.payload) for e in events}) >= 20
    for envelope in [*events, *outgoing]:
        assert encode_event(envelope) == pydantic_json(envelope)
    # what the worker built without validating (envelopes, outcomes) has its fields in the contract's order
    for raw in [m.value for m in run.outgoing] + [encode_event(e) for e in decided]:
        assert encode_event(decode_event(raw)) == raw
    for command in commands:
        assert c.encode_command(command) == pydantic_json(command)
