"""Scoring's use cases: show, publish, recompute and what-if. The store and the log come in as arguments.

Publishing reads the projection; recomputing folds the log (the case-event topic) in memory with the same
pure projection and must arrive at the same bytes. See docs/scoring.md.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from services.common.contracts import Actor, EventEnvelope, RankingPublishedV2, Role, wrap_event
from services.common.reference import Reference
from services.rectification.domain.calendar import WorkCalendar
from services.scoring.domain.events import ScoredEvent
from services.scoring.domain.evidence import evidence_of
from services.scoring.domain.formula import Formula, load_formula
from services.scoring.domain.periods import SETTLE_RULE, Period
from services.scoring.domain.projection import Tables
from services.scoring.domain.ranking import Ranking, RankingInput, gather, position_of, rank, rank_changes

if TYPE_CHECKING:
    from services.scoring.adapters.store import ScoringStore  # the port's one implementation; wiring passes it

TIERS: tuple[str, ...] = ("township", "department")
SETTLE_MARGIN = timedelta(hours=1)
SCORING = Actor(agency_id="scoring", role=Role.SYSTEM)
_NS = uuid.UUID("3f1d2b7e-6a0c-4e59-b8d2-9c4a7e15f0a3")


class NotSettled(RuntimeError):
    """The period's figures may still change: its cutoff has not passed in the log yet."""


class PublishConflict(RuntimeError):
    """A ranking published before for the same period, tier and formula has a different result."""


@dataclass(frozen=True, slots=True)
class Rules:
    """What a ranking depends on besides the log: the working-day calendar and the units' tiers."""

    calendar: WorkCalendar
    reference: Reference
    formulas: Callable[[str], Formula] = load_formula

    def units_of(self, tier: str) -> list[str]:
        return sorted(u for u, unit in self.reference.units.items() if unit.tier == tier)


# ---------------------------------------------------------------------------- inputs


async def inputs_from_store(store: ScoringStore, period: Period, tier: str, rules: Rules) -> RankingInput:
    counts = await store.month_counts(period.months)
    durations = await store.durations(period.months)
    position = position_of(period, await store.epochs(), SETTLE_RULE)
    return gather(period, tier, rules.units_of(tier), counts, durations, position, rules.reference.units_version)


def inputs_from_tables(tables: Tables, period: Period, tier: str, rules: Rules) -> RankingInput:
    position = position_of(period, tables.epochs, SETTLE_RULE)
    units = rules.units_of(tier)
    return gather(period, tier, units, tables.counts, tables.durations, position, rules.reference.units_version)


async def show(store: ScoringStore, period: Period, tier: str, formula: Formula, rules: Rules) -> tuple[Ranking, bool]:
    """The ranking as the projection stands, and whether the period has settled (else it is provisional)."""
    async with store.snapshot():
        ranking = rank(await inputs_from_store(store, period, tier, rules), formula, rules.calendar)
        settled = await _settled(store, period)
    return ranking, settled


async def what_if(
    store: ScoringStore, period: Period, tier: str, base: Formula, other: Formula, rules: Rules
) -> tuple[Ranking, Ranking, list[tuple[str, int | None, int | None]]]:
    """The same figures ranked under two formulas, and each unit's rank under both."""
    async with store.snapshot():
        inputs = await inputs_from_store(store, period, tier, rules)
    before, after = rank(inputs, base, rules.calendar), rank(inputs, other, rules.calendar)
    return before, after, rank_changes(before, after)


# ---------------------------------------------------------------------------- publishing


async def _settled(store: ScoringStore, period: Period) -> bool:
    latest = await store.latest_recorded_at()
    return latest is not None and latest >= period.cutoff + SETTLE_MARGIN


def ranking_id(ranking: Ranking) -> uuid.UUID:
    d = ranking.document
    return uuid.uuid5(_NS, f"{d['period']}:{d['tier']}:{d['formula_version']}:{ranking.result_hash}")


def ranking_event(ranking: Ranking, stream_version: int, now: datetime) -> EventEnvelope:
    """``RankingPublished`` for ``ranking``: one stream per period and tier, a version per publication.

    It carries its evidence (inputs, formula, calendar), so anyone can recompute it from the public ledger.
    """
    evidence = None if ranking.basis is None else evidence_of(*ranking.basis)
    payload = RankingPublishedV2(**ranking.document, result_hash=ranking.result_hash, evidence=evidence)
    event_id = ranking_id(ranking)
    return wrap_event(
        payload,
        event_id=event_id,
        stream_id=f"ranking-{ranking.document['period']}-{ranking.document['tier']}",
        stream_version=stream_version,
        occurred_at=now,
        recorded_at=now,
        actor=SCORING,
        correlation_id=event_id,
        causation_id=None,
    )


