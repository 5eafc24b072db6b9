"""The case as a pure decider: ``decide(state, command, ctx) -> events`` and ``evolve(state, event) -> state``.

No clock, database, Kafka or logging in here: time and reference data come in on ``Context``.
A command that does not fit the case's state is refused with ``Refused``, whose reason a
person can act on. Each command and event has exactly one entry in ``DECIDERS`` / ``EVOLVERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from services.common.contracts import (
    Actor,
    CaseFiled,
    CaseStatus,
    Channel,
    Command,
    DomainEvent,
    FileComplaint,
    PublicCaseChanged,
    Role,
    Severity,
    TimelineEntry,
)


class Refused(Exception):
    """A command the case cannot take, with a machine code and a reason for people."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Context:
    case_id: str
    actor: Actor
    now: datetime
    known_units: frozenset[str] = frozenset()
    known_categories: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class CaseState:
    case_id: str
    version: int
    status: CaseStatus
    channel: Channel
    category: str
    unit_id: str
    severity: Severity
    filed_at: datetime
    complainant_refs: tuple[str, ...]
    responsible_unit_id: str | None = None
    deadline: datetime | None = None
    redo_count: int = 0
    problem_summary: str | None = None
    result_summary: str | None = None
    exposed: bool = False
    timeline: tuple[TimelineEntry, ...] = field(default_factory=tuple)


def _require_role(ctx: Context, *roles: Role, action: str) -> None:
    if ctx.actor.role not in roles:
        allowed = " or ".join(r.value for r in roles)
        raise Refused("forbidden", f"cannot {action}: only a {allowed} may do this, not a {ctx.actor.role.value}")


# ---------------------------------------------------------------------------- deciders


def decide_file(state: CaseState | None, cmd: FileComplaint, ctx: Context) -> list[DomainEvent]:
    _require_role(ctx, Role.CHANNEL, action="file a complaint")
    if state is not None:
        raise Refused("already_filed", f"cannot file: case {ctx.case_id} already exists")
    if ctx.known_units and cmd.unit_id not in ctx.known_units:
        raise Refused("unknown_unit", f"cannot file: unit {cmd.unit_id!r} is not a known unit")
    if ctx.known_categories and cmd.category not in ctx.known_categories:
        raise Refused("unknown_category", f"cannot file: category {cmd.category!r} is not a known category")
    return [
        CaseFiled(
            channel=cmd.channel,
            category=cmd.category,
            unit_id=cmd.unit_id,
            cadre=cmd.cadre,
            description=cmd.description,
            location=cmd.location,
            happened_on=cmd.happened_on,
            severity=cmd.severity,
            complainant_refs=(cmd.complainant_ref,),
            filed_at=ctx.now,
        )
    ]


DECIDERS: dict[type[Command], Callable[[Any, Any, Context], list[DomainEvent]]] = {
    FileComplaint: decide_file,
}


def decide(state: CaseState | None, command: Command, ctx: Context) -> list[DomainEvent]:
    decider = DECIDERS.get(type(command))
    if decider is None:
        raise Refused("unsupported", f"cannot {command.message_type}: rectification does not handle this command")
    return decider(state, command, ctx)


# ---------------------------------------------------------------------------- evolvers


def evolve_filed(state: CaseState | None, event: CaseFiled, case_id: str) -> CaseState:
    return CaseState(
        case_id=case_id,
        version=1,
        status=CaseStatus.FILED,
        channel=event.channel,
        category=event.category,
        unit_id=event.unit_id,
        severity=event.severity,
        filed_at=event.filed_at,
        complainant_refs=event.complainant_refs,
        timeline=(TimelineEntry(step="filed", at=event.filed_at),),
    )


EVOLVERS: dict[type[DomainEvent], Callable[[Any, Any, str], CaseState]] = {
    CaseFiled: evolve_filed,
}


def evolve(state: CaseState | None, event: DomainEvent, case_id: str) -> CaseState:
    new = EVOLVERS[type(event)](state, event, case_id)
    return replace(new, version=(state.version if state else 0) + 1)


def fold(case_id: str, events: list[DomainEvent]) -> CaseState | None:
    state: CaseState | None = None
    for event in events:
        state = evolve(state, event, case_id)
    return state


# ---------------------------------------------------------------------------- the public view


def public_view(state: CaseState) -> PublicCaseChanged:
    """What the public may know of the case now: allow-listed fields, approved text only."""
    return PublicCaseChanged(
        case_id=state.case_id,
        status=state.status,
        category=state.category,
        unit_id=state.unit_id,
        responsible_unit_id=state.responsible_unit_id,
        filed_at=state.filed_at,
        deadline=state.deadline,
        redo_count=state.redo_count,
        problem_summary=state.problem_summary,
        result_summary=state.result_summary,
        exposed=state.exposed,
        entry=state.timeline[-1],
    )
