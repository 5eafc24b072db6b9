"""Rectification's service layer: turn a batch of commands into appended events and outgoing messages."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from services.common.contracts import (
    Actor,
    CommandEnvelope,
    EventEnvelope,
    Role,
    SubmissionApplied,
    SubmissionRefused,
    wrap_event,
)
from services.common.outbox import OutgoingMessage
from services.common.topics import CASE_EVENTS, OUTCOMES, PUBLIC_CASES
from services.rectification.adapters.event_store import ConcurrencyConflict, EventStore
from services.rectification.domain.case import CaseState, Context, Refused, decide, evolve, public_view

SYSTEM = Actor(agency_id="rectification", role=Role.SYSTEM)
_NS = uuid.UUID("5b0f3c2e-9a57-4d63-9b1e-2f7a1c0de001")

Clock = Callable[[], datetime]


def derived_id(source: uuid.UUID, purpose: str) -> uuid.UUID:
    """Deterministic ids, so deciding the same command twice yields the same messages."""
    return uuid.uuid5(_NS, f"{source}:{purpose}")


def decide_batch(
    histories: dict[str, list[EventEnvelope]],
    commands: list[CommandEnvelope],
    *,
    now: datetime,
    units: frozenset[str],
    categories: frozenset[str],
) -> tuple[list[EventEnvelope], list[OutgoingMessage], list[tuple[CommandEnvelope, Refused | None]]]:
    """Decide each command in order against the state its case has reached. Pure."""
    states: dict[str, CaseState | None] = {}
    for case_id, history in histories.items():
        state: CaseState | None = None
        for env in history:
            state = evolve(state, env.payload, case_id)
        states[case_id] = state
    appended: list[EventEnvelope] = []
    outgoing: list[OutgoingMessage] = []
    outcomes: list[tuple[CommandEnvelope, Refused | None]] = []
    for cmd in commands:
        state = states.get(cmd.case_id)
        ctx = Context(
            case_id=cmd.case_id, actor=cmd.actor, now=cmd.issued_at, known_units=units, known_categories=categories
        )
        try:
            events = decide(state, cmd.payload, ctx)
        except Refused as refusal:
            outcomes.append((cmd, refusal))
            outgoing.append(_outcome(cmd, refusal, state, now))
            continue
        for i, payload in enumerate(events):
            state = evolve(state, payload, cmd.case_id)
            env = wrap_event(
                payload,
                event_id=derived_id(cmd.command_id, f"event:{i}"),
                stream_id=cmd.case_id,
                stream_version=state.version,
                occurred_at=cmd.issued_at,
                recorded_at=now,
                actor=cmd.actor,
                correlation_id=cmd.correlation_id,
                causation_id=cmd.command_id,
            )
            appended.append(env)
            outgoing.append(OutgoingMessage.event(CASE_EVENTS, env))
            public = wrap_event(
                public_view(state),
                event_id=derived_id(env.event_id, "public"),
                stream_id=cmd.case_id,
                stream_version=state.version,
                occurred_at=cmd.issued_at,
                recorded_at=now,
                actor=SYSTEM,
                correlation_id=cmd.correlation_id,
                causation_id=env.event_id,
            )
            outgoing.append(OutgoingMessage.event(PUBLIC_CASES, public))
        states[cmd.case_id] = state
        outcomes.append((cmd, None))
        outgoing.append(_outcome(cmd, None, state, now, [e.message_type for e in events]))
    return appended, outgoing, outcomes


def _outcome(
    cmd: CommandEnvelope,
    refusal: Refused | None,
    state: CaseState | None,
    now: datetime,
    types: list[str] | None = None,
) -> OutgoingMessage:
    payload: SubmissionApplied | SubmissionRefused
    if refusal is None:
        assert state is not None
        payload = SubmissionApplied(
            submission_id=cmd.command_id, case_id=cmd.case_id, case_version=state.version, events=tuple(types or ())
        )
    else:
        payload = SubmissionRefused(
            submission_id=cmd.command_id, case_id=cmd.case_id, reason=refusal.reason[:200], code=refusal.code
        )
    env = wrap_event(
        payload,
        event_id=derived_id(cmd.command_id, "outcome"),
        stream_id=cmd.case_id,
        stream_version=max(state.version if state else 1, 1),
        occurred_at=cmd.issued_at,
        recorded_at=now,
        actor=SYSTEM,
        correlation_id=cmd.correlation_id,
        causation_id=cmd.command_id,
    )
    return OutgoingMessage.event(OUTCOMES, env)


async def apply_commands(
    store: EventStore,
    commands: list[CommandEnvelope],
    *,
    clock: Clock,
    units: frozenset[str],
    categories: frozenset[str],
    attempts: int = 5,
) -> tuple[list[OutgoingMessage], list[tuple[CommandEnvelope, Refused | None]]]:
    """Load, decide, append; on a version conflict reload and decide again (commands are pure to re-decide)."""
    for attempt in range(attempts):
        histories = await store.load(c.case_id for c in commands)
        appended, outgoing, outcomes = decide_batch(
            histories, commands, now=clock(), units=units, categories=categories
        )
        try:
            await store.append(appended)
        except ConcurrencyConflict:
            if attempt == attempts - 1:
                raise
            continue
        return outgoing, outcomes
    raise AssertionError("unreachable")
