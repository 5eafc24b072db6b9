"""What scoring keeps of each case: folded from its events, one event at a time, in stream order.

The unit charged with the case is the one it is assigned to now. Its ``Spell`` starts at the assignment
(or at the transfer to it) and holds everything the rates need. A transfer closes the spell: the unit it
leaves keeps only its ``PastSpell`` (whether it missed a deadline while it held the case), and the new unit
starts a fresh spell, as if newly assigned. A dismissed or merged case is withdrawn and counts nowhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
import orjson

from services.scoring.domain.events import ScoredEvent
from services.scoring.domain.periods import month_of


class UnscorableEvent(ValueError):
    """An event scoring cannot place, e.g. a stream that does not begin with CaseFiled."""


@dataclass(slots=True)
class Spell:
    """The charged unit's time with the case, from its assignment or the transfer to it."""

    unit_id: str
    assigned_at: datetime
    month: str  # the period the case counts in for this unit: the month of assigned_at (China time)
    acknowledged_at: datetime | None = None
    ack_on_time: bool = False
    missed: bool = False  # missed any deadline: late acknowledgment, late rectification or a recorded breach
    late: bool = False  # missed a rectification deadline: a late submission or a recorded breach of one
    first_inspection: bool | None = None  # the first inspection's outcome: True accepted, False rejected
    redo: int = 0
    reopened: int = 0
    submitted_at: datetime | None = None  # the latest rectification submitted
    resolved_at: datetime | None = None  # when the accepted rectification was submitted, while the acceptance stands
    closed: bool = False
    exposed: bool = False
    satisfied: int = 0
    basically_satisfied: int = 0
    dissatisfied: int = 0

    def copy(self) -> Spell:
        return _copy(self)


@dataclass(frozen=True, slots=True)
class PastSpell:
    """A unit the case was transferred away from: it keeps only the deadlines it missed."""

    unit_id: str
    month: str
    missed: bool


@dataclass(slots=True)
class CaseFacts:
    """A case as scoring sees it. Mutable for speed: ``evolve`` works on a copy, ``apply`` in place."""

    case_id: str
    version: int  # the stream version the case is applied up to (events of every kind): exactly-once by version
    recorded_at: datetime  # the latest recorded_at among those events (it never goes back)
    complained_unit: str  # 被投诉单位
    filed_month: str
    withdrawn: bool = False  # dismissed or merged into another case
    spell: Spell | None = None
    past: tuple[PastSpell, ...] = ()

    @property
    def charged_unit(self) -> str | None:
        return self.spell.unit_id if self.spell is not None and not self.withdrawn else None

    def copy(self) -> CaseFacts:
        twin = _copy(self)
        if self.spell is not None:
            twin.spell = self.spell.copy()
        return twin


T = TypeVar("T", Spell, CaseFacts)


def _copy(item: T) -> T:
    twin = object.__new__(type(item))
    for name in type(item).__slots__:
        object.__setattr__(twin, name, getattr(item, name))
    return twin


def _assigned(facts: CaseFacts, e: ScoredEvent) -> None:
    assert e.unit_id is not None and e.at is not None
    facts.spell = Spell(unit_id=e.unit_id, assigned_at=e.at, month=month_of(e.at))


def _transferred(facts: CaseFacts, e: ScoredEvent) -> None:
    if facts.spell is not None:
        facts.past = (*facts.past, PastSpell(facts.spell.unit_id, facts.spell.month, facts.spell.missed))
    _assigned(facts, e)


def _withdrawn(facts: CaseFacts, e: ScoredEvent) -> None:
    facts.withdrawn = True


def _acknowledged(s: Spell, e: ScoredEvent) -> None:
    s.acknowledged_at = e.at
    s.ack_on_time = bool(e.on_time)
    s.missed = s.missed or not e.on_time


def _submitted(s: Spell, e: ScoredEvent) -> None:
    s.submitted_at = e.at
    if not e.on_time:
        s.late = s.missed = True


def _accepted(s: Spell, e: ScoredEvent) -> None:
    if s.first_inspection is None:
        s.first_inspection = True
    s.resolved_at = s.submitted_at


