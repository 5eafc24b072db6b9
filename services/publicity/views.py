"""What the pages show, shaped from projection rows: names, holders, the timeline, rates. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from services.common.reference import Reference
from services.publicity import i18n
from services.publicity.periods import CHINA


def href(path: str, lang: str, **params: object) -> str:
    """A link inside the site that keeps the reader's language; empty parameters are left out."""
    query = {k: v for k, v in params.items() if v not in (None, "")}
    if lang != "zh":
        query["lang"] = lang
    return f"{path}?{urlencode(query)}" if query else path


def local_time(at: datetime | None) -> str:
    return at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") if at else ""


def local_day(at: datetime | None) -> str:
    return at.astimezone(CHINA).strftime("%Y-%m-%d") if at else ""


def unit_name(ref: Reference, unit_id: str | None, lang: str) -> str:
    if not unit_id:
        return ""
    unit = ref.units.get(unit_id)
    return unit.name(lang) if unit else unit_id


def category_name(ref: Reference, category: str, lang: str) -> str:
    named = ref.categories.get(category)
    return named.name(lang) if named else category


def holder_name(ref: Reference, holder: str, lang: str) -> str:
    """A holder as the public may see it: the supervisory office, the complainant's role, or a unit's name."""
    if holder.startswith("unit:"):
        return unit_name(ref, holder[5:], lang)
    if holder in ("supervisor", "complainant"):
        return i18n.t(holder, lang)
    return holder


# ---------------------------------------------------------------------------- the timeline


@dataclass(frozen=True, slots=True)
class Step:
    step: str
    at: datetime
    nth: int  # for repeated steps (rejected, reopened): which one this is


def timeline_steps(timeline: list[dict[str, Any]]) -> list[Step]:
    """The dated steps, each rejection and reopening numbered (the redo count as it grew)."""
    seen: dict[str, int] = {}
    out = []
    for entry in timeline:
        seen[entry["step"]] = seen.get(entry["step"], 0) + 1
        out.append(Step(entry["step"], entry["at"], seen[entry["step"]]))
    return out


# ---------------------------------------------------------------------------- who held it up


@dataclass(frozen=True, slots=True)
class Spell:
    step: str
    holder: str
    started_at: datetime
    ended_at: datetime | None
    working_days: float | None  # None while running
    running_days: int | None  # calendar days so far, for the running spell


@dataclass(frozen=True, slots=True)
class HolderTotal:
    holder: str
    working_days: float  # finished spells
    running_days: int | None  # the running spell, if this holder has it now

    @property
    def weight(self) -> float:
        return self.working_days + (self.running_days or 0)


def _day(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def spells(holds: list[dict[str, Any]], today: date) -> list[Spell]:
    out = []
    for h in holds:
        started = _day(h["started_at"])
        ended = _day(h["ended_at"]) if h.get("ended_at") else None
        running = None if ended else max(0, (today - started.astimezone(CHINA).date()).days)
        out.append(Spell(h["step"], h["holder"], started, ended, h.get("working_days"), running))
    return out


def holder_totals(case_spells: list[Spell]) -> list[HolderTotal]:
    """Time held per holder, the longest first (ties: the holder named first), as 倒查责任 asks."""
    finished: dict[str, float] = {}
    running: dict[str, int] = {}
    for s in case_spells:
        finished[s.holder] = finished.get(s.holder, 0.0) + (s.working_days or 0.0)
        if s.running_days is not None:
            running[s.holder] = s.running_days
    totals = [HolderTotal(h, round(days, 2), running.get(h)) for h, days in finished.items()]
    return sorted(totals, key=lambda t: (-t.weight, t.holder))


def has_running_spell(holds: list[dict[str, Any]]) -> bool:
    return any(not h.get("ended_at") for h in holds)


# ---------------------------------------------------------------------------- rankings


def percent(value: str | None) -> str:
    """A published rate (an exact decimal, 4 places) as a percentage with 2 places; a dash when not rated."""
    if value is None:
        return "—"
    return f"{Decimal(value) * 100:.2f}%"


def days(value: str | None) -> str:
    return "—" if value is None else f"{Decimal(value):.2f}"


def overdue_days(deadline: datetime | None, today: date) -> int | None:
    return None if deadline is None else max(0, (today - deadline.astimezone(CHINA).date()).days)


# ---------------------------------------------------------------------------- JSON


def json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def json_case(row: dict[str, Any]) -> dict[str, Any]:
    """A case for the JSON API: its public fields as stored, times in ISO 8601, the timeline if loaded."""
    out = {k: json_value(v) for k, v in row.items() if k != "timeline"}
    if "timeline" in row:
        out["timeline"] = [
            {"step": s["step"], "at": s["at"].isoformat(), "version": s["version"]} for s in row["timeline"]
        ]
    return out
