"""Properties of the case decider over random command sequences, on the real calendar and policy.

Each example files one case and then runs a sequence of commands: half "guided" (the move the case's
status calls for, by the right actor) so that cases get deep into the lifecycle, half arbitrary (any
command, any actor, parameters partly taken from the state, partly random) so that every refusal path is
exercised. The clock only moves forward. After every command these invariants are checked:

VERSION        the state's version is the number of events in the stream.
REPLAY         folding the stream from nothing gives the state the decider worked on.
REDO           redo_count equals the number of RectificationRejected events.
BREACH_ONCE    a deadline breach (DeadlinePassed) is recorded at most once per deadline (which, due).
CLOSURE        after CaseClosed nothing follows but the follow-up review (FollowUpScheduled, FollowUpConfirmed,
               FollowUpRelapsed) and CaseReopened, until the case is reopened.
DEADLINES      every deadline counted in working days ends (23:59:59.999999 Asia/Shanghai) a working day of the
               official calendar; only the round-the-clock tiers (urgent, utilities) give a deadline that lies
               exactly their hours after it was set; and rectify_due >= ack_due whenever both are set.
HOLDERS        one holder at a time: each spell ends before the next begins; only closed, dismissed and merged
               cases have no holder.
REFUSAL_PURE   a refused command changes nothing (the same state object, with the same hash over all its
               nested values) and gives a reason.
NEVER_CRASH    any command by any actor in any state yields events or a Refused, never another exception.
CONTRACTS      every event survives its JSON round trip unchanged: it validates, although the decider fills its
               events without validating them (``contracts.trusted``: their values come from validated commands).
PUBLIC_TEXT    no PublicCaseChanged carries text that was not approved through PublishCase: every other text
               carries a marker that never appears in the public view.
PUBLIC_CHANGE  ``public_changed`` (what the service asks before it publishes a view) says the public view moved
               exactly when the views before and after an event differ.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common import contracts as c
from services.common.contracts import Actor, CaseStatus, Command, DeadlineKind, DomainEvent, Role, Satisfaction
from services.rectification.domain.calendar import END_OF_DAY, SHANGHAI, to_local
from services.rectification.domain.case import (
    UNIT_STATUSES,
    CaseState,
    Context,
    Refused,
    decide,
    evolve,
    fold,
    holdups,
    public_changed,
    public_view,
)
from tests.unit.test_case_decider import CALENDAR, POLICY, UNITS

SECRET = "SECRET-9c1d"  # in every text no supervisor approved for publication
APPROVED = "APPROVED"  # in every text approved through PublishCase
REFS = ("cp-1", "cp-2", "cp-3", "cp-4")
START = datetime(2025, 1, 1, tzinfo=SHANGHAI)
STEPS = [timedelta(minutes=1), timedelta(hours=1), timedelta(hours=5), timedelta(days=1), timedelta(days=3)]
STEPS += [timedelta(days=8), timedelta(days=40)]
AFTER_CLOSURE = (c.FollowUpScheduled, c.FollowUpConfirmed, c.FollowUpRelapsed, c.CaseReopened)

CHANNEL = Actor(agency_id="hotline-12345", role=Role.CHANNEL)
SUPERVISOR = Actor(agency_id="jiufengban", role=Role.SUPERVISOR)
WATCHER = Actor(agency_id="deadline-watcher", role=Role.SYSTEM)
SURVEY = Actor(agency_id="survey", role=Role.PUBLIC)
UNIT_ACTORS = {u: Actor(agency_id=f"unit-{u}", role=Role.UNIT, unit_id=u) for u in sorted(UNITS)}
ACTORS = [CHANNEL, SUPERVISOR, WATCHER, SURVEY, *UNIT_ACTORS.values()]


def secret(data: st.DataObject) -> str:
    return f"{SECRET} {data.draw(st.integers(0, 999))}"


@dataclass
class Run:
    """One case under test: its state, its events and what the checks remember along the way."""

    now: datetime
    severity: c.Severity
    state: CaseState | None = None
    events: list[DomainEvent] = field(default_factory=list)
    approved: set[str] = field(default_factory=set)
    case_id: str = "RC-P"

    @property
    def s(self) -> CaseState:
        assert self.state is not None
        return self.state

    def ctx(self, actor: Actor) -> Context:
        return Context(
            case_id=self.case_id,
            actor=actor,
            now=self.now,
            known_units=UNITS,
            known_categories=frozenset(POLICY.categories),
            calendar=CALENDAR,
            policy=POLICY,
        )


# ---------------------------------------------------------------------------- moves


def own_unit(run: Run) -> Actor:
    return UNIT_ACTORS.get(run.s.responsible_unit_id or "", UNIT_ACTORS["meiwan"])


def guided(data: st.DataObject, run: Run) -> tuple[Actor, Command]:
    """The move the case's status calls for, by the actor whose turn it is; the deadline watcher goes first."""
    status, state = run.s.status, run.s
    for which, due, running in [
        (DeadlineKind.ACKNOWLEDGMENT, state.ack_due, status is CaseStatus.ASSIGNED),
        (DeadlineKind.RECTIFICATION, state.rectify_due, status in UNIT_STATUSES),
    ]:
        if running and due is not None and due < run.now and (which, due) not in state.marked:
            return WATCHER, c.MarkOverdue(which=which, due=due)
    if state.pending_extension_days is not None:
        return SUPERVISOR, c.DecideExtension(granted=data.draw(st.booleans()), reason=secret(data))
    if status is CaseStatus.PLANNED and not data.draw(st.integers(0, 3)):
        return own_unit(run), c.RequestExtension(working_days=data.draw(st.integers(1, 8)), reason=secret(data))
    if status is CaseStatus.FILED:
        return SUPERVISOR, c.AssignCase(responsible_unit_id="meiwan", first_officer=f"officer {SECRET}")
    if status is CaseStatus.ASSIGNED:
        return own_unit(run), c.AcknowledgeCase()
    if status is CaseStatus.ACKNOWLEDGED:
        return own_unit(run), c.SubmitPlan(plan_summary=secret(data))
    if status is CaseStatus.PLANNED:
        return own_unit(run), c.SubmitRectification(report=secret(data), evidence_refs=("ev-1",))
    if status is CaseStatus.RECTIFIED:
        if data.draw(st.booleans()):
            return SUPERVISOR, c.AcceptRectification(note=secret(data))
        return SUPERVISOR, c.RejectRectification(reason=secret(data), working_days=data.draw(st.integers(1, 10)))
    if status is CaseStatus.ACCEPTED:
        n = data.draw(st.integers(0, 999))
        return SUPERVISOR, c.PublishCase(problem_summary=f"{APPROVED} problem {n}", result_summary=f"{APPROVED} {n}")
    if status is CaseStatus.PUBLISHED and data.draw(st.integers(0, 3)):
        return rating(data, run)
    if status is CaseStatus.PUBLISHED:
        return SUPERVISOR, c.CloseCase()
    if status is CaseStatus.CLOSED and run.s.follow_up_due is None:
        return SUPERVISOR, c.ScheduleFollowUp()
    return SUPERVISOR, c.RecordFollowUp(held=data.draw(st.booleans()), note=secret(data))