def _rejected(s: Spell, e: ScoredEvent) -> None:
    if s.first_inspection is None:
        s.first_inspection = False
    s.redo += 1
    s.resolved_at = None


def _exposed(s: Spell, e: ScoredEvent) -> None:
    s.exposed = True


def _rated(s: Spell, e: ScoredEvent) -> None:
    if e.rating == "satisfied":
        s.satisfied += 1
    elif e.rating == "basically_satisfied":
        s.basically_satisfied += 1
    else:
        s.dissatisfied += 1


def _reopened(s: Spell, e: ScoredEvent) -> None:
    s.reopened += 1
    s.closed = False
    s.resolved_at = None


def _closed(s: Spell, e: ScoredEvent) -> None:
    s.closed = True


def _deadline_passed(s: Spell, e: ScoredEvent) -> None:
    s.missed = True
    if e.which == "rectification":
        s.late = True


CASE_STEPS: dict[str, Callable[[CaseFacts, ScoredEvent], None]] = {
    "CaseAssigned": _assigned,
    "CaseTransferred": _transferred,
    "CaseDismissed": _withdrawn,
    "CaseMerged": _withdrawn,
}
SPELL_STEPS: dict[str, Callable[[Spell, ScoredEvent], None]] = {
    "CaseAcknowledged": _acknowledged,
    "RectificationSubmitted": _submitted,
    "RectificationAccepted": _accepted,
    "RectificationRejected": _rejected,
    "CaseExposed": _exposed,
    "SatisfactionRated": _rated,
    "CaseReopened": _reopened,
    "CaseClosed": _closed,
    "DeadlinePassed": _deadline_passed,
}
"""How each kind of event changes the facts (the charged unit's spell, for the second table); the kinds
listed in neither only move the version. A unit's event on a case with no unit charged changes nothing."""

MOVING = frozenset({"CaseFiled", *CASE_STEPS, *SPELL_STEPS})
"""The kinds that may change what a case contributes to the figures."""


def start(event: ScoredEvent) -> CaseFacts:
    """The facts of a case from its first event, which must be CaseFiled."""
    if event.kind != "CaseFiled" or event.unit_id is None or event.at is None:
        raise UnscorableEvent(f"case {event.case_id}: its first event is {event.kind}, not CaseFiled")
    return CaseFacts(
        case_id=event.case_id,
        version=event.version,
        recorded_at=event.recorded_at,
        complained_unit=event.unit_id,
        filed_month=month_of(event.at),
    )


def apply(facts: CaseFacts, event: ScoredEvent) -> None:
    """Apply the case's next event to ``facts``, in place. The projection passes only ``MOVING`` kinds: the
    others change nothing scoring keeps but the version, which the projection moves itself."""
    step = CASE_STEPS.get(event.kind)
    if step is not None:
        step(facts, event)
    else:
        spell_step = SPELL_STEPS.get(event.kind)
        if spell_step is not None and facts.spell is not None:
            spell_step(facts.spell, event)
    facts.version = event.version
    if event.recorded_at > facts.recorded_at:
        facts.recorded_at = event.recorded_at


def evolve(facts: CaseFacts | None, event: ScoredEvent) -> CaseFacts:
    """The facts after ``event``, leaving ``facts`` as they were."""
    if facts is None:
        return start(event)
    twin = facts.copy()
    apply(twin, event)
    return twin


# ---------------------------------------------------------------------------- stored form


