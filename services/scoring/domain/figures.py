"""What one case contributes to the per-unit, per-month figures.

``contributions(facts)`` is the whole of a case's weight in the tables: a counter row per (unit, month) and the
duration items keyed by (month, unit, kind, case, start, end). The projection never adds to a counter directly: it
applies the difference between a case's contributions before and after its new events, so a transfer, a dismissal
or a reopening moves the case's weight exactly, and the tables always equal the sum over the cases. See
docs/scoring.md for each counter's meaning.

A counter row is *packed* into one integer, counter ``i`` in the ``FIELD_BITS`` bits from ``i * FIELD_BITS``
(``pack``): adding or subtracting two packed rows adds or subtracts every counter at once, exactly, because a packed
row is just the polynomial sum of counter * 2**(FIELD_BITS * i). A row of differences may hold negative counters;
``unpack`` reads each counter back as the balanced digit in [-2**(FIELD_BITS - 1), 2**(FIELD_BITS - 1)), which is
exact while every counter stays in that range (about ±5.5e11; a batch or a whole log moves a unit's month by far
less). So a case's change to a unit's month is one subtraction and one addition of integers, not one per counter.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeAlias

from services.scoring.domain.facts import CaseFacts

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

FIELD_BITS = 40
_FIELD = 1 << FIELD_BITS
_HALF = 1 << (FIELD_BITS - 1)
_MASK = _FIELD - 1
UNIT = tuple(1 << (FIELD_BITS * i) for i in range(WIDTH))  # a packed row holding 1 in counter i alone

RowKey: TypeAlias = tuple[str, str]  # (unit, month), as the counters' table is keyed
DurationKey: TypeAlias = tuple[str, str, str, str, datetime, datetime]  # (month, unit, kind, case, start, end)
Contributions: TypeAlias = tuple[dict[RowKey, int], tuple[DurationKey, ...]]  # packed counter rows, durations

(
    _COMPLAINED, _ASSIGNED, _ACKNOWLEDGED, _ACK_ON_TIME, _CLOSED, _CLOSED_ON_TIME, _OPEN_OVERDUE, _INSPECTED,
    _FIRST_PASS, _RESOLVED, _RATED, _SATISFIED, _BASICALLY_SATISFIED, _REDO, _REOPENED, _EXPOSED, _OVERDUE,
    _TRANSFERRED_OUT,
) = UNIT  # fmt: skip


def pack(counters: list[int] | tuple[int, ...]) -> int:
    """The packed row of ``WIDTH`` counters (see the module's docstring)."""
    return sum(n << (FIELD_BITS * i) for i, n in enumerate(counters))


def unpack(packed: int) -> list[int]:
    """The ``WIDTH`` counters of a packed row, each read back as a balanced digit (negative counters included)."""
    out = []
    for _ in range(WIDTH):
        n = ((packed + _HALF) & _MASK) - _HALF
        out.append(n)
        packed = (packed - n) >> FIELD_BITS
    assert packed == 0, "a counter out of the packed range"  # (shows only when it reaches the last counter)
    return out


def contributions(facts: CaseFacts | None) -> Contributions:
    """What the case adds to the tables. Runs once per case and batch: the spell's row is added up from the packed
    units of its counters, only those that are not zero."""
    if facts is None or facts.withdrawn:
        return {}, ()
    filed = (facts.complained_unit, facts.filed_month)
    s = facts.spell
    if s is None:
        rows = {filed: _COMPLAINED}
        durations: tuple[DurationKey, ...] = ()
    else:
        m, u = s.month, s.unit_id
        row = _ASSIGNED
        durations = ()
        if s.acknowledged_at is not None:
            row += _ACKNOWLEDGED + _ACK_ON_TIME if s.ack_on_time else _ACKNOWLEDGED
            durations = ((m, u, RESPONSE, facts.case_id, s.assigned_at, s.acknowledged_at),)
        if s.closed:
            row += _CLOSED if s.late else _CLOSED + _CLOSED_ON_TIME
        elif s.late:
            row += _OPEN_OVERDUE
        if s.first_inspection is not None:
            row += _INSPECTED + _FIRST_PASS if s.first_inspection else _INSPECTED
        if s.resolved_at is not None:
            row += _RESOLVED
            durations += ((m, u, RECTIFICATION, facts.case_id, s.assigned_at, s.resolved_at),)
        rated = s.satisfied + s.basically_satisfied + s.dissatisfied
        if rated:
            row += rated * _RATED + s.satisfied * _SATISFIED + s.basically_satisfied * _BASICALLY_SATISFIED
        if s.redo:
            row += s.redo * _REDO
        if s.reopened:
            row += s.reopened * _REOPENED
        if s.exposed:
            row += _EXPOSED
        if s.missed:
            row += _OVERDUE
        key = (u, m)
        rows = {key: row + _COMPLAINED} if key == filed else {key: row, filed: _COMPLAINED}
    for past in facts.past:  # a unit may have held the case before, even in the same month: add up
        key = (past.unit_id, past.month)
        rows[key] = rows.get(key, 0) + (_TRANSFERRED_OUT + _OVERDUE if past.missed else _TRANSFERRED_OUT)
    return rows, durations