@dataclass(frozen=True, slots=True)
class Publication:
    ranking: Ranking
    ranking_id: uuid.UUID
    new: bool  # False: the same ranking had been published before, nothing was sent


async def publish(
    store: ScoringStore, period: Period, tiers: Iterable[str], formula: Formula, rules: Rules, now: datetime
) -> list[Publication]:
    """Publish each tier's ranking: stored and sent (outbox) in one transaction, once per period, tier and formula."""
    out = []
    async with store.snapshot(readonly=False):
        if not await _settled(store, period):
            latest = await store.latest_recorded_at()
            raise NotSettled(
                f"{period} settles at {period.cutoff.isoformat()}; the projection has applied events recorded up to "
                f"{latest.isoformat() if latest else 'nothing yet'} (publishing needs {SETTLE_MARGIN} past the cutoff)"
            )
        for tier in tiers:
            ranking = rank(await inputs_from_store(store, period, tier, rules), formula, rules.calendar)
            out.append(await _publish_one(store, ranking, now))
    return out


async def _publish_one(store: ScoringStore, ranking: Ranking, now: datetime) -> Publication:
    d = ranking.document
    before = await store.published_result(d["period"], d["tier"], d["formula_version"])
    if before is not None:
        ranking_id, result_hash = before
        if result_hash != ranking.result_hash:
            raise PublishConflict(
                f"{d['period']} {d['tier']} under formula {d['formula_version']} was published with result "
                f"{result_hash}, and now computes to {ranking.result_hash}: run `rectify ranking recompute`"
            )
        return Publication(ranking, ranking_id, new=False)
    envelope = ranking_event(ranking, 1 + await store.publications(d["period"], d["tier"]), now)
    await store.save_published(envelope, ranking.input_hash)
    return Publication(ranking, envelope.event_id, new=True)


@dataclass(frozen=True, slots=True)
class PublishedRanking:
    ranking_id: uuid.UUID
    payload: dict[str, Any]

    @property
    def period(self) -> Period:
        return Period.parse(self.payload["period"])

    @property
    def tier(self) -> str:
        return str(self.payload["tier"])


async def published(store: ScoringStore, period: Period, tiers: Iterable[str]) -> list[PublishedRanking]:
    return [PublishedRanking(rid, payload) for rid, payload in await store.published(str(period), tiers)]


# ---------------------------------------------------------------------------- recomputing from the log


@dataclass(frozen=True, slots=True)
class Verdict:
    published: PublishedRanking
    recomputed: Ranking | None
    problem: str | None  # why it could not be recomputed, or how it differs; None: identical

    @property
    def matches(self) -> bool:
        return self.problem is None


async def fold_log(batches: AsyncIterable[list[ScoredEvent]], until: datetime) -> Tables:
    """The projection's tables from the log, holding only the events up to ``until`` (a ranking's position)."""
    tables = Tables(until=until, lenient=True)
    async for events in batches:
        tables.apply(events)
    return tables


def verdict(entry: PublishedRanking, tables: Tables, rules: Rules) -> Verdict:
    p = entry.payload
    if p["position"]["settle_rule"] != SETTLE_RULE:
        return Verdict(entry, None, f"settle rule {p['position']['settle_rule']} is not this build's {SETTLE_RULE}")
    if p["calendar_version"] != rules.calendar.version:
        return Verdict(entry, None, f"calendar {p['calendar_version']} is not the loaded {rules.calendar.version}")
    if p["reference_version"] != rules.reference.units_version:
        return Verdict(
            entry, None, f"units {p['reference_version']} are not the loaded {rules.reference.units_version}"
        )
    formula = rules.formulas(p["formula_version"])
    ranking = rank(inputs_from_tables(tables, entry.period, entry.tier, rules), formula, rules.calendar)
    if ranking.document["position"] != p["position"]:
        return Verdict(entry, ranking, f"the log holds {ranking.document['position']}, published {p['position']}")
    if ranking.result_hash != p["result_hash"]:
        return Verdict(entry, ranking, f"result {ranking.result_hash} differs from the published {p['result_hash']}")
    return Verdict(entry, ranking, None)