def iso(moment: datetime) -> str:
    """The one text form of an instant in scoring's stored facts and hashes: UTC, microseconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _time_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


def _parse_or_none(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def facts_to_json(facts: CaseFacts) -> dict[str, Any]:
    spell = facts.spell
    return {
        "case_id": facts.case_id,
        "version": facts.version,
        "recorded_at": iso(facts.recorded_at),
        "complained_unit": facts.complained_unit,
        "filed_month": facts.filed_month,
        "withdrawn": facts.withdrawn,
        "spell": None if spell is None else _spell_to_json(spell),
        "past": [[p.unit_id, p.month, p.missed] for p in facts.past],
    }


def _spell_to_json(s: Spell) -> dict[str, Any]:
    return {
        "unit_id": s.unit_id,
        "assigned_at": iso(s.assigned_at),
        "month": s.month,
        "acknowledged_at": _time_or_none(s.acknowledged_at),
        "ack_on_time": s.ack_on_time,
        "missed": s.missed,
        "late": s.late,
        "first_inspection": s.first_inspection,
        "redo": s.redo,
        "reopened": s.reopened,
        "submitted_at": _time_or_none(s.submitted_at),
        "resolved_at": _time_or_none(s.resolved_at),
        "closed": s.closed,
        "exposed": s.exposed,
        "satisfied": s.satisfied,
        "basically_satisfied": s.basically_satisfied,
        "dissatisfied": s.dissatisfied,
    }


def facts_from_json(data: dict[str, Any]) -> CaseFacts:
    """Facts from ``facts_to_json`` or from the stored form (``stored_facts``): the same fields."""
    spell = data["spell"]
    return CaseFacts(
        case_id=data["case_id"],
        version=data["version"],
        recorded_at=datetime.fromisoformat(data["recorded_at"]),
        complained_unit=data["complained_unit"],
        filed_month=data["filed_month"],
        withdrawn=data["withdrawn"],
        spell=None if spell is None else _spell_from_json(spell),
        past=tuple(_past_from_json(p) for p in data["past"]),
    )


def _past_from_json(p: list[Any] | dict[str, Any]) -> PastSpell:
    return PastSpell(*p) if isinstance(p, list) else PastSpell(p["unit_id"], p["month"], p["missed"])


_SPELL_TIMES = frozenset(("assigned_at", "acknowledged_at", "submitted_at", "resolved_at"))


def _spell_from_json(d: dict[str, Any]) -> Spell:
    return Spell(**{k: _parse_or_none(v) if k in _SPELL_TIMES else v for k, v in d.items()})


SPELL_FIELDS: tuple[str, ...] = tuple(Spell.__slots__)
_encode = msgspec.json.Encoder().encode  # twice orjson's speed on instants with an offset, the same bytes but for UTC
_SPELL_TIME_AT = tuple(i for i, name in enumerate(SPELL_FIELDS) if name in _SPELL_TIMES)


def stored_facts(facts: CaseFacts) -> bytes:
    """The stored form, compact: ``[version, recorded_at, complained_unit, filed_month, withdrawn, spell, past]``
    with the spell as its fields in declaration order and instants as RFC 3339 with their offset (msgspec's form:
    ``Z`` for UTC, where rows written by earlier versions say ``+00:00``; both read back the same)."""
    s = facts.spell
    spell = None
    if s is not None:
        spell = [
            s.unit_id, s.assigned_at, s.month, s.acknowledged_at, s.ack_on_time, s.missed, s.late, s.first_inspection,
            s.redo, s.reopened, s.submitted_at, s.resolved_at, s.closed, s.exposed, s.satisfied,
            s.basically_satisfied, s.dissatisfied,
        ]  # fmt: skip
    past = [[p.unit_id, p.month, p.missed] for p in facts.past] if facts.past else ()  # (): the same []
    return _encode(
        [facts.version, facts.recorded_at, facts.complained_unit, facts.filed_month, facts.withdrawn, spell, past]
    )


def load_stored_facts(case_id: str, raw: bytes) -> CaseFacts:
    version, recorded_at, complained_unit, filed_month, withdrawn, spell, past = orjson.loads(raw)
    if spell is not None:
        for i in _SPELL_TIME_AT:
            if spell[i] is not None:
                spell[i] = datetime.fromisoformat(spell[i])
    return CaseFacts(
        case_id=case_id,
        version=version,
        recorded_at=datetime.fromisoformat(recorded_at),
        complained_unit=complained_unit,
        filed_month=filed_month,
        withdrawn=withdrawn,
        spell=None if spell is None else Spell(*spell),
        past=tuple(PastSpell(*p) for p in past),
    )
