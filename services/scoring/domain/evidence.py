"""A ranking's evidence: everything needed to recompute it, carried with it (``RankingPublished`` v2).

The evidence holds the ranking's inputs (per unit: counters and dated duration items), the formula's terms and
the working-day calendar over the days the durations span. ``recompute(payload)`` rebuilds the inputs, formula
and calendar from the evidence alone and runs scoring's own ``rank``: the result must equal the published
ranking byte for byte (same ``input_hash``, same ``result_hash``). Pure: no file, clock or database.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from services.rectification.domain.calendar import WorkCalendar, local_date
from services.scoring.domain.facts import iso
from services.scoring.domain.figures import COUNTERS, DURATION_KINDS
from services.scoring.domain.formula import Formula
from services.scoring.domain.hashing import digest
from services.scoring.domain.periods import Period
from services.scoring.domain.ranking import Position, Ranking, RankingInput, UnitInput, rank

ONE_DAY = timedelta(days=1)


class EvidenceError(ValueError):
    """Evidence that cannot be read back into inputs, formula and calendar; the message says what is wrong."""


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def calendar_span(inputs: RankingInput) -> tuple[date, date] | None:
    """The China-time days the duration items touch, first and last (None: no duration item)."""
    days = [
        local_date(moment)
        for unit in inputs.units
        for items in unit.durations.values()
        for _, a, b in items
        for moment in (a, b)
    ]
    return (min(days), max(days)) if days else None


def evidence_of(inputs: RankingInput, formula: Formula, calendar: WorkCalendar) -> dict[str, Any]:
    """The evidence document (JSON-ready) for a ranking computed from ``inputs`` under ``formula`` and ``calendar``."""
    span = calendar_span(inputs)
    days = _days(*span) if span else []
    return {
        "inputs": inputs.to_json(),
        "formula": formula.model_dump(mode="json"),
        "calendar": {
            "version": calendar.version,
            "first": span[0].isoformat() if span else None,
            "last": span[1].isoformat() if span else None,
            "holidays": [d.isoformat() for d in days if d.weekday() < 5 and not calendar.is_workday(d)],
            "workdays": [d.isoformat() for d in days if d.weekday() >= 5 and calendar.is_workday(d)],
        },
    }


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if iso(moment) != text:
        raise EvidenceError(f"{text!r} is not an instant in scoring's one text form (UTC, microseconds, Z)")
    return moment


def inputs_from(doc: dict[str, Any]) -> RankingInput:
    position = doc["position"]
    units = []
    for unit in doc["units"]:
        if set(unit["counts"]) != set(COUNTERS):
            raise EvidenceError(f"unit {unit['unit_id']}: the counters are not {', '.join(COUNTERS)}")
        units.append(
            UnitInput(
                unit_id=unit["unit_id"],
                counts=tuple(int(unit["counts"][name]) for name in COUNTERS),
                durations={
                    kind: tuple((str(case), _instant(a), _instant(b)) for case, a, b in unit[kind])
                    for kind in DURATION_KINDS
                },
            )
        )
    return RankingInput(
        period=Period.parse(doc["period"]),
        tier=doc["tier"],
        reference_version=doc["reference_version"],
        position=Position(
            cutoff=_instant(position["cutoff"]),
            events=position["events"],
            events_hash=position["events_hash"],
            settle_rule=position["settle_rule"],
        ),
        units=tuple(units),
    )


def calendar_from(doc: dict[str, Any]) -> WorkCalendar:
    """A calendar that agrees with the published one on every day of the evidence's span (and nowhere else)."""
    library, _, override = doc["version"].partition("+")
    return WorkCalendar(
        library_version=library,
        override_version=override,
        library_years=(0, 0),
        override_years=frozenset(),
        provisional_years=frozenset(),
        library_holidays=frozenset(),
        library_workdays=frozenset(),
        extra_holidays=frozenset(date.fromisoformat(d) for d in doc["holidays"]),
        extra_workdays=frozenset(date.fromisoformat(d) for d in doc["workdays"]),
    )


def recompute(payload: dict[str, Any]) -> Ranking:
    """The ranking computed again from ``payload["evidence"]`` alone, with scoring's own ``rank``."""
    evidence = payload.get("evidence")
    if not evidence:
        raise EvidenceError("this ranking was published without evidence (RankingPublished v1)")
    try:
        inputs = inputs_from(evidence["inputs"])
        formula = Formula.model_validate(evidence["formula"])
        calendar = calendar_from(evidence["calendar"])
    except (KeyError, TypeError, ValueError) as exc:
        raise EvidenceError(f"the evidence does not read back: {exc!r}") from exc
    return rank(inputs, formula, calendar)


def check(payload: dict[str, Any]) -> str | None:
    """None when the published ranking recomputes from its evidence to the same bytes; else what differs."""
    try:
        ranking = recompute(payload)
    except EvidenceError as exc:
        return str(exc)
    if digest(payload["evidence"]["inputs"]) != payload["input_hash"]:
        return f"the evidence's inputs hash to {digest(payload['evidence']['inputs'])}, not to input_hash"
    published = {k: v for k, v in payload.items() if k not in ("result_hash", "evidence")}
    if ranking.input_hash != payload["input_hash"]:
        return f"the inputs read back hash to {ranking.input_hash}, not to the published {payload['input_hash']}"
    if ranking.document != published:
        differing = sorted(
            k for k in set(ranking.document) | set(published) if ranking.document.get(k) != published.get(k)
        )
        return f"the recomputed ranking differs in {', '.join(differing)}"
    if ranking.result_hash != payload["result_hash"]:
        return f"result {ranking.result_hash} differs from the published {payload['result_hash']}"
    return None


def calendar_disagreements(doc: dict[str, Any], official: WorkCalendar) -> list[date]:
    """Days of the evidence's span on which ``official`` (e.g. this build's calendar) counts differently."""
    if doc["first"] is None:
        return []
    claimed = calendar_from(doc)
    span = _days(date.fromisoformat(doc["first"]), date.fromisoformat(doc["last"]))
    return [d for d in span if claimed.is_workday(d) != official.is_workday(d)]
