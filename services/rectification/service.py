"""Rectification's service layer: turn a batch of commands into appended events and outgoing messages."""

from __future__ import annotations

import hashlib
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from services.common.contracts import (
    Actor,
    AddCoComplainants,
    CaseMerged,
    CaseStatus,
    CommandEnvelope,
    EventEnvelope,
    MergeCase,
    PublicCaseChangedV2,
    PublicHold,
    Role,
    SubmissionAppliedV2,
    SubmissionRefused,
    encode_trusted_event,
    encode_trusted_part,
    wrap_event,
)
from services.common.outbox import OutgoingMessage
from services.common.topics import CASE_EVENTS, OUTCOMES, PUBLIC_CASES
from services.rectification.adapters.event_store import ConcurrencyConflict, EventStore
from services.rectification.domain.calendar import WorkCalendar
from services.rectification.domain.case import (
    CaseState,
    Context,
    Hold,
    Refused,
    decide,
    evolve,
    public_changed,
    public_fields,
    public_hold_fields,
)
from services.rectification.domain.time_limits import TimeLimitPolicy

SYSTEM = Actor(agency_id="rectification", role=Role.SYSTEM)
_NS = uuid.UUID("5b0f3c2e-9a57-4d63-9b1e-2f7a1c0de001")
_NS_SHA1 = hashlib.sha1(_NS.bytes, usedforsecurity=False)  # uuid5's hash of the namespace, taken once
_V5_CLEAR = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)  # the variant and version bits, cleared ...
_V5_SET = (0x8000 << 48) | (5 << 76)  # ... and set to RFC 4122, version 5: what UUID(bytes=..., version=5) does
_new_uuid = uuid.UUID.__new__
_set = object.__setattr__

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Rules:
    """Everything a decision depends on besides the case: the clock, reference data, calendar and time limits."""

    clock: Clock
    units: frozenset[str]
    categories: frozenset[str]
    calendar: WorkCalendar | None = None
    policy: TimeLimitPolicy | None = None

    def kwargs(self) -> dict[str, object]:
        return {
            "clock": self.clock,
            "units": self.units,
            "categories": self.categories,
            "calendar": self.calendar,
            "policy": self.policy,
        }


def derived_id(source: uuid.UUID | str, purpose: str) -> uuid.UUID:
    """Deterministic ids, so deciding the same command twice yields the same messages: ``uuid5(_NS, "source:purpose")``,
    continuing a copy of the namespace's hash instead of hashing the namespace again (three ids a command).

    ``source`` may be given as its text (``str(uuid)``) when a caller derives several ids from it. The UUID is filled
    as ``UUID.__setstate__`` (unpickling) fills it, without ``UUID.__init__``'s argument checks (its cost was most of
    this function's): the same ``int`` and ``is_safe`` slots, so the same value, text, hash and ordering."""
    digest = _NS_SHA1.copy()
    digest.update(f"{source}:{purpose}".encode())
    made = _new_uuid(uuid.UUID)
    _set(made, "int", (int.from_bytes(digest.digest()[:16]) & _V5_CLEAR) | _V5_SET)
    _set(made, "is_safe", uuid.SafeUUID.unknown)
    return made


_ENCODED_HOLDS: dict[int, tuple[Hold, WorkCalendar | None, msgspec.Raw]] = {}
_ENCODED_HOLDS_KEPT = 1 << 17


def encoded_hold(hold: Hold, calendar: WorkCalendar | None = None) -> msgspec.Raw:
    """A spell's public form as the bytes ``public_hold`` would be written as, encoded once: a case's earlier spells
    are the same ``Hold`` objects in each of its later states, so each later public fact copies them (remembered by
    identity, with the spell kept so its id cannot be reused while its entry lives, as ``public_hold`` is)."""
    found = _ENCODED_HOLDS.get(id(hold))
    if found is not None and found[0] is hold and found[1] is calendar:
        return found[2]
    encoded = encode_trusted_part(PublicHold, public_hold_fields(hold, calendar))
    if len(_ENCODED_HOLDS) >= _ENCODED_HOLDS_KEPT:
        _ENCODED_HOLDS.clear()
    _ENCODED_HOLDS[id(hold)] = (hold, calendar, encoded)
    return encoded


@dataclass
class Decisions:
    """What deciding a batch produced: events to append, messages to send, each command's outcome, final states
    (and the states the batch started from)."""

    appended: list[EventEnvelope] = field(default_factory=list)
    encoded: list[bytes] = field(default_factory=list)  # encode_event of each appended envelope
    outgoing: list[OutgoingMessage] = field(default_factory=list)
    outcomes: list[tuple[CommandEnvelope, Refused | None]] = field(default_factory=list)
    states: dict[str, CaseState | None] = field(default_factory=dict)
    before: dict[str, CaseState | None] = field(default_factory=dict)


