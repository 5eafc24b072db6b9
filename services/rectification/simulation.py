"""A deterministic month of cases: every path of the lifecycle, seeded, for tests and demo data.

``month_of_cases`` files cases over a month and plans each one's story (on time, late, rejected and
redone, reopened, exposed, transferred, extended, dismissed, merged ...) by running the real pure decider
ahead, so every deadline a command cites is the one the case will have. A deadline watcher inside each
story marks each deadline that passes (and now and then fires twice, as an at-least-once watcher does).
The result is the commands in time order, each with the refusal code it is meant to draw, if any.
Nothing here reads the clock, the network or the disk: the same seed gives the same commands.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from services.common.contracts import (
    AcceptRectification,
    AccountabilityTarget,
    AcknowledgeCase,
    Actor,
    AddCoComplainants,
    AssignCase,
    CaseStatus,
    Channel,
    CloseCase,
    Command,
    CommandEnvelope,
    DeadlineKind,
    DecideExtension,
    DismissCase,
    DomainEvent,
    EscalateCase,
    ExposeCase,
    FileComplaint,
    MarkOverdue,
    MergeCase,
    PublishCase,
    RateSatisfaction,
    RecordAccountability,
    RecordFollowUp,
    RejectRectification,
    RequestExtension,
    Role,
    Satisfaction,
    ScheduleFollowUp,
    Severity,
    SubmitPlan,
    SubmitRectification,
    TransferCase,
)
from services.rectification.domain.calendar import SHANGHAI, WorkCalendar, to_local
from services.rectification.domain.case import UNIT_STATUSES, CaseState, Context, Refused, decide, evolve
from services.rectification.domain.time_limits import TimeLimitPolicy

PRIVATE = "SIM-PRIVATE"  # marks every text that must never reach the public
PATHS: tuple[str, ...] = (
    "on_time",
    "late_acknowledgment",
    "overdue",
    "rejected",
    "reopened",
    "relapsed",
    "exposed",
    "transferred",
    "extension_granted",
    "extension_denied",
    "dismissed",
    "merged",
    "stalled",
)
WEIGHTS: tuple[int, ...] = (30, 6, 10, 10, 6, 4, 5, 6, 6, 4, 5, 4, 4)
SEVERITIES: tuple[tuple[Severity, int], ...] = (
    (Severity.GENERAL, 60),
    (Severity.COMPLEX, 20),
    (Severity.UTILITIES, 12),
    (Severity.URGENT, 8),
)
CHANNELS = tuple(Channel)
PROBLEMS: dict[str, str] = {
    "inaction": "反映多次的路灯损坏问题无人处理",
    "slow_action": "营业执照变更申请超过承诺时限未办结",
    "wrongful_action": "执法人员未出示证件即扣押摊贩物品",
    "extortion": "办理建房审批时被暗示需要请客送礼",
    "obstruction": "惠企政策在科室层面迟迟不落地",
    "buck_passing": "小区积水问题街道与城管互相推诿",
    "land_demolition": "征地补偿款未按公示标准发放",
    "subcontracting": "安置房工程层层转包导致农民工工资拖欠",
    "business_environment": "企业开办需要重复提交相同材料",
    "service_window": "窗口工作人员上班时间玩手机、态度生硬",
    "integrity": "公务接待超标准安排宴请",
}
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
WATCH_LAG = timedelta(minutes=30)
OFFICE_OPENS, OFFICE_CLOSES = time(8, 30), time(17, 30)
_NS = uuid.UUID("0c8f6a52-3c1e-4f7a-9d0b-5a1e2b3c4d5e")

SUPERVISOR = Actor(agency_id="jiufengban", role=Role.SUPERVISOR)
WATCHER = Actor(agency_id="deadline-watcher", role=Role.SYSTEM)
SURVEY = Actor(agency_id="satisfaction-survey", role=Role.PUBLIC)


class SimulationError(RuntimeError):
    """The planner asked for something the decider would not do: a bug in the scenario, not in the case."""


@dataclass(frozen=True, slots=True)
class Scheduled:
    at: datetime
    case_id: str
    actor: Actor
    command: Command
    expect: str | None = None  # the refusal code this command is meant to draw; None: it applies


@dataclass(frozen=True, slots=True)
class Simulation:
    seed: int
    schedule: tuple[Scheduled, ...]
    paths: dict[str, str]  # case id -> path

    def envelopes(self) -> list[CommandEnvelope]:
        """The schedule as commands on the wire, with ids derived from the seed (the same every run)."""
        counters: dict[str, int] = {}
        out = []
        for item in self.schedule:
            n = counters[item.case_id] = counters.get(item.case_id, 0) + 1
            command_id = uuid.uuid5(_NS, f"{self.seed}:{item.case_id}:{n}")
            out.append(
                CommandEnvelope(
                    command_id=command_id,
                    command_type=item.command.message_type,
                    schema_version=item.command.schema_version,
                    case_id=item.case_id,
                    issued_at=item.at,
                    actor=item.actor,
                    correlation_id=uuid.uuid5(_NS, f"{self.seed}:{item.case_id}"),
                    payload=item.command,
                )
            )
        return out


def unit_actor(unit_id: str) -> Actor:
    return Actor(agency_id=f"unit-{unit_id}", role=Role.UNIT, unit_id=unit_id)


@dataclass(frozen=True, slots=True)
class _World:
    rng: random.Random
    calendar: WorkCalendar
    policy: TimeLimitPolicy
    units: tuple[str, ...]
    categories: tuple[str, ...]


@dataclass
class _Story:
    """One case planned ahead on the real decider; ``out`` collects its commands."""

    world: _World
    case_id: str
    unit_id: str
    now: datetime
    state: CaseState | None = None
    out: list[Scheduled] = field(default_factory=list)

    @property
    def s(self) -> CaseState:
        assert self.state is not None
        return self.state

    @property
    def rng(self) -> random.Random:
        return self.world.rng

    def do(self, at: datetime, actor: Actor, command: Command, expect: str | None = None) -> list[DomainEvent]:
        at = max(at, self.now + MINUTE)
        self.watch(at)
        return self._apply(at, actor, command, expect)

    def implied(self, at: datetime, actor: Actor, command: Command) -> list[DomainEvent]:
        """A command the service layer issues itself (linking a merged duplicate's complainants): planned, not sent."""
        return self._apply(at, actor, command, scheduled=False)

    def _apply(
        self, at: datetime, actor: Actor, command: Command, expect: str | None = None, scheduled: bool = True
    ) -> list[DomainEvent]:
        ctx = Context(
            case_id=self.case_id,
            actor=actor,
            now=at,
            known_units=frozenset(self.world.units),
            known_categories=frozenset(self.world.categories),
            calendar=self.world.calendar,
            policy=self.world.policy,
        )
        self.now = at
        if scheduled:
            self.out.append(Scheduled(at=at, case_id=self.case_id, actor=actor, command=command, expect=expect))
        try:
            events = decide(self.state, command, ctx)
        except Refused as refusal:
            if refusal.code != expect:
                raise SimulationError(f"{self.case_id}: {command.message_type} refused: {refusal.reason}") from None
            return []
        if expect is not None:
            raise SimulationError(f"{self.case_id}: {command.message_type} applied, expected {expect}")
        for event in events:
            self.state = evolve(self.state, event, self.case_id)
        return events

    def watch(self, until: datetime) -> None:
        """The deadline watcher: mark every running deadline that passed before ``until``, sometimes twice."""
        while self.state is not None:
            breach = self._breach(until)
            if breach is None:
                return
            which, due = breach
            mark = MarkOverdue(which=which, due=due)
            self._apply(max(due + WATCH_LAG, self.now + MINUTE), WATCHER, mark)
            if self.rng.random() < 0.15:
                self._apply(self.now + MINUTE, WATCHER, mark, expect="already_marked")

    def _breach(self, until: datetime) -> tuple[DeadlineKind, datetime] | None:
        s = self.s
        running = [
            (DeadlineKind.ACKNOWLEDGMENT, s.ack_due, s.status is CaseStatus.ASSIGNED),
            (DeadlineKind.RECTIFICATION, s.rectify_due, s.status in UNIT_STATUSES),
        ]
        for which, due, is_running in running:
            if is_running and due is not None and due + WATCH_LAG < until and (which, due) not in s.marked:
                return which, due
        return None

    # ------------------------------------------------------------------ when things happen

    def office(self, moment: datetime) -> datetime:
        """``moment``, or the next office hour on a working day when it falls outside one."""
        local = to_local(moment)
        calendar = self.world.calendar
        if calendar.is_workday(local.date()) and OFFICE_OPENS <= local.time() <= OFFICE_CLOSES:
            return local
        day = local.date()
        if not (calendar.is_workday(day) and local.time() < OFFICE_OPENS):
            day = calendar.next_workday(day)
        return datetime.combine(day, time(9, local.minute), tzinfo=SHANGHAI)

    def after(self, low_hours: float, high_hours: float) -> datetime:
        return self.office(self.now + timedelta(hours=self.rng.uniform(low_hours, high_hours)))

    def before(self, due: datetime | None, low: float = 0.1, high: float = 0.7) -> datetime:
        """A moment in time for ``due``: office hours when they fit, else any hour (the urgent tiers)."""
        assert due is not None
        if due <= self.now:
            return self.now + MINUTE
        moment = self.now + (due - self.now) * self.rng.uniform(low, high)
        in_office = self.office(moment)
        return in_office if in_office < due else moment

    def late(self, due: datetime | None) -> datetime:
        assert due is not None
        return self.office(due + timedelta(hours=self.rng.uniform(2, 72)))


# ---------------------------------------------------------------------------- the stories


def _file(story: _Story, index: int, refs: tuple[str, ...], category: str, severity: Severity) -> None:
    problem = PROBLEMS.get(category, "群众反映的作风问题")
    story.do(
        story.now,
        Actor(agency_id="hotline-12345", role=Role.CHANNEL),
        FileComplaint(
            channel=story.rng.choice(CHANNELS),
            category=category,
            unit_id=story.unit_id,
            description=f"{problem}（{PRIVATE}-{index}，模拟数据）",
            location=None,
            severity=severity,
            complainant_ref=refs[0],
        ),
    )


def _assign(story: _Story, unit_id: str) -> None:
    story.do(
        story.after(0.5, 20), SUPERVISOR, AssignCase(responsible_unit_id=unit_id, first_officer=f"{unit_id} 办公室主任")
    )


def _rectify_round(story: _Story, plan: bool, late: bool = False) -> None:
    unit = unit_actor(story.unit_id)
    if plan:
        story.do(story.before(story.s.rectify_due, 0.05, 0.25), unit, SubmitPlan(plan_summary=f"整改方案 {PRIVATE}"))
    at = story.late(story.s.rectify_due) if late else story.before(story.s.rectify_due, 0.4, 0.9)
    report = SubmitRectification(report=f"整改报告 {PRIVATE}", evidence_refs=(f"ev-{story.case_id}-{len(story.out)}",))
    story.do(at, unit, report)


def _publish_and_rate(story: _Story, refs: tuple[str, ...], dissatisfied: bool, round_no: int) -> bool:
    """Publish, collect ratings; True when the ratings reopened the case."""
    problem = PROBLEMS.get(story.s.category, "作风问题")
    published = PublishCase(problem_summary=f"{problem}（第{round_no}轮）", result_summary="已按期整改到位并经验收")
    story.do(story.after(8, 48), SUPERVISOR, published)
    for i, ref in enumerate(refs):
        if not dissatisfied and story.rng.random() < 0.1:
            continue  # this complainant never answers the survey
        rating = _rating(story.rng, dissatisfied, i)
        events = story.do(story.after(4, 72), SURVEY, RateSatisfaction(complainant_ref=ref, rating=rating))
        if any(e.message_type == "CaseReopened" for e in events):
            return True
        if story.rng.random() < 0.05:
            story.do(story.after(1, 4), SURVEY, RateSatisfaction(complainant_ref=ref, rating=rating), "already_rated")
    return False


def _rating(rng: random.Random, dissatisfied: bool, index: int) -> Satisfaction:
    if dissatisfied:
        return Satisfaction.DISSATISFIED
    if index and rng.random() < 0.3:
        return Satisfaction.DISSATISFIED  # a minority that does not reopen the case
    return rng.choice((Satisfaction.SATISFIED, Satisfaction.SATISFIED, Satisfaction.BASICALLY_SATISFIED))


def _inspect(story: _Story, rejections: int) -> None:
    for _ in range(rejections):
        reason = RejectRectification(reason=f"整改不到位 {PRIVATE}", working_days=story.rng.randint(3, 5))
        story.do(story.after(4, 48), SUPERVISOR, reason)
        _rectify_round(story, plan=False)
    story.do(story.after(4, 48), SUPERVISOR, AcceptRectification(note=f"验收合格 {PRIVATE}"))


def _until_closed(story: _Story, refs: tuple[str, ...], path: str, round_no: int = 1) -> None:
    """Inspection, publication, ratings and closing, redone as often as the ratings reopen the case."""
    _inspect(story, story.rng.randint(1, 2) if path == "rejected" else 0)
    reopened = _publish_and_rate(story, refs, dissatisfied=path == "reopened" and round_no == 1, round_no=round_no)
    if reopened:
        _rectify_round(story, plan=True)
        _until_closed(story, refs, path, round_no + 1)
        return
    if path in ("exposed", "overdue") and not story.s.exposed:
        story.do(story.after(2, 24), SUPERVISOR, ExposeCase(reason=f"典型问题 {PRIVATE}"))
    if path == "overdue":
        target = RecordAccountability(target_kind=AccountabilityTarget.UNIT, target=story.unit_id, measure="约谈提醒")
        story.do(story.after(2, 24), SUPERVISOR, target)
    story.do(story.after(24, 96), SUPERVISOR, CloseCase())


def _follow_up(story: _Story, refs: tuple[str, ...], relapse: bool) -> None:
    [scheduled] = story.do(story.after(1, 8), SUPERVISOR, ScheduleFollowUp())
    due_on: date = scheduled.due_on  # type: ignore[attr-defined]
    review_at = story.office(datetime.combine(due_on, time(10), tzinfo=SHANGHAI))
    story.do(review_at, SUPERVISOR, RecordFollowUp(held=not relapse, note=f"回头看 {PRIVATE}"))
    if relapse:
        _rectify_round(story, plan=True)
        _until_closed(story, refs, "relapsed-redo", round_no=2)


def _lifecycle(story: _Story, refs: tuple[str, ...], path: str) -> None:
    unit = unit_actor(story.unit_id)
    if path == "dismissed":
        story.do(story.after(1, 8), SUPERVISOR, DismissCase(reason=f"不属于受理范围 {PRIVATE}"))
        return
    if path == "transferred":
        wrong = story.rng.choice([u for u in story.world.units if u != story.unit_id])
        _assign(story, wrong)
        story.do(story.after(1, 6), SUPERVISOR, TransferCase(to_unit_id=story.unit_id, reason=f"辖区争议 {PRIVATE}"))
        story.do(story.after(0.2, 1), unit_actor(wrong), AcknowledgeCase(), expect="not_your_case")
    else:
        _assign(story, story.unit_id)
    ack_at = story.late(story.s.ack_due) if path == "late_acknowledgment" else story.before(story.s.ack_due)
    story.do(ack_at, unit, AcknowledgeCase())
    story.do(story.before(story.s.rectify_due, 0.05, 0.25), unit, SubmitPlan(plan_summary=f"整改方案 {PRIVATE}"))
    if path in ("extension_granted", "extension_denied") and story.s.rectify_due > story.now + HOUR:  # type: ignore[operator]
        days = story.rng.randint(2, 5)
        story.do(
            story.before(story.s.rectify_due, 0.3, 0.6), unit, RequestExtension(working_days=days, reason="需协调")
        )
        decision = DecideExtension(granted=path == "extension_granted", reason="经研究决定")
        story.do(story.after(2, 8), SUPERVISOR, decision)
    if path == "stalled":
        story.watch(story.s.rectify_due + timedelta(days=3))  # type: ignore[operator]
        return
    if path == "overdue":
        story.do(story.office(story.s.rectify_due + timedelta(days=1)), SUPERVISOR, EscalateCase(reason="超期未整改"))  # type: ignore[operator]
    late = path == "overdue" or (path == "extension_denied" and story.rng.random() < 0.5)
    _rectify_round(story, plan=False, late=late)
    _until_closed(story, refs, path)
    if path == "relapsed" or story.rng.random() < 0.2:
        _follow_up(story, refs, relapse=path == "relapsed")


def _merged_pair(survivor: _Story, duplicate: _Story, index: int, category: str, severity: Severity) -> None:
    """A duplicate filed soon after its survivor, merged into it; its complainant then rates the survivor."""
    refs = (f"cp-{survivor.case_id}", f"cp-{duplicate.case_id}")
    _file(survivor, index, refs[:1], category, severity)
    duplicate.now = survivor.now + timedelta(hours=survivor.rng.uniform(1, 6))
    _file(duplicate, index + 1, refs[1:], category, severity)
    duplicate.do(duplicate.after(1, 8), SUPERVISOR, MergeCase(into_case_id=survivor.case_id))
    link = AddCoComplainants(complainant_refs=refs[1:], merged_from=duplicate.case_id)
    survivor.implied(max(survivor.now, duplicate.now), SUPERVISOR, link)
    _lifecycle(survivor, refs, "on_time")


# ---------------------------------------------------------------------------- the month


def month_of_cases(
    *,
    seed: int,
    calendar: WorkCalendar,
    policy: TimeLimitPolicy,
    units: Sequence[str],
    categories: Sequence[str],
    cases: int = 300,
    start: date = date(2025, 3, 3),
    days: int = 30,
) -> Simulation:
    """``cases`` complaints filed over ``days`` from ``start``; the first ones walk every path once, the rest at random.

    A merged case is a pair: the survivor and its duplicate, which count as two cases.
    """
    rng = random.Random(seed)
    world = _World(
        rng, calendar, policy, tuple(sorted(units)), tuple(sorted(c for c in categories if c in policy.categories))
    )
    opening = datetime.combine(start, time(0), tzinfo=SHANGHAI)
    filed = sorted(opening + timedelta(minutes=rng.randrange(days * 24 * 60)) for _ in range(cases))
    paths: dict[str, str] = {}
    stories: list[_Story] = []
    index = 0
    while index < cases:
        path = PATHS[index] if index < len(PATHS) else rng.choices(PATHS, WEIGHTS)[0]
        if path == "merged" and index + 1 >= cases:
            path = "on_time"
        story = _new_story(world, f"SIM-{seed}-{index + 1:04d}", filed[index])
        category = rng.choice(world.categories)
        severity = rng.choices([s for s, _ in SEVERITIES], [w for _, w in SEVERITIES])[0]
        if path == "merged":
            duplicate = _new_story(world, f"SIM-{seed}-{index + 2:04d}", filed[index])
            duplicate.unit_id = story.unit_id
            _merged_pair(story, duplicate, index, category, severity)
            paths[duplicate.case_id] = "merged"
            stories.append(duplicate)
            index += 1
            paths[story.case_id] = "merged_survivor"
        else:
            refs = (f"cp-{story.case_id}",)
            _file(story, index, refs, category, severity)
            _lifecycle(story, refs, path)
            paths[story.case_id] = path
        stories.append(story)
        index += 1
    schedule = sorted((item for story in stories for item in story.out), key=lambda item: (item.at, item.case_id))
    return Simulation(seed=seed, schedule=tuple(schedule), paths=paths)


def _new_story(world: _World, case_id: str, filed_at: datetime) -> _Story:
    return _Story(world=world, case_id=case_id, unit_id=world.rng.choice(world.units), now=filed_at - MINUTE)