def rating(data: st.DataObject, run: Run) -> tuple[Actor, Command]:
    ref = data.draw(st.sampled_from(run.s.complainant_refs))
    return SURVEY, c.RateSatisfaction(complainant_ref=ref, rating=data.draw(st.sampled_from(Satisfaction)))


def some_due(data: st.DataObject, run: Run) -> datetime:
    known = [d for d in (run.s.ack_due, run.s.rectify_due) if d is not None]
    return data.draw(st.sampled_from([*known, run.now])) if known else run.now


def arbitrary(data: st.DataObject, run: Run) -> tuple[Actor, Command]:
    """Any command, mostly by the actor who may give it, with parameters partly from the state so that some fit."""
    unit = data.draw(st.sampled_from(sorted(UNITS)))
    text = secret(data)
    builders = [
        lambda: c.FileComplaint(
            channel=c.Channel.MEDIA, category="inaction", unit_id=unit, description=text, complainant_ref="cp-9"
        ),
        lambda: c.AssignCase(responsible_unit_id=unit, first_officer=text),
        lambda: c.TransferCase(to_unit_id=unit, reason=text, first_officer=text),
        lambda: c.DismissCase(reason=text),
        lambda: c.MergeCase(into_case_id=data.draw(st.sampled_from(["RC-0", run.case_id]))),
        lambda: c.AddCoComplainants(
            complainant_refs=tuple(data.draw(st.sets(st.sampled_from(REFS), min_size=1))),
            merged_from=data.draw(st.sampled_from(["RC-0", run.case_id])),
        ),
        lambda: c.AcknowledgeCase(),
        lambda: c.RequestExtension(working_days=data.draw(st.integers(1, 9)), reason=text),
        lambda: c.DecideExtension(granted=data.draw(st.booleans()), reason=text),
        lambda: c.SubmitPlan(plan_summary=text),
        lambda: c.SubmitRectification(report=text, evidence_refs=("ev-2",)),
        lambda: c.AcceptRectification(note=text),
        lambda: c.RejectRectification(reason=text, working_days=data.draw(st.integers(1, 10))),
        lambda: c.ExposeCase(reason=text),
        lambda: c.CloseCase(),
        lambda: c.ScheduleFollowUp(),
        lambda: c.RecordFollowUp(held=data.draw(st.booleans()), note=text),
        lambda: c.MarkOverdue(which=data.draw(st.sampled_from(DeadlineKind)), due=some_due(data, run)),
        lambda: c.EscalateCase(reason=text),
        lambda: c.RecordAccountability(target_kind=c.AccountabilityTarget.CADRE, target="某科长", measure=text[:200]),
        lambda: c.RateSatisfaction(
            complainant_ref=data.draw(st.sampled_from(REFS)), rating=data.draw(st.sampled_from(Satisfaction))
        ),
    ]
    command = data.draw(st.sampled_from(builders))()
    if data.draw(st.integers(0, 3)):
        return natural_actor(run, command), command
    return data.draw(st.sampled_from(ACTORS)), command