def decide_batch(
    histories: dict[str, list[EventEnvelope]],
    commands: list[CommandEnvelope],
    *,
    now: datetime,
    units: frozenset[str],
    categories: frozenset[str],
    calendar: WorkCalendar | None = None,
    policy: TimeLimitPolicy | None = None,
    known: dict[str, CaseState | None] | None = None,
) -> tuple[list[EventEnvelope], list[OutgoingMessage], list[tuple[CommandEnvelope, Refused | None]]]:
    """Decide each command in order against the state its case has reached. Pure.

    Without ``calendar`` and ``policy`` only filing works; commands that set deadlines are refused (``no_policy``).
    """
    d = decide_commands(
        histories, commands, now=now, units=units, categories=categories, calendar=calendar, policy=policy, known=known
    )
    return d.appended, d.outgoing, d.outcomes


def decide_commands(
    histories: dict[str, list[EventEnvelope]],
    commands: list[CommandEnvelope],
    *,
    now: datetime,
    units: frozenset[str],
    categories: frozenset[str],
    calendar: WorkCalendar | None = None,
    policy: TimeLimitPolicy | None = None,
    known: dict[str, CaseState | None] | None = None,
) -> Decisions:
    """``known`` holds states already folded (the hot cache); ``histories`` the events after them."""
    out = Decisions(states=dict(known or {}))
    for case_id, history in histories.items():
        state = out.states.get(case_id)
        for env in history:
            state = evolve(state, env.payload, case_id)
        out.states[case_id] = state
    out.before = dict(out.states)
    queue: deque[tuple[CommandEnvelope, bool]] = deque((cmd, True) for cmd in commands)
    while queue:
        cmd, submitted = queue.popleft()
        command_id = str(cmd.command_id)  # the source of two or three derived ids
        state = out.states.get(cmd.case_id)
        ctx = Context(
            case_id=cmd.case_id,
            actor=cmd.actor,
            now=cmd.issued_at,
            known_units=units,
            known_categories=categories,
            calendar=calendar,
            policy=policy,
        )
        try:
            if isinstance(cmd.payload, MergeCase):
                _check_survivor(out.states.get(cmd.payload.into_case_id), cmd.payload.into_case_id)
            events = decide(state, cmd.payload, ctx)
        except Refused as refusal:
            if submitted:
                out.outcomes.append((cmd, refusal))
                out.outgoing.append(_outcome(cmd, command_id, refusal, state, now))
            continue
        for i, payload in enumerate(events):
            before, state = state, evolve(state, payload, cmd.case_id)
            env = wrap_event(
                payload,
                event_id=derived_id(command_id, f"event:{i}"),
                stream_id=cmd.case_id,
                stream_version=state.version,
                occurred_at=cmd.issued_at,
                recorded_at=now,
                actor=cmd.actor,
                correlation_id=cmd.correlation_id,
                causation_id=cmd.command_id,
                validate=False,
            )
            message = OutgoingMessage.event(CASE_EVENTS, env)
            out.appended.append(env)
            out.encoded.append(message.value)
            out.outgoing.append(message)
            if public_changed(before, state):  # internal steps (an extension request, a co-complainant) show nothing
                public = encode_trusted_event(  # public_view(state) in its envelope, encoded without the two models
                    PublicCaseChangedV2,
                    public_fields(state, calendar, encoded_hold),
                    event_id=derived_id(env.event_id, "public"),
                    stream_id=cmd.case_id,
                    stream_version=state.version,
                    occurred_at=cmd.issued_at,
                    recorded_at=now,
                    actor=SYSTEM,
                    correlation_id=cmd.correlation_id,
                    causation_id=env.event_id,
                )
                out.outgoing.append(OutgoingMessage(PUBLIC_CASES.name, cmd.case_id, public))
            if isinstance(payload, CaseMerged):
                queue.appendleft((_link_co_complainants(cmd, payload), False))
        out.states[cmd.case_id] = state
        if submitted:
            out.outcomes.append((cmd, None))
            out.outgoing.append(_outcome(cmd, command_id, None, state, now, [e.message_type for e in events]))
    return out


def _check_survivor(survivor: CaseState | None, case_id: str) -> None:
    if survivor is None:
        raise Refused("no_case", f"cannot merge: there is no case {case_id} to merge into")
    if survivor.status in (CaseStatus.CLOSED, CaseStatus.DISMISSED, CaseStatus.MERGED):
        raise Refused("invalid_state", f"cannot merge: case {case_id} is {survivor.status.value}")


def _link_co_complainants(merge: CommandEnvelope, merged: CaseMerged) -> CommandEnvelope:
    """Merging keeps the duplicate's complainants: the surviving case links them, in the same transaction."""
    command_id = derived_id(merge.command_id, "link-co-complainants")
    return CommandEnvelope(
        command_id=command_id,
        command_type=AddCoComplainants.message_type,
        schema_version=AddCoComplainants.schema_version,
        case_id=merged.into_case_id,
        issued_at=merge.issued_at,
        actor=merge.actor,
        correlation_id=merge.correlation_id,
        payload=AddCoComplainants(complainant_refs=merged.complainant_refs, merged_from=merge.case_id),
    )


