"""Rates, medians, the composite score and the ranking of one tier for one period. Pure and exact.

Every rate is an exact fraction of two counters; every score is computed from exact fractions and only then
rounded (half to even, 4 decimals). The ranking orders units by the rounded numbers a reader sees, so anyone
can re-rank a published table by hand: composite, then satisfaction, resolution, on-time, response and
first-pass rates, then more cases, then the unit id. ``decided_by`` names the key that put a unit below the
one ranked just above it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from services.rectification.domain.calendar import WorkCalendar
from services.scoring.domain.facts import iso
from services.scoring.domain.figures import (
    ACK_ON_TIME,
    ASSIGNED,
    BASICALLY_SATISFIED,
    CLOSED,
    CLOSED_ON_TIME,
    COUNTERS,
    DURATION_KINDS,
    FIRST_PASS,
    INDEX,
    INSPECTED,
    OPEN_OVERDUE,
    RATED,
    RECTIFICATION,
    RESOLVED,
    RESPONSE,
    SATISFIED,
    WIDTH,
    DurationKey,
)
from services.scoring.domain.formula import DEDUCTIBLE, RATES, Formula
from services.scoring.domain.hashing import digest, fixed
from services.scoring.domain.periods import Period
from services.scoring.domain.projection import ID_HASH_MODULUS, EpochTally

WORKING_DAY = timedelta(days=1)
TIE_BREAKS: tuple[str, ...] = (
    "composite",
    "satisfaction",
    "resolution",
    "on_time",
    "response",
    "first_pass",
    "cases",
    "unit_id",
)


def _rate_terms(c: tuple[int, ...]) -> dict[str, tuple[int, int]]:
    """Each rate's (numerator, denominator) from a unit's counters."""
    return {
        "response": (c[ACK_ON_TIME], c[ASSIGNED]),
        "on_time": (c[CLOSED_ON_TIME], c[CLOSED] + c[OPEN_OVERDUE]),
        "first_pass": (c[FIRST_PASS], c[INSPECTED]),
        "resolution": (c[RESOLVED], c[ASSIGNED]),
        "satisfaction": (c[SATISFIED] + c[BASICALLY_SATISFIED], c[RATED]),
    }


# ---------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Position:
    """The slice of the log a ranking covers: every case event whose effective recorded time is <= ``cutoff``."""

    cutoff: datetime
    events: int
    events_hash: str  # hex of the sum of sha256(event id) over those events, mod 2**256
    settle_rule: str

    def to_json(self) -> dict[str, Any]:
        return {
            "cutoff": iso(self.cutoff),
            "events": self.events,
            "events_hash": self.events_hash,
            "settle_rule": self.settle_rule,
        }


def position_of(period: Period, epochs: Mapping[str, EpochTally], settle_rule: str) -> Position:
    covered = EpochTally()
    for epoch, tally in epochs.items():
        if epoch <= period.last_month:
            covered.add(tally)
    return Position(period.cutoff, covered.events, f"{covered.id_hash_sum % ID_HASH_MODULUS:064x}", settle_rule)


@dataclass(frozen=True, slots=True)
class UnitInput:
    unit_id: str
    counts: tuple[int, ...]
    durations: Mapping[str, tuple[tuple[str, datetime, datetime], ...]]  # kind -> sorted (case, start, end)

    def to_json(self) -> dict[str, Any]:
        return {
            "unit_id": self.unit_id,
            "counts": dict(zip(COUNTERS, self.counts, strict=True)),
            **{kind: [[case, iso(a), iso(b)] for case, a, b in self.durations[kind]] for kind in DURATION_KINDS},
        }


@dataclass(frozen=True, slots=True)
class RankingInput:
    period: Period
    tier: str
    reference_version: str
    position: Position
    units: tuple[UnitInput, ...]  # every unit of the tier, by unit id

    def to_json(self) -> dict[str, Any]:
        return {
            "period": str(self.period),
            "tier": self.tier,
            "reference_version": self.reference_version,
            "position": self.position.to_json(),
            "units": [u.to_json() for u in sorted(self.units, key=lambda u: u.unit_id)],
        }


def gather(
    period: Period,
    tier: str,
    unit_ids: Iterable[str],
    counts: Mapping[tuple[str, str], Iterable[int]],
    durations: Iterable[DurationKey],
    position: Position,
    reference_version: str,
) -> RankingInput:
    """The period's inputs for the tier's units, from month rows: (unit, month) counters and duration items."""
    months = set(period.months)
    units = sorted(set(unit_ids))
    totals = {u: [0] * WIDTH for u in units}
    for (unit, month), row in counts.items():
        if month in months and unit in totals:
            for i, n in enumerate(row):
                totals[unit][i] += n
    spans: dict[tuple[str, str], list[tuple[str, datetime, datetime]]] = {}
    for month, unit, kind, case, start, end in durations:
        if month in months and unit in totals:
            spans.setdefault((unit, kind), []).append((case, start, end))
    return RankingInput(
        period=period,
        tier=tier,
        reference_version=reference_version,
        position=position,
        units=tuple(
            UnitInput(
                unit_id=u,
                counts=tuple(totals[u]),
                durations={k: tuple(sorted(spans.get((u, k), []))) for k in DURATION_KINDS},
            )
            for u in units
        ),
    )


# ---------------------------------------------------------------------------- figures of one unit


@dataclass(frozen=True, slots=True)
class Rate:
    numerator: int
    denominator: int

    @property
    def value(self) -> Fraction | None:
        return Fraction(self.numerator, self.denominator) if self.denominator else None

    @property
    def shown(self) -> Decimal | None:
        value = self.value
        return None if value is None else Decimal(fixed(value))

    def to_json(self) -> dict[str, Any]:
        value = self.value
        return {"num": self.numerator, "den": self.denominator, "value": None if value is None else fixed(value)}


def working_days(calendar: WorkCalendar, start: datetime, end: datetime) -> Fraction:
    return Fraction(calendar.working_time_between(start, end) // timedelta(microseconds=1), 86_400_000_000)


def median(values: list[Fraction]) -> Fraction | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def composite(rates: Mapping[str, Rate], counts: tuple[int, ...], formula: Formula) -> Fraction:
    """100 × the weighted mean of the rates that have a denominator, less the deductions; within [0, 100]."""
    available = [name for name in RATES if rates[name].value is not None]
    weight = sum((Fraction(formula.weights.of(name)) for name in available), Fraction(0))
    base = Fraction(0)
    if weight:
        base = 100 * sum((Fraction(formula.weights.of(n)) * rates[n].value for n in available), Fraction(0)) / weight  # type: ignore[operator]
    cases = counts[ASSIGNED]
    deducted = sum((Fraction(formula.deductions.of(k)) * counts[INDEX[k]] for k in DEDUCTIBLE), Fraction(0))
    score = base - (deducted / cases if cases else 0)
    return min(max(score, Fraction(0)), Fraction(100))


@dataclass(frozen=True, slots=True)
class UnitScore:
    unit_id: str
    counts: tuple[int, ...]
    rates: Mapping[str, Rate]
    medians: Mapping[str, Fraction | None]
    composite: Decimal | None  # None: fewer cases than the formula's minimum, not ranked

    @property
    def cases(self) -> int:
        return self.counts[ASSIGNED]

    def sort_key(self) -> tuple[Any, ...]:
        missing = Decimal(-1)
        shown = [self.rates[name].shown for name in ("satisfaction", "resolution", "on_time", "response", "first_pass")]
        return (
            -(self.composite if self.composite is not None else missing),
            *(-(v if v is not None else missing) for v in shown),
            -self.cases,
            self.unit_id,
        )


def score_unit(unit: UnitInput, formula: Formula, calendar: WorkCalendar) -> UnitScore:
    rates = {name: Rate(*terms) for name, terms in _rate_terms(unit.counts).items()}
    medians = {
        kind: median([working_days(calendar, a, b) for _, a, b in unit.durations[kind]]) for kind in DURATION_KINDS
    }
    eligible = unit.counts[ASSIGNED] >= formula.min_cases
    score = Decimal(fixed(composite(rates, unit.counts, formula))) if eligible else None
    return UnitScore(unit.unit_id, unit.counts, rates, medians, score)


# ---------------------------------------------------------------------------- the ranking


@dataclass(frozen=True, slots=True)
class Ranking:
    document: dict[str, Any]  # exactly what is published, without the result hash
    input_hash: str
    result_hash: str
    basis: tuple[RankingInput, Formula, WorkCalendar] | None = field(default=None, compare=False, repr=False)

    @property
    def rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.document["rows"]
        return rows

    def ranks(self) -> dict[str, int | None]:
        return {row["unit_id"]: row["rank"] for row in self.rows}


def _decided_by(key: tuple[Any, ...], above: tuple[Any, ...]) -> str:
    return next(name for name, a, b in zip(TIE_BREAKS, above, key, strict=True) if a != b)


def _top_size(ranked: int, formula: Formula) -> int:
    share = Fraction(ranked) * Fraction(formula.top_ten.max_share)
    return min(formula.top_ten.size, share.numerator // share.denominator)


def _flags(position: int, ranked: int, score: Decimal, formula: Formula) -> list[str]:
    flags = []
    if position > ranked - formula.bottom.size:
        flags.append("last_places")
    if formula.bottom.below is not None and score < formula.bottom.below:
        flags.append("below_score")
    return flags


def _row(unit: UnitScore, rank: int | None, decided_by: str | None, top: bool, flags: list[str]) -> dict[str, Any]:
    return {
        "unit_id": unit.unit_id,
        "rank": rank,
        "eligible": unit.composite is not None,
        "cases": unit.cases,
        "counts": dict(zip(COUNTERS, unit.counts, strict=True)),
        "rates": {name: unit.rates[name].to_json() for name in RATES},
        "median_response_days": None if unit.medians[RESPONSE] is None else fixed(unit.medians[RESPONSE]),
        "median_rectification_days": (
            None if unit.medians[RECTIFICATION] is None else fixed(unit.medians[RECTIFICATION])
        ),
        "composite": None if unit.composite is None else str(unit.composite),
        "decided_by": decided_by,
        "top_ten": top,
        "flags": flags,
    }


def rank(inputs: RankingInput, formula: Formula, calendar: WorkCalendar) -> Ranking:
    scores = [score_unit(unit, formula, calendar) for unit in inputs.units]
    ranked = sorted((s for s in scores if s.composite is not None), key=UnitScore.sort_key)
    unranked = sorted((s for s in scores if s.composite is None), key=lambda s: s.unit_id)
    top = _top_size(len(ranked), formula)
    rows: list[dict[str, Any]] = []
    for i, unit in enumerate(ranked):
        position = i + 1
        decided_by = _decided_by(unit.sort_key(), ranked[i - 1].sort_key()) if i else None
        flags = [] if position <= top else _flags(position, len(ranked), unit.composite, formula)  # type: ignore[arg-type]
        rows.append(_row(unit, position, decided_by, position <= top, flags))
    rows += [_row(unit, None, None, False, []) for unit in unranked]
    input_hash = digest(inputs.to_json())
    document = {
        "period": str(inputs.period),
        "tier": inputs.tier,
        "formula_version": formula.version,
        "calendar_version": calendar.version,
        "reference_version": inputs.reference_version,
        "position": inputs.position.to_json(),
        "input_hash": input_hash,
        "rows": rows,
        "top_ten": [row["unit_id"] for row in rows if row["top_ten"]],
        "bottom_flags": [{"unit_id": row["unit_id"], "reasons": row["flags"]} for row in rows if row["flags"]],
    }
    return Ranking(document, input_hash, digest(document), (inputs, formula, calendar))


def rank_changes(before: Ranking, after: Ranking) -> list[tuple[str, int | None, int | None]]:
    """(unit, rank before, rank after) for every unit, best new rank first: the what-if comparison."""
    old, new = before.ranks(), after.ranks()
    units = sorted(set(old) | set(new), key=lambda u: (new.get(u) is None, new.get(u) or 0, u))
    return [(u, old.get(u), new.get(u)) for u in units]
