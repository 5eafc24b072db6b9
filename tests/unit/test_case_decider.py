"""The case decider, example by example: every step, every refusal and who may do what."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pytest

from services.common import contracts as c
from services.common.contracts import Actor, CaseStatus, Command, DeadlineKind, DomainEvent, Role, Satisfaction
from services.rectification.domain.calendar import END_OF_DAY, SHANGHAI, load_calendar
from services.rectification.domain.case import (
    DECIDERS,
    EVOLVERS,
    CaseState,
    Context,
    Refused,
    decide,
    evolve,
    fold,
    holdups,
    longest_holder,
    public_view,
    time_held,
)
from services.rectification.domain.time_limits import load_time_limits

CALENDAR = load_calendar()
POLICY = load_time_limits()
UNITS = frozenset({"meiwan", "wutong", "renwan"})
CATEGORIES = frozenset(POLICY.categories)
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=SHANGHAI)  # a Monday
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
PRIVATE = "PRIVATE-DESCRIPTION-7f3a"

CHANNEL = Actor(agency_id="hotline-12345", role=Role.CHANNEL)
SUPERVISOR = Actor(agency_id="jiufengban", role=Role.SUPERVISOR)
MEIWAN = Actor(agency_id="unit-meiwan", role=Role.UNIT, unit_id="meiwan")
WUTONG = Actor(agency_id="unit-wutong", role=Role.UNIT, unit_id="wutong")
WATCHER = Actor(agency_id="deadline-watcher", role=Role.SYSTEM)
SURVEY = Actor(agency_id="survey", role=Role.PUBLIC)


def end_of(day: date) -> datetime:
    return datetime.combine(day, END_OF_DAY, tzinfo=SHANGHAI)


def filing(severity: c.Severity = c.Severity.GENERAL, category: str = "inaction", ref: str = "cp-1") -> c.FileComplaint:
    return c.FileComplaint(
        channel=c.Channel.HOTLINE_12345,
        category=category,
        unit_id="meiwan",
        description=f"路灯坏了三个月无人修 {PRIVATE}",
        severity=severity,
        complainant_ref=ref,
    )


ASSIGN = c.AssignCase(responsible_unit_id="meiwan", first_officer="梅湾街道 王主任")
PLAN = c.SubmitPlan(plan_summary="三日内更换路灯 PRIVATE-PLAN")
RECTIFY = c.SubmitRectification(report="已更换路灯 PRIVATE-REPORT", evidence_refs=("ev-1",))
PUBLISH = c.PublishCase(problem_summary="梅湾街道路灯长期损坏", result_summary="已全部修复")


@dataclass
class Case:
    """A case driven through the real decider, one command at a time, with its own clock."""

    now: datetime = T0
    state: CaseState | None = None
    events: list[DomainEvent] = field(default_factory=list)
    calendar: bool = True
    case_id: str = "RC-1"

    def ctx(self, actor: Actor) -> Context:
        return Context(
            case_id=self.case_id,
            actor=actor,
            now=self.now,
            known_units=UNITS,
            known_categories=CATEGORIES,
            calendar=CALENDAR if self.calendar else None,
            policy=POLICY if self.calendar else None,
        )

    def do(self, actor: Actor, command: Command, after: timedelta = timedelta(0)) -> list[DomainEvent]:
        self.now += after
        events = decide(self.state, command, self.ctx(actor))
        for event in events:
            self.state = evolve(self.state, event, self.case_id)
        self.events += events
        return events

    def refused(self, actor: Actor, command: Command, after: timedelta = timedelta(0)) -> Refused:
        self.now += after
        before = self.state
        with pytest.raises(Refused) as err:
            decide(self.state, command, self.ctx(actor))
        assert self.state is before
        return err.value

    @property
    def s(self) -> CaseState:
        assert self.state is not None
        return self.state


def at(status: CaseStatus, severity: c.Severity = c.Severity.GENERAL) -> Case:
    """A fresh case brought to ``status`` along the ordinary path."""
    case = Case()
    case.do(CHANNEL, filing(severity))
    path: list[tuple[CaseStatus, Actor, Command]] = [
        (CaseStatus.ASSIGNED, SUPERVISOR, ASSIGN),
        (CaseStatus.ACKNOWLEDGED, MEIWAN, c.AcknowledgeCase()),
        (CaseStatus.PLANNED, MEIWAN, PLAN),
        (CaseStatus.RECTIFIED, MEIWAN, RECTIFY),
        (CaseStatus.ACCEPTED, SUPERVISOR, c.AcceptRectification(note="合格")),
        (CaseStatus.PUBLISHED, SUPERVISOR, PUBLISH),
        (CaseStatus.CLOSED, SUPERVISOR, c.CloseCase()),
    ]
    if status is CaseStatus.DISMISSED:
        case.do(SUPERVISOR, c.DismissCase(reason="不属于受理范围"), HOUR)
        return case
    if status is CaseStatus.MERGED:
        case.do(SUPERVISOR, c.MergeCase(into_case_id="RC-0"), HOUR)
        return case
    for reached, actor, command in path:
        if case.s.status is status:
            break
        case.do(actor, command, HOUR)
        assert case.s.status is reached
    assert case.s.status is status
    return case


def steps(case: Case) -> list[str]:
    return [entry.step for entry in case.s.timeline]


# ---------------------------------------------------------------------------- the whole lifecycle


def test_the_ordinary_lifecycle_from_filing_to_follow_up() -> None:
    case = at(CaseStatus.PUBLISHED)
    case.do(SURVEY, c.RateSatisfaction(complainant_ref="cp-1", rating=Satisfaction.SATISFIED), DAY)
    case.do(SUPERVISOR, c.CloseCase(), HOUR)
    [scheduled] = case.do(SUPERVISOR, c.ScheduleFollowUp(), HOUR)
    assert isinstance(scheduled, c.FollowUpScheduled)
    assert scheduled.due_on == (case.s.closed_at + timedelta(days=90)).date()  # type: ignore[operator]
    [confirmed] = case.do(SUPERVISOR, c.RecordFollowUp(held=True, note="复查未反弹"), timedelta(days=90))
    assert isinstance(confirmed, c.FollowUpConfirmed)
    assert case.s.status is CaseStatus.CLOSED and case.s.follow_up_due is None
    assert steps(case) == [
        "filed",
        "assigned",
        "acknowledged",
        "planned",
        "rectified",
        "accepted",
        "published",
        "rated",
        "closed",
        "follow_up",
    ]
    assert case.s.version == len(case.events) == 11
    assert fold("RC-1", case.events) == case.state


def test_assignment_sets_deadlines_from_the_policy_on_the_working_day_calendar() -> None:
    case = at(CaseStatus.FILED)
    [assigned] = case.do(SUPERVISOR, ASSIGN)
    assert isinstance(assigned, c.CaseAssigned)
    assert assigned.ack_due == end_of(date(2025, 3, 4))  # 1 working day: the day of assignment does not count
    assert assigned.rectify_due == end_of(date(2025, 3, 12))  # 7 working days, over one weekend
    assert (assigned.policy_version, assigned.calendar_version) == (POLICY.version, CALENDAR.version)
    assert case.s.responsible_unit_id == "meiwan" and case.s.first_officer == "梅湾街道 王主任"
    assert public_view(case.s).deadline == assigned.rectify_due


def test_an_urgent_case_is_due_round_the_clock_and_acknowledged_within_the_same_hours() -> None:
    case = at(CaseStatus.FILED, c.Severity.URGENT)
    [assigned] = case.do(SUPERVISOR, ASSIGN)
    assert isinstance(assigned, c.CaseAssigned)
    assert assigned.rectify_due == assigned.ack_due == T0 + 2 * HOUR


def test_explicit_deadlines_override_the_policy() -> None:
    case = at(CaseStatus.FILED)
    [assigned] = case.do(SUPERVISOR, ASSIGN.model_copy(update={"rectify_by": date(2025, 3, 7)}))
    assert isinstance(assigned, c.CaseAssigned)
    assert assigned.rectify_due == end_of(date(2025, 3, 7))
    assert assigned.ack_due == end_of(date(2025, 3, 4))


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ({"rectify_by": date(2025, 3, 8)}, "2025-03-08 is not a working day"),
        ({"rectify_by": date(2025, 3, 3)}, "must fall after the day of assignment"),
        ({"ack_by": date(2025, 3, 10), "rectify_by": date(2025, 3, 5)}, "would fall after rectification due"),
    ],
)
def test_bad_explicit_deadlines_are_refused(override: dict[str, date], words: str) -> None:
    refusal = at(CaseStatus.FILED).refused(SUPERVISOR, ASSIGN.model_copy(update=override))
    assert refusal.code == "bad_deadline" and words in refusal.reason


def test_without_calendar_and_policy_filing_works_but_deadlines_are_refused() -> None:
    case = Case(calendar=False)
    case.do(CHANNEL, filing())
    refusal = case.refused(SUPERVISOR, ASSIGN)
    assert refusal.code == "no_policy"
    assert "calendar" in refusal.reason and "policy" in refusal.reason


def test_assignment_names_known_units_and_policy_categories_only() -> None:
    case = at(CaseStatus.FILED)
    assert case.refused(SUPERVISOR, ASSIGN.model_copy(update={"responsible_unit_id": "atlantis"})).code == (
        "unknown_unit"
    )
    odd = Case()
    odd.state = fold("RC-1", [c.CaseFiled(**(at(CaseStatus.FILED).events[0].model_dump() | {"category": "bribery"}))])
    refusal = odd.refused(SUPERVISOR, ASSIGN)
    assert refusal.code == "unknown_category" and "bribery" in refusal.reason


def test_assigning_twice_points_to_a_transfer() -> None:
    refusal = at(CaseStatus.ASSIGNED).refused(SUPERVISOR, ASSIGN)
    assert refusal.code == "invalid_state" and "use a transfer" in refusal.reason


# ---------------------------------------------------------------------------- transfer, dismissal, merging


def test_a_transfer_moves_the_case_with_fresh_deadlines_and_a_new_holder() -> None:
    case = at(CaseStatus.ACKNOWLEDGED)
    [moved] = case.do(SUPERVISOR, c.TransferCase(to_unit_id="wutong", reason="属梧桐街道辖区"), DAY)
    assert isinstance(moved, c.CaseTransferred)
    assert (moved.from_unit_id, moved.to_unit_id) == ("meiwan", "wutong")
    assert moved.ack_due == end_of(date(2025, 3, 5))
    assert case.s.status is CaseStatus.ASSIGNED and case.s.holder == "unit:wutong"
    assert case.refused(MEIWAN, c.AcknowledgeCase()).code == "not_your_case"
    case.do(WUTONG, c.AcknowledgeCase(), HOUR)
    assert steps(case)[-2:] == ["transferred", "acknowledged"]


@pytest.mark.parametrize(
    ("status", "command", "code"),
    [
        (CaseStatus.FILED, c.TransferCase(to_unit_id="wutong", reason="x"), "invalid_state"),
        (CaseStatus.ASSIGNED, c.TransferCase(to_unit_id="meiwan", reason="x"), "same_unit"),
        (CaseStatus.ASSIGNED, c.TransferCase(to_unit_id="atlantis", reason="x"), "unknown_unit"),
        (CaseStatus.RECTIFIED, c.TransferCase(to_unit_id="wutong", reason="x"), "invalid_state"),
    ],
)
def test_invalid_transfers(status: CaseStatus, command: Command, code: str) -> None:
    assert at(status).refused(SUPERVISOR, command).code == code


@pytest.mark.parametrize("status", [CaseStatus.FILED, CaseStatus.ASSIGNED])
def test_a_case_in_triage_can_be_dismissed_or_merged(status: CaseStatus) -> None:
    dismissed = at(status)
    dismissed.do(SUPERVISOR, c.DismissCase(reason="不属于作风问题"))
    assert dismissed.s.status is CaseStatus.DISMISSED and dismissed.s.holder is None
    merged = at(status)
    [event] = merged.do(SUPERVISOR, c.MergeCase(into_case_id="RC-0"))
    assert event == c.CaseMerged(into_case_id="RC-0", complainant_refs=("cp-1",), at=merged.now)
    assert merged.s.status is CaseStatus.MERGED


def test_dismissal_and_merging_are_refused_after_triage() -> None:
    case = at(CaseStatus.ACKNOWLEDGED)
    refusal = case.refused(SUPERVISOR, c.DismissCase(reason="x"))
    assert refusal.code == "invalid_state" and "past triage" in refusal.reason
    assert case.refused(SUPERVISOR, c.MergeCase(into_case_id="RC-0")).code == "invalid_state"
    assert at(CaseStatus.FILED).refused(SUPERVISOR, c.MergeCase(into_case_id="RC-1")).code == "merge_into_self"


def test_a_merged_case_takes_no_more_commands() -> None:
    refusal = at(CaseStatus.MERGED).refused(SUPERVISOR, ASSIGN)
    assert refusal.code == "invalid_state" and "merged into case RC-0" in refusal.reason
    assert at(CaseStatus.DISMISSED).refused(SUPERVISOR, ASSIGN).reason == "cannot assign: the case was dismissed"


def test_co_complainants_join_the_surviving_case_once() -> None:
    case = at(CaseStatus.ASSIGNED)
    [added] = case.do(WATCHER, c.AddCoComplainants(complainant_refs=("cp-1", "cp-2", "cp-2"), merged_from="RC-9"))
    assert isinstance(added, c.CoComplainantsAdded) and added.complainant_refs == ("cp-2",)
    assert case.s.complainant_refs == ("cp-1", "cp-2")
    assert steps(case)[-1] == "assigned"  # linking is not a public step
    again = c.AddCoComplainants(complainant_refs=("cp-2",), merged_from="RC-9")
    assert case.refused(SUPERVISOR, again).code == "already_linked"
    assert case.refused(SUPERVISOR, again.model_copy(update={"merged_from": "RC-1"})).code == "merge_into_self"
    assert at(CaseStatus.CLOSED).refused(SUPERVISOR, again).code == "invalid_state"


# ---------------------------------------------------------------------------- the unit's work


def test_acknowledgment_is_on_time_up_to_the_end_of_the_due_day() -> None:
    on_time = at(CaseStatus.ASSIGNED)
    on_time.now = end_of(date(2025, 3, 4))
    assert on_time.do(MEIWAN, c.AcknowledgeCase()) == [c.CaseAcknowledged(on_time=True, at=on_time.now)]
    late = at(CaseStatus.ASSIGNED)
    late.now = end_of(date(2025, 3, 4)) + timedelta(microseconds=1)
    assert late.do(MEIWAN, c.AcknowledgeCase()) == [c.CaseAcknowledged(on_time=False, at=late.now)]
    assert late.s.acknowledged_at == late.now
    refusal = late.refused(MEIWAN, c.AcknowledgeCase())
    assert refusal.code == "invalid_state" and "acknowledged" in refusal.reason


def test_a_plan_comes_before_the_rectification_and_may_be_revised() -> None:
    case = at(CaseStatus.ACKNOWLEDGED)
    refusal = case.refused(MEIWAN, RECTIFY)
    assert refusal.reason == "cannot submit the rectification: the case is acknowledged, with no plan submitted yet"
    case.do(MEIWAN, PLAN)
    case.do(MEIWAN, PLAN.model_copy(update={"plan_summary": "修订方案"}))
    assert case.s.status is CaseStatus.PLANNED
    [submitted] = case.do(MEIWAN, RECTIFY)
    assert isinstance(submitted, c.RectificationSubmitted) and submitted.on_time


def test_a_late_rectification_is_recorded_as_not_on_time() -> None:
    case = at(CaseStatus.PLANNED)
    case.now = case.s.rectify_due + HOUR  # type: ignore[operator]
    [submitted] = case.do(MEIWAN, RECTIFY)
    assert isinstance(submitted, c.RectificationSubmitted) and not submitted.on_time


def test_an_unassigned_case_belongs_to_no_unit() -> None:
    refusal = at(CaseStatus.FILED).refused(MEIWAN, c.AcknowledgeCase())
    assert refusal.code == "not_your_case" and "not been assigned" in refusal.reason


# ---------------------------------------------------------------------------- extensions


def test_an_extension_granted_adds_working_days_to_the_rectification_deadline() -> None:
    case = at(CaseStatus.PLANNED)
    due = case.s.rectify_due
    assert due == end_of(date(2025, 3, 12))
    [requested] = case.do(MEIWAN, c.RequestExtension(working_days=3, reason="需协调供电公司"), HOUR)
    assert isinstance(requested, c.ExtensionRequested)
    assert case.refused(MEIWAN, c.RequestExtension(working_days=1, reason="x")).code == "extension_pending"
    [granted] = case.do(SUPERVISOR, c.DecideExtension(granted=True, reason="同意"), HOUR)
    assert isinstance(granted, c.ExtensionGranted)
    assert granted.rectify_due == end_of(date(2025, 3, 17)) == CALENDAR.add_working_days(due, 3)  # type: ignore[arg-type]
    assert (granted.extensions_granted, case.s.pending_extension_days) == (1, None)
    assert steps(case)[-1] == "extended" and public_view(case.s).deadline == granted.rectify_due


def test_an_extension_denied_keeps_the_deadline() -> None:
    case = at(CaseStatus.ACKNOWLEDGED)
    due = case.s.rectify_due
    case.do(MEIWAN, c.RequestExtension(working_days=3, reason="x"))
    [denied] = case.do(SUPERVISOR, c.DecideExtension(granted=False, reason="理由不充分"))
    assert denied == c.ExtensionDenied(working_days=3, reason="理由不充分", at=case.now)
    assert case.s.rectify_due == due and case.s.pending_extension_days is None
    assert case.refused(SUPERVISOR, c.DecideExtension(granted=True, reason="x")).code == "no_extension_pending"


def test_extensions_are_limited_by_the_policy() -> None:
    case = at(CaseStatus.PLANNED)
    refusal = case.refused(MEIWAN, c.RequestExtension(working_days=8, reason="x"))
    assert refusal.code == "extension_not_allowed" and "1 to 7 working days" in refusal.reason
    for _ in range(POLICY.extensions.max_extensions):
        case.do(MEIWAN, c.RequestExtension(working_days=1, reason="x"))
        case.do(SUPERVISOR, c.DecideExtension(granted=True, reason="同意"))
    refusal = case.refused(MEIWAN, c.RequestExtension(working_days=1, reason="x"))
    assert refusal.code == "extension_not_allowed" and "at most 2" in refusal.reason


def test_an_extension_is_requested_before_the_deadline_passes() -> None:
    case = at(CaseStatus.PLANNED)
    case.now = case.s.rectify_due + HOUR  # type: ignore[operator]
    assert case.refused(MEIWAN, c.RequestExtension(working_days=1, reason="x")).code == "deadline_passed"


def test_granting_needs_the_policy() -> None:
    case = at(CaseStatus.PLANNED)
    case.do(MEIWAN, c.RequestExtension(working_days=1, reason="x"))
    case.calendar = False
    assert case.refused(SUPERVISOR, c.DecideExtension(granted=True, reason="x")).code == "no_policy"
    case.do(SUPERVISOR, c.DecideExtension(granted=False, reason="x"))


# ---------------------------------------------------------------------------- inspection and publication


@pytest.mark.parametrize("status", [CaseStatus.ASSIGNED, CaseStatus.ACKNOWLEDGED, CaseStatus.PLANNED])
def test_nothing_to_inspect_before_a_rectification_is_submitted(status: CaseStatus) -> None:
    case = at(status)
    assert case.refused(SUPERVISOR, c.AcceptRectification()).reason == (
        "cannot accept: no rectification has been submitted"
    )
    assert case.refused(SUPERVISOR, c.RejectRectification(reason="x", working_days=3)).code == "invalid_state"


def test_a_rejection_sends_the_case_back_with_a_new_deadline_and_counts_the_redo() -> None:
    case = at(CaseStatus.RECTIFIED)
    [rejected] = case.do(SUPERVISOR, c.RejectRectification(reason="证据不足", working_days=3), DAY)
    assert isinstance(rejected, c.RectificationRejected)
    assert rejected.redo_count == 1
    assert rejected.rectify_due == CALENDAR.add_working_days(case.now, 3)
    assert case.s.status is CaseStatus.PLANNED and case.s.holder == "unit:meiwan"
    case.do(MEIWAN, RECTIFY, HOUR)
    case.do(SUPERVISOR, c.RejectRectification(reason="仍不合格", working_days=2), HOUR)
    case.do(MEIWAN, RECTIFY, HOUR)
    [accepted] = case.do(SUPERVISOR, c.AcceptRectification(), HOUR)
    assert accepted == c.RectificationAccepted(first_pass=False, at=case.now)
    assert case.s.redo_count == public_view(case.s).redo_count == 2


def test_a_first_pass_acceptance() -> None:
    case = at(CaseStatus.RECTIFIED)
    [accepted] = case.do(SUPERVISOR, c.AcceptRectification(note="合格"))
    assert isinstance(accepted, c.RectificationAccepted) and accepted.first_pass
    assert case.refused(SUPERVISOR, c.AcceptRectification()).reason == (
        "cannot accept: the rectification was already accepted"
    )


def test_rejection_needs_the_calendar() -> None:
    case = at(CaseStatus.RECTIFIED)
    case.calendar = False
    assert case.refused(SUPERVISOR, c.RejectRectification(reason="x", working_days=3)).code == "no_policy"


def test_only_an_accepted_case_is_published_and_only_approved_text_goes_public() -> None:
    refusal = at(CaseStatus.RECTIFIED).refused(SUPERVISOR, PUBLISH)
    assert refusal.reason == "cannot publish: no rectification has been accepted"
    case = at(CaseStatus.PUBLISHED)
    view = public_view(case.s)
    assert (view.problem_summary, view.result_summary) == (PUBLISH.problem_summary, PUBLISH.result_summary)
    assert view.status is CaseStatus.PUBLISHED and view.entry.step == "published"
    assert case.refused(SUPERVISOR, PUBLISH).reason == "cannot publish: the case is already published"
    for state in [fold("RC-1", case.events[:n]) for n in range(1, len(case.events) + 1)]:
        dumped = public_view(state).model_dump_json()  # type: ignore[arg-type]
        assert "PRIVATE" not in dumped and "cp-1" not in dumped and "王主任" not in dumped


def test_exposure_needs_an_approved_summary_and_happens_once() -> None:
    refusal = at(CaseStatus.ACCEPTED).refused(SUPERVISOR, c.ExposeCase(reason="典型案例"))
    assert refusal.code == "not_published"
    case = at(CaseStatus.PUBLISHED)
    case.do(SUPERVISOR, c.ExposeCase(reason="典型案例"))
    assert public_view(case.s).exposed and steps(case)[-1] == "exposed"
    assert case.refused(SUPERVISOR, c.ExposeCase(reason="again")).code == "already_exposed"


# ---------------------------------------------------------------------------- ratings and reopening


def rated(refs: tuple[str, ...], *ratings: tuple[str, Satisfaction]) -> tuple[Case, list[list[DomainEvent]]]:
    case = at(CaseStatus.ASSIGNED)
    if refs[1:]:
        case.do(SUPERVISOR, c.AddCoComplainants(complainant_refs=refs[1:], merged_from="RC-9"))
    for actor, command in [
        (MEIWAN, c.AcknowledgeCase()),
        (MEIWAN, PLAN),
        (MEIWAN, RECTIFY),
        (SUPERVISOR, c.AcceptRectification()),
        (SUPERVISOR, PUBLISH),
    ]:
        case.do(actor, command, HOUR)
    answers = [case.do(SURVEY, c.RateSatisfaction(complainant_ref=r, rating=v), DAY) for r, v in ratings]
    return case, answers


D, S, B = Satisfaction.DISSATISFIED, Satisfaction.SATISFIED, Satisfaction.BASICALLY_SATISFIED


def test_a_lone_dissatisfied_complainant_reopens_the_case() -> None:
    case, [answer] = rated(("cp-1",), ("cp-1", D))
    rating, reopened = answer
    assert isinstance(rating, c.SatisfactionRated) and isinstance(reopened, c.CaseReopened)
    assert reopened.reason is c.ReopenReason.DISSATISFIED and reopened.reopen_count == 1
    assert reopened.rectify_due == CALENDAR.add_working_days(case.now, 7)
    assert case.s.status is CaseStatus.PLANNED and case.s.holder == "unit:meiwan"
    assert case.s.ratings == () and case.s.result_summary is None
    assert public_view(case.s).problem_summary == PUBLISH.problem_summary
    assert steps(case)[-2:] == ["rated", "reopened"]


def test_the_case_reopens_as_soon_as_most_linked_complainants_are_dissatisfied() -> None:
    _, answers = rated(("cp-1", "cp-2", "cp-3"), ("cp-1", D), ("cp-2", S), ("cp-3", D))
    assert [len(a) for a in answers] == [1, 1, 2]
    _, early = rated(("cp-1", "cp-2", "cp-3"), ("cp-1", D), ("cp-2", D))
    assert [len(a) for a in early] == [1, 2]  # the third rating could not change the outcome


def test_a_tie_or_a_satisfied_majority_does_not_reopen() -> None:
    case, answers = rated(("cp-1", "cp-2", "cp-3", "cp-4"), ("cp-1", D), ("cp-2", D), ("cp-3", S), ("cp-4", B))
    assert all(len(a) == 1 for a in answers) and case.s.status is CaseStatus.PUBLISHED
    case.do(SUPERVISOR, c.CloseCase())
    assert case.s.status is CaseStatus.CLOSED


def test_ratings_come_once_from_linked_complainants_after_publication() -> None:
    case, _ = rated(("cp-1", "cp-2"), ("cp-1", S))
    assert case.refused(SURVEY, c.RateSatisfaction(complainant_ref="cp-1", rating=D)).code == "already_rated"
    assert case.refused(SURVEY, c.RateSatisfaction(complainant_ref="cp-x", rating=D)).code == "not_linked"
    case.do(CHANNEL, c.RateSatisfaction(complainant_ref="cp-2", rating=B))
    refusal = at(CaseStatus.ACCEPTED).refused(SURVEY, c.RateSatisfaction(complainant_ref="cp-1", rating=S))
    assert refusal.code == "invalid_state" and "awaiting publication" in refusal.reason


def test_a_reopened_case_is_redone_and_published_again() -> None:
    case, _ = rated(("cp-1",), ("cp-1", D))
    case.do(MEIWAN, PLAN, HOUR)
    case.do(MEIWAN, RECTIFY, HOUR)
    [accepted] = case.do(SUPERVISOR, c.AcceptRectification(), HOUR)
    assert isinstance(accepted, c.RectificationAccepted) and accepted.first_pass  # first pass of the new round
    case.do(SUPERVISOR, PUBLISH.model_copy(update={"result_summary": "二次整改完成"}), HOUR)
    case.do(SURVEY, c.RateSatisfaction(complainant_ref="cp-1", rating=S), HOUR)
    assert public_view(case.s).result_summary == "二次整改完成" and case.s.reopen_count == 1


def test_reopening_on_dissatisfaction_needs_the_policy() -> None:
    case = at(CaseStatus.PUBLISHED)
    case.calendar = False
    assert case.refused(SURVEY, c.RateSatisfaction(complainant_ref="cp-1", rating=D)).code == "no_policy"
    case.do(SURVEY, c.RateSatisfaction(complainant_ref="cp-1", rating=S))


# ---------------------------------------------------------------------------- closing and the follow-up review


def test_only_a_published_case_is_closed() -> None:
    assert at(CaseStatus.ACCEPTED).refused(SUPERVISOR, c.CloseCase()).reason == (
        "cannot close: the case has not been published"
    )
    assert at(CaseStatus.CLOSED).refused(SUPERVISOR, c.CloseCase()).reason == "cannot close: the case is already closed"


@pytest.mark.parametrize(
    "command",
    [
        c.ExposeCase(reason="x"),
        c.EscalateCase(reason="x"),
        c.RecordAccountability(target_kind=c.AccountabilityTarget.UNIT, target="meiwan", measure="约谈"),
        c.RateSatisfaction(complainant_ref="cp-1", rating=S),
        c.AddCoComplainants(complainant_refs=("cp-2",), merged_from="RC-9"),
        c.MarkOverdue(which=DeadlineKind.RECTIFICATION, due=end_of(date(2025, 3, 12))),
    ],
)
def test_only_the_follow_up_review_follows_closure(command: Command) -> None:
    case = at(CaseStatus.CLOSED)
    actor = SURVEY if isinstance(command, c.RateSatisfaction) else SUPERVISOR
    refusal = case.refused(actor, command, DAY * 30)
    assert refusal.code == "invalid_state" and "closed" in refusal.reason


def test_follow_up_reviews_are_scheduled_one_at_a_time() -> None:
    case = at(CaseStatus.CLOSED)
    assert case.refused(SUPERVISOR, c.RecordFollowUp(held=True, note="x")).code == "no_follow_up"
    assert case.refused(SUPERVISOR, c.ScheduleFollowUp(due_on=case.now.date())).code == "bad_deadline"
    case.do(SUPERVISOR, c.ScheduleFollowUp(due_on=date(2025, 6, 3)))
    assert case.s.follow_up_due == date(2025, 6, 3)
    assert case.refused(SUPERVISOR, c.ScheduleFollowUp()).code == "follow_up_pending"
    assert at(CaseStatus.PUBLISHED).refused(SUPERVISOR, c.ScheduleFollowUp()).code == "invalid_state"


def test_a_relapse_at_the_follow_up_review_reopens_the_case() -> None:
    case = at(CaseStatus.CLOSED)
    case.do(SUPERVISOR, c.ScheduleFollowUp())
    relapsed, reopened = case.do(SUPERVISOR, c.RecordFollowUp(held=False, note="路灯再次损坏"), timedelta(days=90))
    assert isinstance(relapsed, c.FollowUpRelapsed) and isinstance(reopened, c.CaseReopened)
    assert reopened.reason is c.ReopenReason.RELAPSED
    assert case.s.status is CaseStatus.PLANNED and case.s.closed_at is None and case.s.follow_up_due is None
    assert steps(case)[-2:] == ["follow_up", "reopened"]


# ---------------------------------------------------------------------------- deadlines, escalation, accountability


def test_a_deadline_breach_is_marked_once_after_it_passes() -> None:
    case = at(CaseStatus.ASSIGNED)
    mark = c.MarkOverdue(which=DeadlineKind.ACKNOWLEDGMENT, due=end_of(date(2025, 3, 4)))
    assert case.refused(WATCHER, mark).code == "not_yet_due"
    stale = mark.model_copy(update={"due": end_of(date(2025, 3, 5))})
    assert case.refused(WATCHER, stale).code == "stale_deadline"
    case.now = end_of(date(2025, 3, 5))
    [passed] = case.do(WATCHER, mark)
    assert passed == c.DeadlinePassed(
        which=DeadlineKind.ACKNOWLEDGMENT, due=mark.due, holder="unit:meiwan", at=case.now
    )
    assert steps(case)[-1] == "overdue"
    assert case.refused(SUPERVISOR, mark).code == "already_marked"
    case.do(MEIWAN, c.AcknowledgeCase())
    assert case.refused(WATCHER, mark).code == "already_marked"
    fresh = mark.model_copy(update={"due": end_of(date(2025, 3, 6))})
    refusal = case.refused(WATCHER, fresh)
    assert refusal.code == "invalid_state" and "no acknowledgment deadline is running" in refusal.reason


def test_the_rectification_deadline_runs_until_the_rectification_is_submitted() -> None:
    case = at(CaseStatus.PLANNED)
    due = case.s.rectify_due
    assert due is not None
    mark = c.MarkOverdue(which=DeadlineKind.RECTIFICATION, due=due)
    case.now = due + HOUR
    case.do(SUPERVISOR, mark)
    case.do(MEIWAN, RECTIFY)
    case.do(SUPERVISOR, c.RejectRectification(reason="x", working_days=1))
    new_mark = mark.model_copy(update={"due": case.s.rectify_due})
    case.now = case.s.rectify_due + HOUR  # type: ignore[operator]
    case.do(WATCHER, new_mark)  # the new deadline is a new breach
    assert case.s.marked == {(DeadlineKind.RECTIFICATION, due), (DeadlineKind.RECTIFICATION, new_mark.due)}
    case.do(MEIWAN, RECTIFY)
    assert case.refused(WATCHER, mark.model_copy(update={"due": case.now})).code == "invalid_state"


def test_escalation_names_who_held_the_case_longest() -> None:
    case = at(CaseStatus.FILED)
    case.do(SUPERVISOR, ASSIGN, HOUR)  # the supervisor held it for an hour of a working day
    case.do(MEIWAN, c.AcknowledgeCase(), DAY)
    case.do(MEIWAN, PLAN, 8 * DAY)
    [escalated] = case.do(SUPERVISOR, c.EscalateCase(reason="超期未整改"), 3 * DAY)
    assert isinstance(escalated, c.CaseEscalated)
    assert (escalated.step, escalated.holder, escalated.longest_holder) == (
        "rectification",
        "unit:meiwan",
        "unit:meiwan",
    )
    held = time_held(case.s, CALENDAR, until=case.now)
    assert escalated.held_working_days == round(held["unit:meiwan"], 4)
    assert held["supervisor"] == pytest.approx(1 / 24)
    assert steps(case)[-1] == "escalated" and case.s.escalations == 1


def test_holdups_lists_each_spell_in_working_days_or_calendar_days_without_a_calendar() -> None:
    case = at(CaseStatus.FILED)
    case.now = datetime(2025, 3, 7, 9, 0, tzinfo=SHANGHAI)  # Friday 09:00, filed on Monday 09:00
    case.do(SUPERVISOR, ASSIGN)
    case.do(MEIWAN, c.AcknowledgeCase(), 3 * DAY)  # Monday 09:00, over the weekend
    records = holdups(case.s, CALENDAR)
    assert [(r.step, r.holder) for r in records] == [
        ("triage", "supervisor"),
        ("acknowledgment", "unit:meiwan"),
        ("planning", "unit:meiwan"),
    ]
    assert [r.working_days for r in records[:2]] == [pytest.approx(4.0), pytest.approx(1.0)]
    assert records[2].ended_at is None and records[2].working_days == 0.0
    assert [r.working_days for r in holdups(case.s)[:2]] == [pytest.approx(4.0), pytest.approx(3.0)]
    assert holdups(case.s, CALENDAR, until=case.now + DAY)[2].working_days == pytest.approx(1.0)
    assert longest_holder(case.s, CALENDAR)[0] == "supervisor"


def test_a_case_on_hold_with_the_complainants_counts_against_them() -> None:
    case = at(CaseStatus.PUBLISHED)
    case.now += 10 * DAY
    assert case.s.holder == "complainant" and longest_holder(case.s, until=case.now)[0] == "complainant"


def test_accountability_is_recorded_against_a_known_unit_or_a_cadre() -> None:
    case = at(CaseStatus.PLANNED)
    [record] = case.do(
        SUPERVISOR,
        c.RecordAccountability(target_kind=c.AccountabilityTarget.CADRE, target="某科长", measure="诫勉谈话"),
    )
    assert isinstance(record, c.AccountabilityRecorded)
    assert case.s.accountability_records == 1 and steps(case)[-1] == "planned"
    unknown = c.RecordAccountability(target_kind=c.AccountabilityTarget.UNIT, target="atlantis", measure="通报")
    assert case.refused(SUPERVISOR, unknown).code == "unknown_unit"


# ---------------------------------------------------------------------------- who may do what

SAMPLES: dict[type[Command], Command] = {
    c.FileComplaint: filing(),
    c.AssignCase: ASSIGN,
    c.TransferCase: c.TransferCase(to_unit_id="wutong", reason="辖区争议"),
    c.DismissCase: c.DismissCase(reason="不属实"),
    c.MergeCase: c.MergeCase(into_case_id="RC-0"),
    c.AddCoComplainants: c.AddCoComplainants(complainant_refs=("cp-2",), merged_from="RC-9"),
    c.AcknowledgeCase: c.AcknowledgeCase(),
    c.RequestExtension: c.RequestExtension(working_days=2, reason="x"),
    c.DecideExtension: c.DecideExtension(granted=True, reason="x"),
    c.SubmitPlan: PLAN,
    c.SubmitRectification: RECTIFY,
    c.AcceptRectification: c.AcceptRectification(),
    c.RejectRectification: c.RejectRectification(reason="x", working_days=2),
    c.PublishCase: PUBLISH,
    c.ExposeCase: c.ExposeCase(reason="x"),
    c.RateSatisfaction: c.RateSatisfaction(complainant_ref="cp-1", rating=D),
    c.CloseCase: c.CloseCase(),
    c.ScheduleFollowUp: c.ScheduleFollowUp(),
    c.RecordFollowUp: c.RecordFollowUp(held=False, note="x"),
    c.MarkOverdue: c.MarkOverdue(which=DeadlineKind.RECTIFICATION, due=end_of(date(2025, 3, 12))),
    c.EscalateCase: c.EscalateCase(reason="x"),
    c.RecordAccountability: c.RecordAccountability(
        target_kind=c.AccountabilityTarget.UNIT, target="meiwan", measure="约谈"
    ),
}

SUPERVISOR_ONLY = {
    c.AssignCase,
    c.TransferCase,
    c.DismissCase,
    c.MergeCase,
    c.DecideExtension,
    c.AcceptRectification,
    c.RejectRectification,
    c.PublishCase,
    c.ExposeCase,
    c.CloseCase,
    c.ScheduleFollowUp,
    c.RecordFollowUp,
    c.RecordAccountability,
}
UNIT_ONLY = {c.AcknowledgeCase, c.RequestExtension, c.SubmitPlan, c.SubmitRectification}
ALLOWED: dict[type[Command], set[Role]] = {
    c.FileComplaint: {Role.CHANNEL},
    **{cls: {Role.SUPERVISOR} for cls in SUPERVISOR_ONLY},
    **{cls: {Role.UNIT} for cls in UNIT_ONLY},
    c.MarkOverdue: {Role.SUPERVISOR, Role.SYSTEM},
    c.EscalateCase: {Role.SUPERVISOR, Role.SYSTEM},
    c.AddCoComplainants: {Role.SUPERVISOR, Role.SYSTEM},
    c.RateSatisfaction: {Role.PUBLIC, Role.CHANNEL},
}
ACTOR_OF: dict[Role, Actor] = {
    Role.CHANNEL: CHANNEL,
    Role.SUPERVISOR: SUPERVISOR,
    Role.UNIT: MEIWAN,
    Role.PUBLIC: SURVEY,
    Role.SYSTEM: WATCHER,
}


def test_every_command_and_event_has_one_handler_and_a_contract() -> None:
    commands = {cls for cls in c.MESSAGE_CLASSES if issubclass(cls, c.Command)}
    events = {cls for cls in c.MESSAGE_CLASSES if issubclass(cls, c.CaseEvent)}
    assert set(DECIDERS) == commands == set(SAMPLES) == set(ALLOWED)
    assert set(EVOLVERS) == events


@pytest.mark.parametrize(("cls", "role"), [(cls, role) for cls in SAMPLES for role in Role if role not in ALLOWED[cls]])
def test_the_role_matrix(cls: type[Command], role: Role) -> None:
    for status in CaseStatus:
        refusal = at(status).refused(ACTOR_OF[role], SAMPLES[cls])
        assert refusal.code == "forbidden", (cls.__name__, role, status)
        assert f"not a {role.value}" in refusal.reason


@pytest.mark.parametrize("cls", sorted(UNIT_ONLY, key=lambda cls: cls.__name__))
def test_another_unit_gets_not_your_case(cls: type[Command]) -> None:
    for status in set(CaseStatus) - {CaseStatus.FILED, CaseStatus.DISMISSED, CaseStatus.MERGED}:
        refusal = at(status).refused(WUTONG, SAMPLES[cls])
        assert refusal.code == "not_your_case"
        assert "assigned to meiwan, not to wutong" in refusal.reason


@pytest.mark.parametrize("cls", [cls for cls in SAMPLES if cls is not c.FileComplaint])
def test_no_command_but_filing_before_the_case_exists(cls: type[Command]) -> None:
    actor = ACTOR_OF[min(ALLOWED[cls])]
    with pytest.raises(Refused) as err:
        decide(None, SAMPLES[cls], Case().ctx(actor))
    assert err.value.code == "no_case" and "RC-1 has not been filed" in err.value.reason


def test_filing_twice_and_an_unknown_command_are_refused() -> None:
    assert at(CaseStatus.ASSIGNED).refused(CHANNEL, filing()).code == "already_filed"

    class Shout(c.Command):
        message_type = "Shout"

    assert at(CaseStatus.FILED).refused(SUPERVISOR, Shout()).code == "unsupported"


@pytest.mark.parametrize("status", list(CaseStatus))
def test_no_command_crashes_in_any_state(status: CaseStatus) -> None:
    """Every command by every actor in every status either yields events that evolve, or is refused."""
    base = at(status)
    for command in SAMPLES.values():
        for actor in [*ACTOR_OF.values(), WUTONG]:
            for calendar in (True, False):
                case = Case(now=base.now + 30 * DAY, state=base.state, events=list(base.events), calendar=calendar)
                try:
                    case.do(actor, command)
                except Refused as refusal:
                    assert refusal.code and refusal.reason.startswith("cannot ")
                    continue
                assert case.s.version == len(case.events)
