"""Hand-written case stories for scoring's tests, decided by the real case decider.

Every command is decided at the moment it is issued and recorded at that moment, so the events carry the
decider's own on-time flags and deadlines. November 2026 has no public holiday: a case assigned on Monday
2 November at 10:00 is due to be acknowledged by the end of Tuesday 3 November and rectified (general
severity, 7 working days) by the end of Wednesday 11 November.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from services.common.contracts import (
    AcceptRectification,
    AcknowledgeCase,
    Actor,
    AssignCase,
    CloseCase,
    Command,
    CommandEnvelope,
    DeadlineKind,
    DecideExtension,
    DismissCase,
    EventEnvelope,
    ExposeCase,
    FileComplaint,
    MarkOverdue,
    PublishCase,
    RateSatisfaction,
    RecordFollowUp,
    RejectRectification,
    RequestExtension,
    Role,
    Satisfaction,
    ScheduleFollowUp,
    SubmitPlan,
    SubmitRectification,
    TransferCase,
)
from services.common.reference import reference
from services.rectification.domain.calendar import SHANGHAI, load_calendar
from services.rectification.domain.case import CaseState
from services.rectification.domain.time_limits import load_time_limits
from services.rectification.service import decide_commands
from services.scoring.adapters.wire import from_envelope
from services.scoring.domain.events import ScoredEvent
from services.scoring.domain.formula import Formula, load_formula
from services.scoring.domain.periods import Period
from services.scoring.domain.projection import Tables
from services.scoring.domain.ranking import Ranking, rank
from services.scoring.service import Rules, inputs_from_tables

CALENDAR = load_calendar()
POLICY = load_time_limits()
REF = reference()
RULES = Rules(calendar=CALENDAR, reference=REF)
UNITS, CATEGORIES = frozenset(REF.units), frozenset(REF.categories)
OFFICE = Actor(agency_id="office", role=Role.SUPERVISOR)
WATCHER = Actor(agency_id="watcher", role=Role.SYSTEM)
SURVEY = Actor(agency_id="survey", role=Role.PUBLIC)
HOTLINE = Actor(agency_id="hotline-12345", role=Role.CHANNEL)
_NS = uuid.UUID("a3c5e0f1-2b4d-4c6e-8f01-23456789abcd")


def nov(day: int, hour: int = 10, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def unit_actor(unit_id: str) -> Actor:
    return Actor(agency_id=f"unit-{unit_id}", role=Role.UNIT, unit_id=unit_id)


class Story:
    """One case, told command by command; ``events`` are its case events as the log carries them."""

    def __init__(self, case_id: str, unit: str, filed: datetime) -> None:
        self.case_id = case_id
        self.unit = unit
        self.state: CaseState | None = None
        self.events: list[EventEnvelope] = []
        self._n = 0
        self.do(filed, HOTLINE, FileComplaint(
            channel="hotline_12345",
            category="inaction",
            unit_id=unit,
            description="路灯损坏无人处理",
            complainant_ref=f"cp-{case_id}",
        ))  # fmt: skip

    def do(self, when: datetime, actor: Actor, command: Command) -> Story:
        self._n += 1
        envelope = CommandEnvelope(
            command_id=uuid.uuid5(_NS, f"{self.case_id}:{self._n}"),
            command_type=command.message_type,
            schema_version=command.schema_version,
            case_id=self.case_id,
            issued_at=when,
            actor=actor,
            correlation_id=uuid.uuid5(_NS, self.case_id),
            payload=command,
        )
        decided = decide_commands(
            {},
            [envelope],
            now=when,
            units=UNITS,
            categories=CATEGORIES,
            calendar=CALENDAR,
            policy=POLICY,
            known={self.case_id: self.state},
        )
        [(_, refusal)] = decided.outcomes
        assert refusal is None, f"{self.case_id}: {command.message_type} refused: {refusal.reason}"
        self.state = decided.states[self.case_id]
        self.events += [e for e in decided.appended if e.stream_id == self.case_id]
        return self

    # the lifecycle, one call per command

    def assign(self, when: datetime, unit: str | None = None, ack_by: date | None = None) -> Story:
        command = AssignCase(responsible_unit_id=unit or self.unit, first_officer="办公室主任", ack_by=ack_by)
        return self.do(when, OFFICE, command)

    def transfer(self, when: datetime, to: str) -> Story:
        self.unit = to
        return self.do(when, OFFICE, TransferCase(to_unit_id=to, reason="辖区争议"))

    def ack(self, when: datetime) -> Story:
        return self.do(when, unit_actor(self.unit), AcknowledgeCase())

    def plan(self, when: datetime) -> Story:
        return self.do(when, unit_actor(self.unit), SubmitPlan(plan_summary="整改方案"))

    def submit(self, when: datetime) -> Story:
        return self.do(when, unit_actor(self.unit), SubmitRectification(report="整改报告", evidence_refs=("ev-1",)))

    def accept(self, when: datetime) -> Story:
        return self.do(when, OFFICE, AcceptRectification())

    def reject(self, when: datetime, working_days: int = 3) -> Story:
        return self.do(when, OFFICE, RejectRectification(reason="整改不到位", working_days=working_days))

    def publish(self, when: datetime) -> Story:
        return self.do(when, OFFICE, PublishCase(problem_summary="路灯损坏", result_summary="已修复"))

    def rate(self, when: datetime, rating: Satisfaction) -> Story:
        return self.do(when, SURVEY, RateSatisfaction(complainant_ref=f"cp-{self.case_id}", rating=rating))

    def close(self, when: datetime) -> Story:
        return self.do(when, OFFICE, CloseCase())

    def expose(self, when: datetime) -> Story:
        return self.do(when, OFFICE, ExposeCase(reason="典型问题"))

    def dismiss(self, when: datetime) -> Story:
        return self.do(when, OFFICE, DismissCase(reason="不属于受理范围"))

    def extend(self, when: datetime, working_days: int) -> Story:
        self.do(when, unit_actor(self.unit), RequestExtension(working_days=working_days, reason="需协调"))
        return self.do(when + timedelta(hours=1), OFFICE, DecideExtension(granted=True, reason="同意"))

    def overdue(self, which: DeadlineKind) -> Story:
        """The deadline watcher marks the running deadline, half an hour after it passed."""
        assert self.state is not None
        due = self.state.ack_due if which is DeadlineKind.ACKNOWLEDGMENT else self.state.rectify_due
        assert due is not None
        return self.do(due + timedelta(minutes=30), WATCHER, MarkOverdue(which=which, due=due))

    def relapse(self, when: datetime) -> Story:
        """Closed, a follow-up review is scheduled and finds the problem back: the case reopens."""
        self.do(when, OFFICE, ScheduleFollowUp(due_on=(when + timedelta(days=7)).date()))
        return self.do(when + timedelta(days=7), OFFICE, RecordFollowUp(held=False, note="问题反弹"))

    # the usual paths

    def on_time(self, day: int = 2, rating: Satisfaction = Satisfaction.SATISFIED) -> Story:
        """Assigned on ``day`` at 10:00, acknowledged at 14:00, rectified two days later, accepted, rated, closed."""
        self.assign(nov(day)).ack(nov(day, 14)).plan(nov(day, 15))
        self.submit(nov(day + 2, 11)).accept(nov(day + 2, 15)).publish(nov(day + 2, 16))
        return self.rate(nov(day + 3, 9), rating).close(nov(day + 3, 10))

    def scored(self) -> list[ScoredEvent]:
        return [from_envelope(e) for e in self.events]


def tables_of(stories: Iterable[Story], until: datetime | None = None) -> Tables:
    tables = Tables(until=until)
    tables.apply([e for s in stories for e in s.scored()])
    return tables


def ranking_of(
    stories: Iterable[Story], period: str = "2026-11", tier: str = "township", formula: Formula | None = None
) -> Ranking:
    tables = tables_of(stories)
    inputs = inputs_from_tables(tables, Period.parse(period), tier, RULES)
    return rank(inputs, formula or load_formula("v1"), CALENDAR)


def row(ranking: Ranking, unit: str) -> dict:  # type: ignore[type-arg]
    return next(r for r in ranking.rows if r["unit_id"] == unit)


def rate(ranking: Ranking, unit: str, name: str) -> tuple[int, int, str | None]:
    r = row(ranking, unit)["rates"][name]
    return r["num"], r["den"], r["value"]


def test_a_story_follows_the_decider() -> None:
    story = Story("RC-S1", "meiwan", nov(2, 9)).on_time()
    kinds = [e.event_type for e in story.events]
    assert kinds == [
        "CaseFiled",
        "CaseAssigned",
        "CaseAcknowledged",
        "PlanSubmitted",
        "RectificationSubmitted",
        "RectificationAccepted",
        "CasePublished",
        "SatisfactionRated",
        "CaseClosed",
    ]
    assert story.state is not None and story.state.rectify_due == datetime(
        2026, 11, 11, 23, 59, 59, 999_999, tzinfo=SHANGHAI
    )
