"""The case as a pure decider: ``decide(state, command, ctx) -> events`` and ``evolve(state, event) -> state``.

No clock, database, Kafka or logging in here: time, reference data, the working-day calendar and the
time-limit policy come in on ``Context``. A command that does not fit the case's state is refused with
``Refused``, whose reason a person can act on. Each command and event has exactly one entry in
``DECIDERS`` / ``EVOLVERS``. Commands are validated where they enter (decoding); the events decided from them and
the state are filled without validating again (``contracts.trusted``; the property and simulation tests check that
every event validates).

Status model. The status says whose move it is: filed (supervisor triages), assigned (unit acknowledges),
acknowledged (unit plans), planned (unit rectifies), rectified (supervisor inspects), accepted (supervisor
publishes), published (complainants rate), closed; dismissed and merged are final. There is no "reopened"
status: a rejection, a dissatisfied rating and a relapse at the follow-up review all send the case back to
``planned`` (rectification under way, the plan may be revised) with a new rectification deadline, and count
in ``redo_count`` / ``reopen_count``. A transfer sends it back to ``assigned`` for the new unit. Exposure,
escalation, overdue marks and accountability are facts beside the status, not statuses.

Closure. After ``CaseClosed`` only the follow-up review (回头看) may happen: scheduling it, confirming it held,
or a relapse that reopens the case. Exposure, escalation, accountability and linking co-complainants are
refused on a closed case.

Ratings and reopening. Each publication opens a rating round in which every linked complainant may rate
once. The case is reopened (reason ``dissatisfied``) as soon as a strict majority of *all* linked
complainants is dissatisfied: when everyone has rated and most are dissatisfied, or earlier once the
remaining ratings could no longer change that. A tie is not a majority. Complainants who never answer do not
count as dissatisfied, so the supervisor may close a published case without waiting for every rating.

Deadlines. Assignment and transfer take both deadlines from the policy (or the assignment's explicit dates);
an extension adds working days to the rectification deadline (at most ``max_extensions`` per unit and round:
the count restarts on transfer and on reopening); a rejection sets a new deadline in working days from the
inspection; a reopening takes the policy's rectification limit from the moment of reopening. Each deadline
breach is marked once, keyed by which deadline and its due time.

Who held it up (倒查责任). Every status but closed, dismissed and merged has a holder: the supervisor (filed, rectified,
accepted), the responsible unit as ``unit:<id>`` (assigned, acknowledged, planned) or the complainants
(published: the case waits on their ratings). ``holdups`` lists each spell with its length in working days
(calendar days without a calendar); ``CaseEscalated`` names the holder with the most time in all.

Without a calendar and policy on ``Context`` the commands that set a deadline (assign, transfer, grant an
extension, reject, reopen on ratings or relapse, a follow-up without a date) are refused with ``no_policy``.

The public view adds a timeline step for each public event; extension requests and denials, linking
co-complainants, scheduling a follow-up and accountability records are internal and add none. Its only text is
the supervisor's summaries from ``CasePublished``; a reopening withdraws the result summary until republished.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from services.common.contracts import (
    AcceptRectification,
    AccountabilityRecorded,
    AccountabilityTarget,
    AcknowledgeCase,
    Actor,
    AddCoComplainants,
    AssignCase,
    CaseAcknowledged,
    CaseAssigned,
    CaseClosed,
    CaseDismissed,
    CaseEscalated,
    CaseExposed,
    CaseFiled,
    CaseMerged,
    CasePublished,
    CaseReopened,
    CaseStatus,
    CaseTransferred,
    Channel,
    CloseCase,
    CoComplainantsAdded,
    Command,
    DeadlineKind,
    DeadlinePassed,
    DecideExtension,
    DismissCase,
    DomainEvent,
    EscalateCase,
    ExposeCase,
    ExtensionDenied,
    ExtensionGranted,
    ExtensionRequested,
    FileComplaint,
    FollowUpConfirmed,
    FollowUpRelapsed,
    FollowUpScheduled,
    MarkOverdue,
    MergeCase,
    PlanSubmitted,
    PublicCaseChangedV2,
    PublicHold,
    PublishCase,
    RateSatisfaction,
    RecordAccountability,
    RecordFollowUp,
    RectificationAccepted,
    RectificationRejected,
    RectificationSubmitted,
    RejectRectification,
    ReopenReason,
    RequestExtension,
    Role,
    Satisfaction,
    SatisfactionRated,
    ScheduleFollowUp,
    Severity,
    SubmitPlan,
    SubmitRectification,
    TimelineEntry,
    TransferCase,
    trusted,
)
from services.rectification.domain.calendar import END_OF_DAY, SHANGHAI, WorkCalendar, local_date
from services.rectification.domain.time_limits import Deadlines, ExtensionRefused, TimeLimit, TimeLimitPolicy

SUPERVISOR = "supervisor"
COMPLAINANT = "complainant"
ONE_DAY = timedelta(days=1)


class Refused(Exception):
    """A command the case cannot take, with a machine code and a reason for people."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Context(NamedTuple):
    """What a decision depends on besides the case (one per command: a named tuple, cheaper to make than a frozen
    dataclass, as ``CaseState``)."""

    case_id: str
    actor: Actor
    now: datetime
    known_units: frozenset[str] = frozenset()
    known_categories: frozenset[str] = frozenset()
    calendar: WorkCalendar | None = None
    policy: TimeLimitPolicy | None = None


class Hold(NamedTuple):
    """One spell during which ``holder`` had the case at ``step``; open while ``ended_at`` is None.

    Immutable; a named tuple rather than a frozen dataclass because each event makes one or two (see ``CaseState``).
    """

    step: str
    holder: str
    started_at: datetime
    ended_at: datetime | None = None


class HoldRecord(NamedTuple):
    step: str
    holder: str
    started_at: datetime
    ended_at: datetime | None
    working_days: float