def _outcome(
    cmd: CommandEnvelope,
    command_id: str,
    refusal: Refused | None,
    state: CaseState | None,
    now: datetime,
    types: list[str] | None = None,
) -> OutgoingMessage:
    event_id = derived_id(command_id, "outcome")
    version = max(state.version if state else 1, 1)
    if refusal is None:
        assert state is not None
        applied = {  # SubmissionAppliedV2, encoded in its envelope without building either model
            "submission_id": cmd.command_id,
            "case_id": cmd.case_id,
            "case_version": state.version,
            "events": tuple(types or ()),
            "status": state.status,
            "responsible_unit_id": state.responsible_unit_id,
        }
        value = encode_trusted_event(
            SubmissionAppliedV2,
            applied,
            event_id=event_id,
            stream_id=cmd.case_id,
            stream_version=version,
            occurred_at=cmd.issued_at,
            recorded_at=now,
            actor=SYSTEM,
            correlation_id=cmd.correlation_id,
            causation_id=cmd.command_id,
        )
        return OutgoingMessage(OUTCOMES.name, cmd.case_id, value)
    refused = SubmissionRefused(
        submission_id=cmd.command_id, case_id=cmd.case_id, reason=refusal.reason[:200], code=refusal.code
    )
    env = wrap_event(
        refused,
        event_id=event_id,
        stream_id=cmd.case_id,
        stream_version=version,
        occurred_at=cmd.issued_at,
        recorded_at=now,
        actor=SYSTEM,
        correlation_id=cmd.correlation_id,
        causation_id=cmd.command_id,
        validate=False,
    )
    return OutgoingMessage.event(OUTCOMES, env)


class StateCache:
    """Hot case states kept by the worker that owns their partitions, so a command loads only newer events.

    Bounded (least recently used go first). Updated only after the transaction that produced the states
    commits; a conflict drops the cases involved, which are then reloaded from the store.
    """

    def __init__(self, max_cases: int = 200_000) -> None:
        self.max_cases = max_cases
        self._states: OrderedDict[str, CaseState] = OrderedDict()

    def get(self, case_ids: Iterable[str]) -> dict[str, CaseState | None]:
        found: dict[str, CaseState | None] = {}
        for case_id in case_ids:
            state = self._states.get(case_id)
            if state is not None:
                self._states.move_to_end(case_id)
                found[case_id] = state
        return found

    def put(self, states: dict[str, CaseState | None]) -> None:
        for case_id, state in states.items():
            if state is None:
                continue
            self._states[case_id] = state
            self._states.move_to_end(case_id)
        while len(self._states) > self.max_cases:
            self._states.popitem(last=False)

    def drop(self, case_ids: Iterable[str]) -> None:
        for case_id in case_ids:
            self._states.pop(case_id, None)

    def clear(self) -> None:
        """Forget every state: after a rebalance (the partitions may now be someone else's) or a failed batch."""
        self._states.clear()

    def __len__(self) -> int:
        return len(self._states)


async def load_states(store: EventStore, case_ids: Iterable[str]) -> dict[str, CaseState | None]:
    states: dict[str, CaseState | None] = {}
    for case_id, history in (await store.load(case_ids)).items():
        state: CaseState | None = None
        for env in history:
            state = evolve(state, env.payload, case_id)
        states[case_id] = state
    return states


def touched_cases(commands: list[CommandEnvelope]) -> set[str]:
    """Every stream a batch may read or write: the commands' cases and the cases merged into."""
    ids = {c.case_id for c in commands}
    ids |= {c.payload.into_case_id for c in commands if isinstance(c.payload, MergeCase)}
    return ids


async def apply_commands(
    store: EventStore,
    commands: list[CommandEnvelope],
    *,
    clock: Clock,
    units: frozenset[str],
    categories: frozenset[str],
    attempts: int = 5,
    calendar: WorkCalendar | None = None,
    policy: TimeLimitPolicy | None = None,
    cache: StateCache | None = None,
) -> Decisions:
    """Load, decide, append; on a version conflict reload and decide again (commands are pure to re-decide).

    With a ``cache``, only events newer than the cached states are loaded; the caller puts
    ``Decisions.states`` into the cache once the surrounding transaction has committed.
    """
    ids = touched_cases(commands)
    for attempt in range(attempts):
        known = cache.get(ids) if cache is not None else {}
        histories = await store.load(ids, after={k: s.version for k, s in known.items() if s is not None})
        decisions = decide_commands(
            histories,
            commands,
            now=clock(),
            units=units,
            categories=categories,
            calendar=calendar,
            policy=policy,
            known=known,
        )
        try:
            await store.append(decisions.appended, decisions.encoded)
        except ConcurrencyConflict:
            if cache is not None:
                cache.drop(ids)
            if attempt == attempts - 1:
                raise
            continue
        return decisions
    raise AssertionError("unreachable")
