"""What one case contributes to the per-unit, per-month figures.

``contributions(facts)`` is the whole of a case's weight in the tables: counters keyed by (month, unit,
counter) and duration items keyed by (month, unit, kind, case, start, end). The projection never adds to a
counter directly: it applies the difference between a case's contributions before and after its new events,
so a transfer, a dismissal or a reopening moves the case's weight exactly, and the tables always equal the
sum over the cases. See docs/scoring.md for each counter's meaning.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeAlias

from services.scoring.domain.facts import CaseFacts, Spell

COUNTERS: tuple[str, ...] = (
    "complained",  # cases filed against the unit (被投诉), in the month filed
    "assigned",  # cases the unit is charged with, in the month assigned (or transferred) to it
    "acknowledged",
    "ack_on_time",
    "closed",  # closed (办结) and not reopened since
    "closed_on_time",  # closed without missing a rectification deadline
    "open_overdue",  # not closed, and a rectification deadline was missed
    "inspected",  # inspected at least once
    "first_pass",  # accepted at the first inspection
    "resolved",  # rectification accepted and not reopened since
    "rated",  # satisfaction ratings (one per complainant and rating round)
    "satisfied",
    "basically_satisfied",
    "redo",  # rejections at inspection
    "reopened",  # reopenings (dissatisfied majority or relapse at the follow-up review)
    "exposed",  # cases on the exposure board
    "overdue",  # cases (per unit holding them) with a missed deadline
    "transferred_out",  # cases transferred away from the unit
)
INDEX: dict[str, int] = {name: i for i, name in enumerate(COUNTERS)}
WIDTH = len(COUNTERS)
(
    COMPLAINED,
    ASSIGNED,
    ACKNOWLEDGED,
    ACK_ON_TIME,
    CLOSED,
    CLOSED_ON_TIME,
    OPEN_OVERDUE,
    INSPECTED,
    FIRST_PASS,
    RESOLVED,
    RATED,
    SATISFIED,
    BASICALLY_SATISFIED,
    REDO,
    REOPENED,
    EXPOSED,
    OVERDUE,
    TRANSFERRED_OUT,
) = range(WIDTH)

RESPONSE = "response"  # working days from assignment to acknowledgment
RECTIFICATION = "rectification"  # working days from assignment to the submission of the accepted rectification
DURATION_KINDS = (RESPONSE, RECTIFICATION)

CounterKey: TypeAlias = tuple[str, str, int]  # (month, unit, counter index)
DurationKey: TypeAlias = tuple[str, str, str, str, datetime, datetime]  # (month, unit, kind, case, start, end)
Key: TypeAlias = CounterKey | DurationKey
Contributions: TypeAlias = dict[Key, int]


def _add(out: Contributions, key: CounterKey, n: int = 1) -> None:
    if n:
        out[key] = out.get(key, 0) + n


def contributions(facts: CaseFacts | None) -> Contributions:
    if facts is None or facts.withdrawn:
        return {}
    out = {} if facts.spell is None else _spell_contributions(facts.case_id, facts.spell)
    out[(facts.filed_month, facts.complained_unit, COMPLAINED)] = 1
    for past in facts.past:  # a unit may have held the case before, even in the same month: add up
        _add(out, (past.month, past.unit_id, TRANSFERRED_OUT))
        if past.missed:
            _add(out, (past.month, past.unit_id, OVERDUE))
    return out


def _spell_contributions(case_id: str, s: Spell) -> Contributions:
    m, u = s.month, s.unit_id
    out: Contributions = {(m, u, ASSIGNED): 1}
    if s.acknowledged_at is not None:
        out[(m, u, ACKNOWLEDGED)] = 1
        out[(m, u, RESPONSE, case_id, s.assigned_at, s.acknowledged_at)] = 1
        if s.ack_on_time:
            out[(m, u, ACK_ON_TIME)] = 1
    if s.closed:
        out[(m, u, CLOSED)] = 1
        if not s.late:
            out[(m, u, CLOSED_ON_TIME)] = 1
    elif s.late:
        out[(m, u, OPEN_OVERDUE)] = 1
    if s.first_inspection is not None:
        out[(m, u, INSPECTED)] = 1
        if s.first_inspection:
            out[(m, u, FIRST_PASS)] = 1
    if s.resolved_at is not None:
        out[(m, u, RESOLVED)] = 1
        out[(m, u, RECTIFICATION, case_id, s.assigned_at, s.resolved_at)] = 1
    rated = s.satisfied + s.basically_satisfied + s.dissatisfied
    if rated:
        out[(m, u, RATED)] = rated
        if s.satisfied:
            out[(m, u, SATISFIED)] = s.satisfied
        if s.basically_satisfied:
            out[(m, u, BASICALLY_SATISFIED)] = s.basically_satisfied
    if s.redo:
        out[(m, u, REDO)] = s.redo
    if s.reopened:
        out[(m, u, REOPENED)] = s.reopened
    if s.exposed:
        out[(m, u, EXPOSED)] = 1
    if s.missed:
        out[(m, u, OVERDUE)] = 1
    return out


def difference(before: Contributions, after: Contributions) -> Contributions:
    """``after - before``, without the zeros."""
    out: Contributions = {}
    for key, n in after.items():
        d = n - before.get(key, 0)
        if d:
            out[key] = d
    for key, n in before.items():
        if key not in after:
            out[key] = -n
    return out