class CaseState(NamedTuple):
    """What the decider knows of a case: immutable, one new state per event.

    A named tuple rather than a frozen dataclass: ``evolve`` makes one per event, and a frozen dataclass's
    ``__init__`` sets its 33 fields one ``object.__setattr__`` call at a time (5x the cost of building the tuple,
    which was 10% of the worker's CPU per command). Equality (of states with states), hashing and immutability are
    the same; the fields are read by name only."""

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
    first_officer: str | None = None
    ack_due: datetime | None = None
    rectify_due: datetime | None = None
    policy_version: str | None = None
    calendar_version: str | None = None
    acknowledged_at: datetime | None = None
    pending_extension_days: int | None = None
    extensions_granted: int = 0
    redo_count: int = 0
    round_rejections: int = 0
    reopen_count: int = 0
    ratings: tuple[tuple[str, Satisfaction], ...] = ()
    problem_summary: str | None = None
    result_summary: str | None = None
    exposed: bool = False
    escalations: int = 0
    accountability_records: int = 0
    marked: frozenset[tuple[DeadlineKind, datetime]] = frozenset()
    closed_at: datetime | None = None
    follow_up_due: date | None = None
    merged_into: str | None = None
    holds: tuple[Hold, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()

    @property
    def deadline(self) -> datetime | None:
        """The deadline the public sees: the rectification deadline (限时办结)."""
        return self.rectify_due

    @property
    def holder(self) -> str | None:
        return self.holds[-1].holder if self.holds and self.holds[-1].ended_at is None else None

    @property
    def step(self) -> str | None:
        return self.holds[-1].step if self.holds and self.holds[-1].ended_at is None else None


_STATE_INDEX = {name: i for i, name in enumerate(CaseState._fields)}
_new_tuple = tuple.__new__


def _replace_state(state: CaseState, changes: dict[str, Any]) -> CaseState:
    """``state._replace(**changes)`` at a quarter of its cost (each event makes one): the values of ``state``, a
    complete ``CaseState``, with ``changes`` by field name (an unknown name raises ``KeyError``)."""
    values = list(state)
    for name, value in changes.items():
        values[_STATE_INDEX[name]] = value
    new: CaseState = _new_tuple(CaseState, values)
    return new


UNIT_STATUSES = frozenset({CaseStatus.ASSIGNED, CaseStatus.ACKNOWLEDGED, CaseStatus.PLANNED})
FINAL_STATUSES = frozenset({CaseStatus.DISMISSED, CaseStatus.MERGED})
OPEN_STATUSES = frozenset(CaseStatus) - FINAL_STATUSES - {CaseStatus.CLOSED}
BEFORE_ACKNOWLEDGMENT = frozenset({CaseStatus.FILED, CaseStatus.ASSIGNED})
NOT_YET_RECTIFIED = frozenset({CaseStatus.FILED, *UNIT_STATUSES})

STEP_OF: dict[CaseStatus, str] = {
    CaseStatus.FILED: "triage",
    CaseStatus.ASSIGNED: "acknowledgment",
    CaseStatus.ACKNOWLEDGED: "planning",
    CaseStatus.PLANNED: "rectification",
    CaseStatus.RECTIFIED: "inspection",
    CaseStatus.ACCEPTED: "publication",
    CaseStatus.PUBLISHED: "rating",
}

PHRASE: dict[CaseStatus, str] = {
    CaseStatus.FILED: "the case is filed and not yet assigned",
    CaseStatus.ASSIGNED: "the case is assigned and not yet acknowledged",
    CaseStatus.ACKNOWLEDGED: "the case is acknowledged, with no plan submitted yet",
    CaseStatus.PLANNED: "the case is under rectification, with no rectification submitted yet",
    CaseStatus.RECTIFIED: "the submitted rectification is awaiting inspection",
    CaseStatus.ACCEPTED: "the rectification was accepted and is awaiting publication",
    CaseStatus.PUBLISHED: "the case is published and awaiting satisfaction ratings",
    CaseStatus.CLOSED: "the case is closed; only a follow-up review can reopen it",
    CaseStatus.DISMISSED: "the case was dismissed",
    CaseStatus.MERGED: "the case was merged into another case",
}


# ---------------------------------------------------------------------------- guards


def _require_role(ctx: Context, *roles: Role, action: str) -> None:
    if ctx.actor.role not in roles:
        allowed = " or ".join(r.value for r in roles)
        raise Refused("forbidden", f"cannot {action}: only a {allowed} may do this, not a {ctx.actor.role.value}")


def _existing(state: CaseState | None, ctx: Context, action: str) -> CaseState:
    if state is None:
        raise Refused("no_case", f"cannot {action}: case {ctx.case_id} has not been filed")
    return state


def _require_status(
    state: CaseState, allowed: Collection[CaseStatus], action: str, why: dict[CaseStatus, str] | None = None
) -> None:
    if state.status in allowed:
        return
    reason = (why or {}).get(state.status) or PHRASE[state.status]
    if state.status is CaseStatus.MERGED:
        reason = f"the case was merged into case {state.merged_into}"
    raise Refused("invalid_state", f"cannot {action}: {reason}")


def _require_own_case(state: CaseState, ctx: Context, action: str) -> None:
    if state.responsible_unit_id is None:
        raise Refused("not_your_case", f"cannot {action}: the case has not been assigned to any unit")
    if ctx.actor.unit_id != state.responsible_unit_id:
        raise Refused(
            "not_your_case",
            f"cannot {action}: the case is assigned to {state.responsible_unit_id}, not to {ctx.actor.unit_id}",
        )


def _unit_action(state: CaseState | None, ctx: Context, action: str, allowed: Collection[CaseStatus]) -> CaseState:
    _require_role(ctx, Role.UNIT, action=action)
    case = _existing(state, ctx, action)
    _require_own_case(case, ctx, action)
    _require_status(case, allowed, action)
    return case


def _supervisor_action(
    state: CaseState | None,
    ctx: Context,
    action: str,
    allowed: Collection[CaseStatus],
    why: dict[CaseStatus, str] | None = None,
    roles: tuple[Role, ...] = (Role.SUPERVISOR,),
) -> CaseState:
    _require_role(ctx, *roles, action=action)
    case = _existing(state, ctx, action)
    _require_status(case, allowed, action, why)
    return case


def _require_known_unit(ctx: Context, unit_id: str, action: str) -> None:
    if ctx.known_units and unit_id not in ctx.known_units:
        raise Refused("unknown_unit", f"cannot {action}: unit {unit_id!r} is not a known unit")


def _time_tools(ctx: Context, action: str) -> tuple[WorkCalendar, TimeLimitPolicy]:
    if ctx.calendar is None or ctx.policy is None:
        raise Refused(
            "no_policy",
            f"cannot {action}: no working-day calendar and time-limit policy are configured to set deadlines",
        )
    return ctx.calendar, ctx.policy


def _limits(policy: TimeLimitPolicy, state: CaseState, action: str) -> tuple[TimeLimit, TimeLimit]:
    try:
        return policy.limits_for(state.category, state.severity)
    except ValueError as exc:
        raise Refused("unknown_category", f"cannot {action}: {exc}") from exc


def _policy_deadlines(state: CaseState, ctx: Context, action: str) -> Deadlines:
    calendar, policy = _time_tools(ctx, action)
    _limits(policy, state, action)
    return policy.deadlines(ctx.now, state.category, state.severity, calendar)


def _reopen_due(state: CaseState, ctx: Context, action: str) -> datetime:
    calendar, policy = _time_tools(ctx, action)
    _, rectify_limit = _limits(policy, state, action)
    return rectify_limit.due(ctx.now, calendar)


_NOT_SUBMITTED = "no rectification has been submitted"
_INSPECTION_WHY: dict[CaseStatus, str] = {
    **dict.fromkeys(NOT_YET_RECTIFIED, _NOT_SUBMITTED),
    CaseStatus.ACCEPTED: "the rectification was already accepted",
    CaseStatus.PUBLISHED: "the rectification was already accepted and published",
}


# ---------------------------------------------------------------------------- deciders: filing and assignment


def decide_file(state: CaseState | None, cmd: FileComplaint, ctx: Context) -> list[DomainEvent]:
    _require_role(ctx, Role.CHANNEL, action="file a complaint")
    if state is not None:
        raise Refused("already_filed", f"cannot file: case {ctx.case_id} already exists")
    if ctx.known_units and cmd.unit_id not in ctx.known_units:
        raise Refused("unknown_unit", f"cannot file: unit {cmd.unit_id!r} is not a known unit")
    if ctx.known_categories and cmd.category not in ctx.known_categories:
        raise Refused("unknown_category", f"cannot file: category {cmd.category!r} is not a known category")
    return [
        trusted(
            CaseFiled,
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


def _explicit_due(day: date, calendar: WorkCalendar, ctx: Context, what: str) -> datetime:
    if day <= local_date(ctx.now):
        raise Refused("bad_deadline", f"cannot assign: {what} {day.isoformat()} must fall after the day of assignment")
    if not calendar.is_workday(day):
        raise Refused("bad_deadline", f"cannot assign: {what} {day.isoformat()} is not a working day")
    return datetime.combine(day, END_OF_DAY, tzinfo=SHANGHAI)


def decide_assign(state: CaseState | None, cmd: AssignCase, ctx: Context) -> list[DomainEvent]:
    action = "assign"
    case = _supervisor_action(
        state,
        ctx,
        action,
        {CaseStatus.FILED},
        {s: f"{PHRASE[s]}; use a transfer to change units" for s in UNIT_STATUSES},
    )
    _require_known_unit(ctx, cmd.responsible_unit_id, action)
    calendar, _ = _time_tools(ctx, action)
    deadlines = _policy_deadlines(case, ctx, action)
    rectify_due = (
        _explicit_due(cmd.rectify_by, calendar, ctx, "rectify_by") if cmd.rectify_by else deadlines.rectify_due
    )
    ack_due = _explicit_due(cmd.ack_by, calendar, ctx, "ack_by") if cmd.ack_by else min(deadlines.ack_due, rectify_due)
    if ack_due > rectify_due:
        raise Refused(
            "bad_deadline",
            f"cannot assign: acknowledgment due {ack_due.isoformat()} would fall after rectification due "
            f"{rectify_due.isoformat()}",
        )
    return [
        trusted(
            CaseAssigned,
            responsible_unit_id=cmd.responsible_unit_id,
            first_officer=cmd.first_officer,
            ack_due=ack_due,
            rectify_due=rectify_due,
            policy_version=deadlines.policy_version,
            calendar_version=deadlines.calendar_version,
            at=ctx.now,
        )
    ]


def decide_transfer(state: CaseState | None, cmd: TransferCase, ctx: Context) -> list[DomainEvent]:
    action = "transfer"
    case = _supervisor_action(
        state, ctx, action, UNIT_STATUSES, {CaseStatus.FILED: "the case has not been assigned yet; assign it instead"}
    )
    _require_known_unit(ctx, cmd.to_unit_id, action)
    if cmd.to_unit_id == case.responsible_unit_id:
        raise Refused("same_unit", f"cannot transfer: the case is already assigned to {cmd.to_unit_id}")
    deadlines = _policy_deadlines(case, ctx, action)
    assert case.responsible_unit_id is not None
    return [
        trusted(
            CaseTransferred,
            from_unit_id=case.responsible_unit_id,
            to_unit_id=cmd.to_unit_id,
            reason=cmd.reason,
            first_officer=cmd.first_officer,
            ack_due=deadlines.ack_due,
            rectify_due=deadlines.rectify_due,
            policy_version=deadlines.policy_version,
            calendar_version=deadlines.calendar_version,
            at=ctx.now,
        )
    ]


_PAST_TRIAGE = {
    s: f"{PHRASE[s]}, so it is past triage" for s in frozenset(CaseStatus) - BEFORE_ACKNOWLEDGMENT - FINAL_STATUSES
}


def decide_dismiss(state: CaseState | None, cmd: DismissCase, ctx: Context) -> list[DomainEvent]:
    _supervisor_action(state, ctx, "dismiss", BEFORE_ACKNOWLEDGMENT, _PAST_TRIAGE)
    return [trusted(CaseDismissed, reason=cmd.reason, at=ctx.now)]


def decide_merge(state: CaseState | None, cmd: MergeCase, ctx: Context) -> list[DomainEvent]:
    case = _supervisor_action(state, ctx, "merge", BEFORE_ACKNOWLEDGMENT, _PAST_TRIAGE)
    if cmd.into_case_id == ctx.case_id:
        raise Refused("merge_into_self", "cannot merge: a case cannot be merged into itself")
    return [trusted(CaseMerged, into_case_id=cmd.into_case_id, complainant_refs=case.complainant_refs, at=ctx.now)]


def decide_add_co_complainants(state: CaseState | None, cmd: AddCoComplainants, ctx: Context) -> list[DomainEvent]:
    action = "link co-complainants"
    case = _supervisor_action(state, ctx, action, OPEN_STATUSES, roles=(Role.SUPERVISOR, Role.SYSTEM))
    if cmd.merged_from == ctx.case_id:
        raise Refused("merge_into_self", f"cannot {action}: a case cannot be merged into itself")
    new = tuple(dict.fromkeys(ref for ref in cmd.complainant_refs if ref not in case.complainant_refs))
    if not new:
        raise Refused("already_linked", f"cannot {action}: every one of them is already linked to the case")
    return [trusted(CoComplainantsAdded, complainant_refs=new, merged_from=cmd.merged_from, at=ctx.now)]


# ---------------------------------------------------------------------------- deciders: the unit's work


def decide_acknowledge(state: CaseState | None, cmd: AcknowledgeCase, ctx: Context) -> list[DomainEvent]:
    case = _unit_action(state, ctx, "acknowledge", {CaseStatus.ASSIGNED})
    assert case.ack_due is not None
    return [trusted(CaseAcknowledged, on_time=ctx.now <= case.ack_due, at=ctx.now)]


def decide_request_extension(state: CaseState | None, cmd: RequestExtension, ctx: Context) -> list[DomainEvent]:
    action = "request an extension"
    case = _unit_action(state, ctx, action, {CaseStatus.ACKNOWLEDGED, CaseStatus.PLANNED})
    assert case.rectify_due is not None
    if case.pending_extension_days is not None:
        raise Refused(
            "extension_pending",
            f"cannot {action}: a request for {case.pending_extension_days} working day(s) awaits the supervisor",
        )
    if ctx.now > case.rectify_due:
        raise Refused(
            "deadline_passed", f"cannot {action}: the rectification deadline {case.rectify_due.isoformat()} has passed"
        )
    if ctx.calendar is not None and ctx.policy is not None:
        _extended_due(case, cmd.working_days, ctx.calendar, ctx.policy, action)
    return [trusted(ExtensionRequested, working_days=cmd.working_days, reason=cmd.reason, at=ctx.now)]


def _extended_due(
    case: CaseState, working_days: int, calendar: WorkCalendar, policy: TimeLimitPolicy, action: str
) -> datetime:
    assert case.rectify_due is not None
    try:
        return policy.extended_due(case.rectify_due, working_days, case.extensions_granted, calendar)
    except ExtensionRefused as exc:
        raise Refused("extension_not_allowed", f"cannot {action}: {exc}") from exc


def decide_extension(state: CaseState | None, cmd: DecideExtension, ctx: Context) -> list[DomainEvent]:
    action = "decide an extension"
    case = _supervisor_action(state, ctx, action, {CaseStatus.ACKNOWLEDGED, CaseStatus.PLANNED})
    days = case.pending_extension_days
    if days is None:
        raise Refused("no_extension_pending", f"cannot {action}: the unit has not requested one")
    if not cmd.granted:
        return [trusted(ExtensionDenied, working_days=days, reason=cmd.reason, at=ctx.now)]
    calendar, policy = _time_tools(ctx, "grant an extension")
    due = _extended_due(case, days, calendar, policy, "grant an extension")
    return [
        trusted(
            ExtensionGranted,
            working_days=days,
            rectify_due=due,
            extensions_granted=case.extensions_granted + 1,
            reason=cmd.reason,
            at=ctx.now,
        )
    ]


def decide_plan(state: CaseState | None, cmd: SubmitPlan, ctx: Context) -> list[DomainEvent]:
    _unit_action(state, ctx, "submit a plan", {CaseStatus.ACKNOWLEDGED, CaseStatus.PLANNED})
    return [trusted(PlanSubmitted, plan_summary=cmd.plan_summary, at=ctx.now)]


def decide_rectification(state: CaseState | None, cmd: SubmitRectification, ctx: Context) -> list[DomainEvent]:
    action = "submit the rectification"
    case = _unit_action(state, ctx, action, {CaseStatus.PLANNED})
    assert case.rectify_due is not None
    return [
        trusted(
            RectificationSubmitted,
            report=cmd.report,
            evidence_refs=cmd.evidence_refs,
            on_time=ctx.now <= case.rectify_due,
            at=ctx.now,
        )
    ]


# ---------------------------------------------------------------------------- deciders: inspection and publication


def decide_accept(state: CaseState | None, cmd: AcceptRectification, ctx: Context) -> list[DomainEvent]:
    case = _supervisor_action(state, ctx, "accept", {CaseStatus.RECTIFIED}, _INSPECTION_WHY)
    return [trusted(RectificationAccepted, note=cmd.note, first_pass=case.round_rejections == 0, at=ctx.now)]


def decide_reject(state: CaseState | None, cmd: RejectRectification, ctx: Context) -> list[DomainEvent]:
    action = "reject"
    case = _supervisor_action(state, ctx, action, {CaseStatus.RECTIFIED}, _INSPECTION_WHY)
    calendar, _ = _time_tools(ctx, action)
    due = calendar.add_working_days(ctx.now, cmd.working_days)
    return [
        trusted(RectificationRejected, reason=cmd.reason, redo_count=case.redo_count + 1, rectify_due=due, at=ctx.now)
    ]


def decide_publish(state: CaseState | None, cmd: PublishCase, ctx: Context) -> list[DomainEvent]:
    why = {
        **dict.fromkeys(NOT_YET_RECTIFIED | {CaseStatus.RECTIFIED}, "no rectification has been accepted"),
        CaseStatus.PUBLISHED: "the case is already published",
    }
    _supervisor_action(state, ctx, "publish", {CaseStatus.ACCEPTED}, why)
    return [trusted(CasePublished, problem_summary=cmd.problem_summary, result_summary=cmd.result_summary, at=ctx.now)]


def decide_expose(state: CaseState | None, cmd: ExposeCase, ctx: Context) -> list[DomainEvent]:
    action = "expose"
    case = _supervisor_action(state, ctx, action, OPEN_STATUSES)
    if case.problem_summary is None:
        raise Refused("not_published", f"cannot {action}: the case has no approved public summary; publish it first")
    if case.exposed:
        raise Refused("already_exposed", f"cannot {action}: the case is already on the exposure board")
    return [trusted(CaseExposed, reason=cmd.reason, at=ctx.now)]


# ---------------------------------------------------------------------------- deciders: after publication


def decide_rate(state: CaseState | None, cmd: RateSatisfaction, ctx: Context) -> list[DomainEvent]:
    action = "rate"
    _require_role(ctx, Role.PUBLIC, Role.CHANNEL, action=action)
    case = _existing(state, ctx, action)
    if cmd.complainant_ref not in case.complainant_refs:
        raise Refused("not_linked", f"cannot {action}: {cmd.complainant_ref} is not a complainant of this case")
    _require_status(case, {CaseStatus.PUBLISHED}, action)
    if any(ref == cmd.complainant_ref for ref, _ in case.ratings):
        raise Refused("already_rated", f"cannot {action}: {cmd.complainant_ref} has already rated this result")
    rated = trusted(SatisfactionRated, complainant_ref=cmd.complainant_ref, rating=cmd.rating, at=ctx.now)
    dissatisfied = sum(r is Satisfaction.DISSATISFIED for _, r in (*case.ratings, (cmd.complainant_ref, cmd.rating)))
    if 2 * dissatisfied <= len(case.complainant_refs):
        return [rated]
    due = _reopen_due(case, ctx, "reopen on a dissatisfied majority")
    reopened = trusted(
        CaseReopened, reason=ReopenReason.DISSATISFIED, reopen_count=case.reopen_count + 1, rectify_due=due, at=ctx.now
    )
    return [rated, reopened]


def decide_close(state: CaseState | None, cmd: CloseCase, ctx: Context) -> list[DomainEvent]:
    why = {
        **dict.fromkeys(NOT_YET_RECTIFIED | {CaseStatus.RECTIFIED}, "the rectification has not been accepted"),
        CaseStatus.ACCEPTED: "the case has not been published",
        CaseStatus.CLOSED: "the case is already closed",
    }
    _supervisor_action(state, ctx, "close", {CaseStatus.PUBLISHED}, why)
    return [trusted(CaseClosed, at=ctx.now)]


def decide_schedule_follow_up(state: CaseState | None, cmd: ScheduleFollowUp, ctx: Context) -> list[DomainEvent]:
    action = "schedule a follow-up review"
    case = _supervisor_action(state, ctx, action, {CaseStatus.CLOSED}, _NOT_CLOSED_WHY)
    if case.follow_up_due is not None:
        raise Refused("follow_up_pending", f"cannot {action}: one is already due on {case.follow_up_due.isoformat()}")
    due_on = cmd.due_on
    if due_on is None:
        _, policy = _time_tools(ctx, action)
        assert case.closed_at is not None
        due_on = policy.follow_up_due(case.closed_at).date()
    if due_on <= local_date(ctx.now):
        raise Refused("bad_deadline", f"cannot {action}: {due_on.isoformat()} is not after today")
    return [trusted(FollowUpScheduled, due_on=due_on, at=ctx.now)]


_NOT_CLOSED_WHY = {s: f"{PHRASE[s]}; a follow-up review comes after closing" for s in OPEN_STATUSES}


def decide_record_follow_up(state: CaseState | None, cmd: RecordFollowUp, ctx: Context) -> list[DomainEvent]:
    action = "record a follow-up review"
    case = _supervisor_action(state, ctx, action, {CaseStatus.CLOSED}, _NOT_CLOSED_WHY)
    if case.follow_up_due is None:
        raise Refused("no_follow_up", f"cannot {action}: none is scheduled")
    if cmd.held:
        return [trusted(FollowUpConfirmed, note=cmd.note, at=ctx.now)]
    due = _reopen_due(case, ctx, "reopen after a relapse")
    return [
        trusted(FollowUpRelapsed, note=cmd.note, at=ctx.now),
        trusted(
            CaseReopened, reason=ReopenReason.RELAPSED, reopen_count=case.reopen_count + 1, rectify_due=due, at=ctx.now
        ),
    ]


# ---------------------------------------------------------------------------- deciders: deadlines and accountability


def _no_deadline_running(which: str) -> dict[CaseStatus, str]:
    return {s: f"{PHRASE[s]}, so no {which} deadline is running" for s in CaseStatus}


def decide_mark_overdue(state: CaseState | None, cmd: MarkOverdue, ctx: Context) -> list[DomainEvent]:
    action = f"mark the {cmd.which.value} deadline overdue"
    _require_role(ctx, Role.SYSTEM, Role.SUPERVISOR, action=action)
    case = _existing(state, ctx, action)
    if (cmd.which, cmd.due) in case.marked:
        raise Refused("already_marked", f"cannot {action}: the breach of {cmd.due.isoformat()} is already recorded")
    if cmd.which is DeadlineKind.ACKNOWLEDGMENT:
        _require_status(case, {CaseStatus.ASSIGNED}, action, _no_deadline_running("acknowledgment"))
        current = case.ack_due
    else:
        _require_status(case, UNIT_STATUSES, action, _no_deadline_running("rectification"))
        current = case.rectify_due
    assert current is not None
    if cmd.due != current:
        raise Refused(
            "stale_deadline", f"cannot {action}: the deadline is now {current.isoformat()}, not {cmd.due.isoformat()}"
        )
    if ctx.now <= current:
        raise Refused("not_yet_due", f"cannot {action}: it is not due until {current.isoformat()}")
    assert case.holder is not None
    return [trusted(DeadlinePassed, which=cmd.which, due=current, holder=case.holder, at=ctx.now)]


def decide_escalate(state: CaseState | None, cmd: EscalateCase, ctx: Context) -> list[DomainEvent]:
    case = _supervisor_action(state, ctx, "escalate", OPEN_STATUSES, roles=(Role.SUPERVISOR, Role.SYSTEM))
    holder, days = longest_holder(case, ctx.calendar, until=ctx.now)
    assert case.step is not None and case.holder is not None
    return [
        trusted(
            CaseEscalated,
            reason=cmd.reason,
            step=case.step,
            holder=case.holder,
            longest_holder=holder,
            held_working_days=round(days, 4),
            at=ctx.now,
        )
    ]


def decide_accountability(state: CaseState | None, cmd: RecordAccountability, ctx: Context) -> list[DomainEvent]:
    action = "record accountability"
    _supervisor_action(state, ctx, action, OPEN_STATUSES)
    if cmd.target_kind is AccountabilityTarget.UNIT:
        _require_known_unit(ctx, cmd.target, action)
    return [
        trusted(AccountabilityRecorded, target_kind=cmd.target_kind, target=cmd.target, measure=cmd.measure, at=ctx.now)
    ]


DECIDERS: dict[type[Command], Callable[[Any, Any, Context], list[DomainEvent]]] = {
    FileComplaint: decide_file,
    AssignCase: decide_assign,
    TransferCase: decide_transfer,
    DismissCase: decide_dismiss,
    MergeCase: decide_merge,
    AddCoComplainants: decide_add_co_complainants,
    AcknowledgeCase: decide_acknowledge,
    RequestExtension: decide_request_extension,
    DecideExtension: decide_extension,
    SubmitPlan: decide_plan,
    SubmitRectification: decide_rectification,
    AcceptRectification: decide_accept,
    RejectRectification: decide_reject,
    PublishCase: decide_publish,
    ExposeCase: decide_expose,
    RateSatisfaction: decide_rate,
    CloseCase: decide_close,
    ScheduleFollowUp: decide_schedule_follow_up,
    RecordFollowUp: decide_record_follow_up,
    MarkOverdue: decide_mark_overdue,
    EscalateCase: decide_escalate,
    RecordAccountability: decide_accountability,
}


def decide(state: CaseState | None, command: Command, ctx: Context) -> list[DomainEvent]:
    decider = DECIDERS.get(type(command))
    if decider is None:
        raise Refused("unsupported", f"cannot {command.message_type}: rectification does not handle this command")
    return decider(state, command, ctx)


# ---------------------------------------------------------------------------- evolvers


def _holder_of(status: CaseStatus, unit_id: str | None) -> tuple[str, str] | None:
    step = STEP_OF.get(status)
    if step is None:
        return None
    if status in UNIT_STATUSES:
        return step, f"unit:{unit_id}"
    return step, COMPLAINANT if status is CaseStatus.PUBLISHED else SUPERVISOR


def _moved(state: CaseState, at: datetime, step: str | None = None, **changes: Any) -> CaseState:
    """The next version after a change made at ``at``: the holder's spell handed over, the public step recorded."""
    wanted = _holder_of(
        changes.get("status", state.status), changes.get("responsible_unit_id", state.responsible_unit_id)
    )
    holds = state.holds
    current = holds[-1] if holds and holds[-1].ended_at is None else None
    if current is None or wanted != (current.step, current.holder):
        if current is not None:
            holds = (*holds[:-1], Hold(current.step, current.holder, current.started_at, max(at, current.started_at)))
        if wanted is not None:
            holds = (*holds, Hold(step=wanted[0], holder=wanted[1], started_at=at))
    if step:
        changes["timeline"] = (*state.timeline, trusted(TimelineEntry, step=step, at=at))
    changes["version"] = state.version + 1
    changes["holds"] = holds
    return _replace_state(state, changes)


def evolve_filed(state: CaseState | None, event: CaseFiled, case_id: str) -> CaseState:
    filed = CaseState(
        case_id=case_id,
        version=0,
        status=CaseStatus.FILED,
        channel=event.channel,
        category=event.category,
        unit_id=event.unit_id,
        severity=event.severity,
        filed_at=event.filed_at,
        complainant_refs=event.complainant_refs,
    )
    return _moved(filed, event.filed_at, "filed")


def evolve_assigned(state: CaseState, event: CaseAssigned, case_id: str) -> CaseState:
    return _moved(
        state,
        event.at,
        "assigned",
        status=CaseStatus.ASSIGNED,
        responsible_unit_id=event.responsible_unit_id,
        first_officer=event.first_officer,
        ack_due=event.ack_due,
        rectify_due=event.rectify_due,
        policy_version=event.policy_version,
        calendar_version=event.calendar_version,
    )


def evolve_transferred(state: CaseState, event: CaseTransferred, case_id: str) -> CaseState:
    return _moved(
        state,
        event.at,
        "transferred",
        status=CaseStatus.ASSIGNED,
        responsible_unit_id=event.to_unit_id,
        first_officer=event.first_officer,
        ack_due=event.ack_due,
        rectify_due=event.rectify_due,
        policy_version=event.policy_version,
        calendar_version=event.calendar_version,
        acknowledged_at=None,
        pending_extension_days=None,
        extensions_granted=0,
    )


def evolve_dismissed(state: CaseState, event: CaseDismissed, case_id: str) -> CaseState:
    return _moved(state, event.at, "dismissed", status=CaseStatus.DISMISSED)


def evolve_merged(state: CaseState, event: CaseMerged, case_id: str) -> CaseState:
    return _moved(state, event.at, "merged", status=CaseStatus.MERGED, merged_into=event.into_case_id)


def evolve_co_complainants(state: CaseState, event: CoComplainantsAdded, case_id: str) -> CaseState:
    return _moved(state, event.at, complainant_refs=(*state.complainant_refs, *event.complainant_refs))


def evolve_acknowledged(state: CaseState, event: CaseAcknowledged, case_id: str) -> CaseState:
    return _moved(state, event.at, "acknowledged", status=CaseStatus.ACKNOWLEDGED, acknowledged_at=event.at)


def evolve_extension_requested(state: CaseState, event: ExtensionRequested, case_id: str) -> CaseState:
    return _moved(state, event.at, pending_extension_days=event.working_days)


def evolve_extension_granted(state: CaseState, event: ExtensionGranted, case_id: str) -> CaseState:
    return _moved(
        state,
        event.at,
        "extended",
        rectify_due=event.rectify_due,
        extensions_granted=event.extensions_granted,
        pending_extension_days=None,
    )


def evolve_extension_denied(state: CaseState, event: ExtensionDenied, case_id: str) -> CaseState:
    return _moved(state, event.at, pending_extension_days=None)


def evolve_planned(state: CaseState, event: PlanSubmitted, case_id: str) -> CaseState:
    return _moved(state, event.at, "planned", status=CaseStatus.PLANNED)


def evolve_rectified(state: CaseState, event: RectificationSubmitted, case_id: str) -> CaseState:
    return _moved(state, event.at, "rectified", status=CaseStatus.RECTIFIED, pending_extension_days=None)


def evolve_accepted(state: CaseState, event: RectificationAccepted, case_id: str) -> CaseState:
    return _moved(state, event.at, "accepted", status=CaseStatus.ACCEPTED)


def evolve_rejected(state: CaseState, event: RectificationRejected, case_id: str) -> CaseState:
    return _moved(
        state,
        event.at,
        "rejected",
        status=CaseStatus.PLANNED,
        redo_count=event.redo_count,
        round_rejections=state.round_rejections + 1,
        rectify_due=event.rectify_due,
    )


def evolve_published(state: CaseState, event: CasePublished, case_id: str) -> CaseState:
    return _moved(
        state,
        event.at,
        "published",
        status=CaseStatus.PUBLISHED,
        problem_summary=event.problem_summary,
        result_summary=event.result_summary,
        ratings=(),
    )


def evolve_exposed(state: CaseState, event: CaseExposed, case_id: str) -> CaseState:
    return _moved(state, event.at, "exposed", exposed=True)


def evolve_rated(state: CaseState, event: SatisfactionRated, case_id: str) -> CaseState:
    return _moved(state, event.at, "rated", ratings=(*state.ratings, (event.complainant_ref, event.rating)))


def evolve_reopened(state: CaseState, event: CaseReopened, case_id: str) -> CaseState:
    return _moved(
        state,
        event.at,
        "reopened",
        status=CaseStatus.PLANNED,
        reopen_count=event.reopen_count,
        rectify_due=event.rectify_due,
        round_rejections=0,
        extensions_granted=0,
        ratings=(),
        result_summary=None,
        closed_at=None,
        follow_up_due=None,
    )


def evolve_closed(state: CaseState, event: CaseClosed, case_id: str) -> CaseState:
    return _moved(state, event.at, "closed", status=CaseStatus.CLOSED, closed_at=event.at)


def evolve_follow_up_scheduled(state: CaseState, event: FollowUpScheduled, case_id: str) -> CaseState:
    return _moved(state, event.at, follow_up_due=event.due_on)


def evolve_follow_up_confirmed(state: CaseState, event: FollowUpConfirmed, case_id: str) -> CaseState:
    return _moved(state, event.at, "follow_up", follow_up_due=None)


def evolve_follow_up_relapsed(state: CaseState, event: FollowUpRelapsed, case_id: str) -> CaseState:
    return _moved(state, event.at, "follow_up", follow_up_due=None)


def evolve_deadline_passed(state: CaseState, event: DeadlinePassed, case_id: str) -> CaseState:
    return _moved(state, event.at, "overdue", marked=state.marked | {(event.which, event.due)})


def evolve_escalated(state: CaseState, event: CaseEscalated, case_id: str) -> CaseState:
    return _moved(state, event.at, "escalated", escalations=state.escalations + 1)


def evolve_accountability(state: CaseState, event: AccountabilityRecorded, case_id: str) -> CaseState:
    return _moved(state, event.at, accountability_records=state.accountability_records + 1)


EVOLVERS: dict[type[DomainEvent], Callable[[Any, Any, str], CaseState]] = {
    CaseFiled: evolve_filed,
    CaseAssigned: evolve_assigned,
    CaseTransferred: evolve_transferred,
    CaseDismissed: evolve_dismissed,
    CaseMerged: evolve_merged,
    CoComplainantsAdded: evolve_co_complainants,
    CaseAcknowledged: evolve_acknowledged,
    ExtensionRequested: evolve_extension_requested,
    ExtensionGranted: evolve_extension_granted,
    ExtensionDenied: evolve_extension_denied,
    PlanSubmitted: evolve_planned,
    RectificationSubmitted: evolve_rectified,
    RectificationAccepted: evolve_accepted,
    RectificationRejected: evolve_rejected,
    CasePublished: evolve_published,
    CaseExposed: evolve_exposed,
    SatisfactionRated: evolve_rated,
    CaseReopened: evolve_reopened,
    CaseClosed: evolve_closed,
    FollowUpScheduled: evolve_follow_up_scheduled,
    FollowUpConfirmed: evolve_follow_up_confirmed,
    FollowUpRelapsed: evolve_follow_up_relapsed,
    DeadlinePassed: evolve_deadline_passed,
    CaseEscalated: evolve_escalated,
    AccountabilityRecorded: evolve_accountability,
}


def evolve(state: CaseState | None, event: DomainEvent, case_id: str) -> CaseState:
    if state is None and not isinstance(event, CaseFiled):
        raise ValueError(f"case {case_id}: a stream must begin with CaseFiled, not {event.message_type}")
    return EVOLVERS[type(event)](state, event, case_id)


def fold(case_id: str, events: list[DomainEvent]) -> CaseState | None:
    state: CaseState | None = None
    for event in events:
        state = evolve(state, event, case_id)
    return state


# ---------------------------------------------------------------------------- who held it up (倒查责任)


def _elapsed(start: datetime, end: datetime | None, calendar: WorkCalendar | None) -> float:
    if end is None or end <= start:
        return 0.0
    if calendar is None:
        return (end - start) / ONE_DAY
    return calendar.working_days_between(start, end)


def holdups(
    state: CaseState, calendar: WorkCalendar | None = None, until: datetime | None = None, since: int = 0
) -> list[HoldRecord]:
    """Every spell a holder had the case (from the ``since``-th on), oldest first, in working days (calendar days
    without a calendar).

    The current spell is open (``ended_at`` None) and measured up to ``until``, or counts zero without it.
    """
    return [
        HoldRecord(
            step=hold.step,
            holder=hold.holder,
            started_at=hold.started_at,
            ended_at=hold.ended_at,
            working_days=_elapsed(hold.started_at, until, calendar)
            if hold.ended_at is None
            else spell_length(hold, calendar),
        )
        for hold in state.holds[since:]
    ]


def time_held(
    state: CaseState, calendar: WorkCalendar | None = None, until: datetime | None = None
) -> dict[str, float]:
    """Total time held per holder, in the units of ``holdups``."""
    totals: dict[str, float] = {}
    for record in holdups(state, calendar, until):
        totals[record.holder] = totals.get(record.holder, 0.0) + record.working_days
    return totals


def longest_holder(
    state: CaseState, calendar: WorkCalendar | None = None, until: datetime | None = None
) -> tuple[str, float]:
    """The holder with the most time in all; ties go to the holder named first alphabetically."""
    totals = time_held(state, calendar, until)
    return min(totals.items(), key=lambda item: (-item[1], item[0]))


# ---------------------------------------------------------------------------- the public view


def public_view(state: CaseState, calendar: WorkCalendar | None = None) -> PublicCaseChangedV2:
    """What the public may know of the case now: allow-listed fields, approved text only, and who held it up.

    Reads exactly what ``_shown`` lists: keep the two in step (a test checks they agree).
    """
    return trusted(PublicCaseChangedV2, **public_fields(state, calendar))


def public_fields(
    state: CaseState,
    calendar: WorkCalendar | None = None,
    show_hold: Callable[[Hold, WorkCalendar | None], object] | None = None,
) -> dict[str, Any]:
    """``public_view``'s field values in the contract's order (the worker encodes them without building the model).
    ``show_hold`` gives each spell's public form (``public_hold`` without it; the worker gives its encoded bytes)."""
    show = public_hold if show_hold is None else show_hold
    return {
        "case_id": state.case_id,
        "status": state.status,
        "category": state.category,
        "unit_id": state.unit_id,
        "responsible_unit_id": state.responsible_unit_id,
        "filed_at": state.filed_at,
        "deadline": state.rectify_due,
        "redo_count": state.redo_count,
        "problem_summary": state.problem_summary,
        "result_summary": state.result_summary,
        "exposed": state.exposed,
        "entry": state.timeline[-1],
        "overdue": _overdue(state),
        "reopen_count": state.reopen_count,
        "escalations": state.escalations,
        "holds": tuple([show(h, calendar) for h in state.holds]),
    }


def _overdue(state: CaseState) -> bool:
    return state.status in UNIT_STATUSES and (DeadlineKind.RECTIFICATION, state.rectify_due) in state.marked


def _shown(state: CaseState) -> tuple[object, ...]:
    """Everything ``public_view`` reads of the case: states with equal ``_shown`` have equal public views."""
    return (
        state.case_id,
        state.status,
        state.category,
        state.unit_id,
        state.responsible_unit_id,
        state.filed_at,
        state.rectify_due,
        state.redo_count,
        state.problem_summary,
        state.result_summary,
        state.exposed,
        state.timeline[-1],
        _overdue(state),
        state.reopen_count,
        state.escalations,
        state.holds,
    )


def public_changed(before: CaseState | None, after: CaseState) -> bool:
    """Whether the public view of ``after`` differs from that of ``before`` (None: a new case), without building
    either view: internal steps (an extension request, a linked co-complainant) change nothing the public sees."""
    return before is None or _shown(before) != _shown(after)


_PUBLIC_HOLDS: dict[int, tuple[Hold, WorkCalendar | None, PublicHold]] = {}
_PUBLIC_HOLDS_KEPT = 1 << 17
_LENGTHS: dict[int, tuple[Hold, WorkCalendar | None, float]] = {}


def spell_length(hold: Hold, calendar: WorkCalendar | None = None) -> float:
    """A closed spell's length in working days (calendar days without a calendar), as ``holdups`` gives it.
    Remembered by identity as ``public_hold`` is: the public view and the projection row of a new spell measure it
    once between them."""
    found = _LENGTHS.get(id(hold))
    if found is not None and found[0] is hold and found[1] is calendar:
        return found[2]
    length = _elapsed(hold.started_at, hold.ended_at, calendar)
    if len(_LENGTHS) >= _PUBLIC_HOLDS_KEPT:
        _LENGTHS.clear()
    _LENGTHS[id(hold)] = (hold, calendar, length)
    return length


def public_hold(hold: Hold, calendar: WorkCalendar | None = None) -> PublicHold:
    """One spell as the public sees it. Remembered by identity: a case's earlier spells are the same ``Hold``
    objects in each of its later states, so each public view finds them without hashing and comparing their times.
    The memo keeps the spell it was made for, so its id cannot be reused while its entry lives."""
    found = _PUBLIC_HOLDS.get(id(hold))
    if found is not None and found[0] is hold and found[1] is calendar:
        return found[2]
    public = trusted(PublicHold, **public_hold_fields(hold, calendar))
    if len(_PUBLIC_HOLDS) >= _PUBLIC_HOLDS_KEPT:
        _PUBLIC_HOLDS.clear()
    _PUBLIC_HOLDS[id(hold)] = (hold, calendar, public)
    return public


def public_hold_fields(hold: Hold, calendar: WorkCalendar | None = None) -> dict[str, Any]:
    """``public_hold``'s field values in the contract's order."""
    return {
        "step": hold.step,
        "holder": hold.holder,
        "started_at": hold.started_at,
        "ended_at": hold.ended_at,
        "working_days": None if hold.ended_at is None else round(spell_length(hold, calendar), 4),
    }


def pending_deadlines(state: CaseState) -> list[tuple[DeadlineKind, datetime]]:
    """The deadlines now running on the case that have not been recorded as breached.

    Mirrors what ``decide_mark_overdue`` accepts, so the deadline watcher only asks for breaches that can happen.
    """
    pending: list[tuple[DeadlineKind, datetime]] = []
    if state.status is CaseStatus.ASSIGNED and state.ack_due is not None:
        pending.append((DeadlineKind.ACKNOWLEDGMENT, state.ack_due))
    if state.status in UNIT_STATUSES and state.rectify_due is not None:
        pending.append((DeadlineKind.RECTIFICATION, state.rectify_due))
    return [(kind, due) for kind, due in pending if (kind, due) not in state.marked]