def natural_actor(run: Run, command: Command) -> Actor:
    if isinstance(command, c.FileComplaint):
        return CHANNEL
    if isinstance(command, (c.AcknowledgeCase, c.RequestExtension, c.SubmitPlan, c.SubmitRectification)):
        return own_unit(run)
    if isinstance(command, (c.MarkOverdue, c.EscalateCase, c.AddCoComplainants)):
        return WATCHER
    if isinstance(command, c.RateSatisfaction):
        return SURVEY
    return SUPERVISOR


# ---------------------------------------------------------------------------- invariants


def is_working_day_end(due: datetime) -> bool:
    local = to_local(due)
    return local.timetz().replace(tzinfo=None) == END_OF_DAY and CALENDAR.is_workday(local.date())


def tier_hours(run: Run) -> int | None:
    return POLICY.limits_for("inaction", run.severity)[1].hours


def check_deadlines(run: Run, event: DomainEvent) -> None:
    hours = tier_hours(run)
    set_at, by_policy = run.now, list[datetime]()
    if isinstance(event, (c.CaseAssigned, c.CaseTransferred)):
        set_at, by_policy = event.at, [event.ack_due, event.rectify_due]
    elif isinstance(event, c.CaseReopened):
        set_at, by_policy = event.at, [event.rectify_due]
    elif isinstance(event, (c.ExtensionGranted, c.RectificationRejected)):
        assert is_working_day_end(event.rectify_due)
    for due in by_policy:
        assert is_working_day_end(due) or (hours is not None and due == set_at + timedelta(hours=hours))
    if run.s.ack_due is not None and run.s.rectify_due is not None:
        assert run.s.rectify_due >= run.s.ack_due


def check_after(run: Run, new: list[DomainEvent]) -> None:
    state, events = run.s, run.events
    # VERSION
    assert state.version == len(events)
    # REDO
    assert state.redo_count == sum(isinstance(e, c.RectificationRejected) for e in events)
    # BREACH_ONCE
    breaches = Counter((e.which, e.due) for e in events if isinstance(e, c.DeadlinePassed))
    assert all(n == 1 for n in breaches.values())
    assert set(breaches) == state.marked
    # CLOSURE
    closed = False
    for e in events:
        assert not closed or isinstance(e, AFTER_CLOSURE), type(e).__name__
        closed = (closed or isinstance(e, c.CaseClosed)) and not isinstance(e, c.CaseReopened)
    # HOLDERS
    spells = holdups(state, CALENDAR)
    assert all(a.ended_at is not None and a.ended_at <= b.started_at for a, b in pairwise(spells))
    has_holder = state.status not in {CaseStatus.CLOSED, CaseStatus.DISMISSED, CaseStatus.MERGED}
    assert (state.holder is not None) == has_holder
    for event in new:
        check_deadlines(run, event)
        # CONTRACTS
        assert type(event).model_validate_json(event.model_dump_json()) == event
        if isinstance(event, c.CasePublished):
            run.approved |= {event.problem_summary, event.result_summary}
    # PUBLIC_TEXT
    view = public_view(state)
    assert SECRET not in view.model_dump_json()
    assert {view.problem_summary, view.result_summary} <= run.approved | {None}


# ---------------------------------------------------------------------------- the property


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_random_command_sequences_keep_the_invariants(data: st.DataObject) -> None:
    start = START + timedelta(days=data.draw(st.integers(0, 364)), hours=data.draw(st.integers(0, 23)))
    run = Run(now=start, severity=data.draw(st.sampled_from(c.Severity)))
    filing = c.FileComplaint(
        channel=c.Channel.HOTLINE_12345,
        category="inaction",
        unit_id="meiwan",
        description=f"{SECRET} description",
        severity=run.severity,
        complainant_ref="cp-1",
    )
    run.events = decide(None, filing, run.ctx(CHANNEL))
    run.state = fold(run.case_id, run.events)
    for _ in range(data.draw(st.integers(1, 60))):
        run.now += data.draw(st.sampled_from(STEPS))
        actor, command = guided(data, run) if data.draw(st.booleans()) else arbitrary(data, run)
        before, fingerprint = run.state, hash(run.state)
        try:
            new = decide(run.state, command, run.ctx(actor))
        except Refused as refusal:
            # REFUSAL_PURE
            assert run.state is before and hash(run.state) == fingerprint
            assert refusal.code and refusal.reason.startswith("cannot ")
            continue
        assert new, "a command that is not refused yields at least one event"
        for event in new:
            previous, run.state = run.state, evolve(run.state, event, run.case_id)
            # PUBLIC_CHANGE
            moved = public_view(previous, CALENDAR) != public_view(run.state, CALENDAR)
            assert public_changed(previous, run.state) == moved, type(event).__name__
        run.events += new
        check_after(run, new)
    # REPLAY
    assert fold(run.case_id, run.events) == run.state


def test_the_working_day_end_check_is_not_vacuous() -> None:
    due = CALENDAR.add_working_days(datetime.combine(START.date(), time(9), tzinfo=SHANGHAI), 3)
    assert is_working_day_end(due) and not is_working_day_end(due - timedelta(hours=1))
