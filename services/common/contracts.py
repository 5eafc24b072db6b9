"""The one source of truth for every message that crosses a service boundary.

Each message is a frozen pydantic model with a ``message_type`` and a ``schema_version``.
On the wire it travels inside an envelope (``EventEnvelope`` for facts, ``CommandEnvelope``
for requests), serialised as JSON. A change of meaning or a new required field is a new
version of the payload class plus an upcaster from the old one; old versions are never
edited in place. ``docs/events/`` and ``docs/asyncapi.yaml`` are generated from here
(``rectify schemas``) and a test fails when they are stale.

Personal data rule: no payload here carries a complainant's identity or contact. Intake keeps
those in its own vault and the rest of the system sees only an opaque ``complainant_ref``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, TypeVar

import msgspec
import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
)


def _no_nul(text: str) -> str:
    """PostgreSQL's text and jsonb cannot hold U+0000: refused at every door, not failed where it is stored."""
    if "\x00" in text:
        raise ValueError("must not contain the NUL character (U+0000)")
    return text


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000), AfterValidator(_no_nul)]
ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_no_nul)
]
Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
HolderRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]  # unit:<id>, supervisor


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------------------- vocabulary


class Role(StrEnum):
    CHANNEL = "channel"  # a filing channel: 12345 hotline, portal, media, inspection team ...
    SUPERVISOR = "supervisor"  # 纠风办 / 作风办 / 纪委监委 / 督查室
    UNIT = "unit"  # a responsible unit (乡镇, 街道, 区直部门)
    PUBLIC = "public"  # a complainant answering a satisfaction survey through a channel
    SYSTEM = "system"  # the deadline watcher and other automatic actors


class Channel(StrEnum):
    HOTLINE_12345 = "hotline_12345"
    GOV_PORTAL = "gov_portal"
    MEDIA = "media"
    INSPECTION = "inspection"  # 明察暗访
    INVITED_INSPECTOR = "invited_inspector"  # 特邀纪检监察员
    DEPUTY = "deputy"  # 人大代表 / 政协委员
    PETITION = "petition"  # 信访
    OPEN311 = "open311"


class Severity(StrEnum):
    URGENT = "urgent"
    UTILITIES = "utilities"
    GENERAL = "general"
    COMPLEX = "complex"


class Satisfaction(StrEnum):
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    DISSATISFIED = "dissatisfied"


class CaseStatus(StrEnum):
    FILED = "filed"
    ASSIGNED = "assigned"
    ACKNOWLEDGED = "acknowledged"
    PLANNED = "planned"
    RECTIFIED = "rectified"  # rectification submitted, awaiting inspection
    ACCEPTED = "accepted"
    PUBLISHED = "published"
    CLOSED = "closed"
    DISMISSED = "dismissed"
    MERGED = "merged"


class DeadlineKind(StrEnum):
    ACKNOWLEDGMENT = "acknowledgment"  # 签收时限
    RECTIFICATION = "rectification"  # 整改时限 (限时办结)


class AccountabilityTarget(StrEnum):
    UNIT = "unit"
    CADRE = "cadre"


class ReopenReason(StrEnum):
    DISSATISFIED = "dissatisfied"  # most linked complainants rated the result dissatisfied (重新"补课")
    RELAPSED = "relapsed"  # the follow-up review (回头看) found the problem back


class Actor(Frozen):
    agency_id: Ident
    role: Role
    unit_id: Ident | None = None  # set when role is unit: the unit this agency acts for


# ---------------------------------------------------------------------------- payload bases


class Message(Frozen):
    """A payload: the part of a message that carries meaning. Subclasses set the two class vars."""

    message_type: ClassVar[str]
    schema_version: ClassVar[int] = 1


class Command(Message):
    """A request to change one case; its outcome is an event or a refusal."""


class DomainEvent(Message):
    """A fact, carried in an ``EventEnvelope``."""


class CaseEvent(DomainEvent):
    """A fact about one case, appended to its stream (topic rectify.case.events)."""


class SubmissionOutcome(DomainEvent):
    """Whether a submitted command was applied or refused (topic rectify.submission.outcomes)."""


class PublicFact(DomainEvent):
    """A fact cleared for the public (topic rectify.public.cases)."""


class RankingFact(DomainEvent):
    """A published unit ranking (topic rectify.rankings)."""


# ---------------------------------------------------------------------------- commands


class FileComplaint(Command):
    message_type: ClassVar[str] = "FileComplaint"
    channel: Channel
    category: Ident
    unit_id: Ident  # 被投诉单位, the unit complained about
    cadre: ShortText | None = None
    description: Text
    location: ShortText | None = None
    happened_on: date | None = None
    severity: Severity = Severity.GENERAL
    complainant_ref: Ident  # opaque; the identity stays in intake's vault


class AssignCase(Command):
    """交办: name the responsible unit and its first-responsible officer; deadlines come from the time-limit policy.

    ``ack_by`` / ``rectify_by`` override the policy with explicit dates: working days after the day of
    assignment, due at their end (24:00 Asia/Shanghai).
    """

    message_type: ClassVar[str] = "AssignCase"
    responsible_unit_id: Ident
    first_officer: ShortText  # 首问责任人
    ack_by: date | None = None
    rectify_by: date | None = None


class TransferCase(Command):
    """改派: the case moves to another unit (e.g. a jurisdiction dispute) with fresh deadlines."""

    message_type: ClassVar[str] = "TransferCase"
    to_unit_id: Ident
    reason: Text
    first_officer: ShortText | None = None


class DismissCase(Command):
    message_type: ClassVar[str] = "DismissCase"
    reason: Text


class MergeCase(Command):
    """Merge this case, a duplicate, into ``into_case_id``; its complainants follow through ``AddCoComplainants``."""

    message_type: ClassVar[str] = "MergeCase"
    into_case_id: Ident


class AddCoComplainants(Command):
    """Link the complainants of a merged duplicate to the surviving case (issued to the survivor)."""

    message_type: ClassVar[str] = "AddCoComplainants"
    complainant_refs: tuple[Ident, ...] = Field(min_length=1, max_length=100)
    merged_from: Ident


class AcknowledgeCase(Command):
    message_type: ClassVar[str] = "AcknowledgeCase"


class RequestExtension(Command):
    message_type: ClassVar[str] = "RequestExtension"
    working_days: int = Field(ge=1, le=60)
    reason: Text


class DecideExtension(Command):
    message_type: ClassVar[str] = "DecideExtension"
    granted: bool
    reason: Text


class SubmitPlan(Command):
    message_type: ClassVar[str] = "SubmitPlan"
    plan_summary: Text


class SubmitRectification(Command):
    message_type: ClassVar[str] = "SubmitRectification"
    report: Text
    evidence_refs: tuple[Ident, ...] = Field(min_length=1, max_length=50)


class AcceptRectification(Command):
    message_type: ClassVar[str] = "AcceptRectification"
    note: Text | None = None


class RejectRectification(Command):
    """验收未通过: back to rectification, due at the end of the ``working_days``-th working day from now."""

    message_type: ClassVar[str] = "RejectRectification"
    reason: Text
    working_days: int = Field(ge=1, le=60)


class PublishCase(Command):
    """向社会公布: the only way text reaches the public page; both summaries are the supervisor's approved words."""

    message_type: ClassVar[str] = "PublishCase"
    problem_summary: Text
    result_summary: Text


class ExposeCase(Command):
    message_type: ClassVar[str] = "ExposeCase"
    reason: Text


class RateSatisfaction(Command):
    message_type: ClassVar[str] = "RateSatisfaction"
    complainant_ref: Ident
    rating: Satisfaction


class CloseCase(Command):
    message_type: ClassVar[str] = "CloseCase"


class ScheduleFollowUp(Command):
    """回头看: ``due_on`` defaults to the policy's review period after closing."""

    message_type: ClassVar[str] = "ScheduleFollowUp"
    due_on: date | None = None


class RecordFollowUp(Command):
    message_type: ClassVar[str] = "RecordFollowUp"
    held: bool
    note: Text


class MarkOverdue(Command):
    """From the deadline watcher or the supervisor: ``due`` names the deadline, so each breach is marked once."""

    message_type: ClassVar[str] = "MarkOverdue"
    which: DeadlineKind
    due: AwareDatetime


class EscalateCase(Command):
    message_type: ClassVar[str] = "EscalateCase"
    reason: Text


class RecordAccountability(Command):
    message_type: ClassVar[str] = "RecordAccountability"
    target_kind: AccountabilityTarget
    target: ShortText  # a unit id, or the cadre's post and name as the disciplinary decision names them
    measure: ShortText  # e.g. 约谈, 通报批评, 诫勉谈话


# ---------------------------------------------------------------------------- case events


class CaseFiled(CaseEvent):
    message_type: ClassVar[str] = "CaseFiled"
    channel: Channel
    category: Ident
    unit_id: Ident
    cadre: ShortText | None = None
    description: Text
    location: ShortText | None = None
    happened_on: date | None = None
    severity: Severity
    complainant_refs: tuple[Ident, ...]
    filed_at: AwareDatetime


class CaseAssigned(CaseEvent):
    message_type: ClassVar[str] = "CaseAssigned"
    responsible_unit_id: Ident
    first_officer: ShortText
    ack_due: AwareDatetime
    rectify_due: AwareDatetime
    policy_version: str
    calendar_version: str
    at: AwareDatetime


class CaseTransferred(CaseEvent):
    message_type: ClassVar[str] = "CaseTransferred"
    from_unit_id: Ident
    to_unit_id: Ident
    reason: Text
    first_officer: ShortText | None = None
    ack_due: AwareDatetime
    rectify_due: AwareDatetime
    policy_version: str
    calendar_version: str
    at: AwareDatetime


class CaseDismissed(CaseEvent):
    message_type: ClassVar[str] = "CaseDismissed"
    reason: Text
    at: AwareDatetime


class CaseMerged(CaseEvent):
    """This case was a duplicate; ``complainant_refs`` are to be linked to ``into_case_id``."""

    message_type: ClassVar[str] = "CaseMerged"
    into_case_id: Ident
    complainant_refs: tuple[Ident, ...]
    at: AwareDatetime


class CoComplainantsAdded(CaseEvent):
    """Complainants newly linked to this case (only those not linked before)."""

    message_type: ClassVar[str] = "CoComplainantsAdded"
    complainant_refs: tuple[Ident, ...]
    merged_from: Ident
    at: AwareDatetime


class CaseAcknowledged(CaseEvent):
    message_type: ClassVar[str] = "CaseAcknowledged"
    on_time: bool
    at: AwareDatetime


class ExtensionRequested(CaseEvent):
    message_type: ClassVar[str] = "ExtensionRequested"
    working_days: int = Field(ge=1)
    reason: Text
    at: AwareDatetime


class ExtensionGranted(CaseEvent):
    message_type: ClassVar[str] = "ExtensionGranted"
    working_days: int = Field(ge=1)
    rectify_due: AwareDatetime
    extensions_granted: int = Field(ge=1)
    reason: Text
    at: AwareDatetime


class ExtensionDenied(CaseEvent):
    message_type: ClassVar[str] = "ExtensionDenied"
    working_days: int = Field(ge=1)
    reason: Text
    at: AwareDatetime


class PlanSubmitted(CaseEvent):
    message_type: ClassVar[str] = "PlanSubmitted"
    plan_summary: Text
    at: AwareDatetime


class RectificationSubmitted(CaseEvent):
    message_type: ClassVar[str] = "RectificationSubmitted"
    report: Text
    evidence_refs: tuple[Ident, ...]
    on_time: bool
    at: AwareDatetime


class RectificationAccepted(CaseEvent):
    """``first_pass``: accepted without a rejection since the case was assigned or last reopened."""

    message_type: ClassVar[str] = "RectificationAccepted"
    note: Text | None = None
    first_pass: bool
    at: AwareDatetime


class RectificationRejected(CaseEvent):
    message_type: ClassVar[str] = "RectificationRejected"
    reason: Text
    redo_count: int = Field(ge=1)
    rectify_due: AwareDatetime
    at: AwareDatetime


class CasePublished(CaseEvent):
    message_type: ClassVar[str] = "CasePublished"
    problem_summary: Text
    result_summary: Text
    at: AwareDatetime


class CaseExposed(CaseEvent):
    message_type: ClassVar[str] = "CaseExposed"
    reason: Text
    at: AwareDatetime


class SatisfactionRated(CaseEvent):
    message_type: ClassVar[str] = "SatisfactionRated"
    complainant_ref: Ident
    rating: Satisfaction
    at: AwareDatetime


class CaseReopened(CaseEvent):
    """Back to rectification (重新"补课") with a new deadline from the policy."""

    message_type: ClassVar[str] = "CaseReopened"
    reason: ReopenReason
    reopen_count: int = Field(ge=1)
    rectify_due: AwareDatetime
    at: AwareDatetime


class CaseClosed(CaseEvent):
    message_type: ClassVar[str] = "CaseClosed"
    at: AwareDatetime


class FollowUpScheduled(CaseEvent):
    message_type: ClassVar[str] = "FollowUpScheduled"
    due_on: date
    at: AwareDatetime


class FollowUpConfirmed(CaseEvent):
    message_type: ClassVar[str] = "FollowUpConfirmed"
    note: Text
    at: AwareDatetime


class FollowUpRelapsed(CaseEvent):
    message_type: ClassVar[str] = "FollowUpRelapsed"
    note: Text
    at: AwareDatetime


class DeadlinePassed(CaseEvent):
    """超期: ``holder`` held the case when the deadline passed (e.g. ``unit:meiwan``, ``supervisor``)."""

    message_type: ClassVar[str] = "DeadlinePassed"
    which: DeadlineKind
    due: AwareDatetime
    holder: HolderRef
    at: AwareDatetime


class CaseEscalated(CaseEvent):
    """督办 with 倒查责任: the current step and holder, and who held the case longest in all (working days)."""

    message_type: ClassVar[str] = "CaseEscalated"
    reason: Text
    step: Ident
    holder: HolderRef
    longest_holder: HolderRef
    held_working_days: float = Field(ge=0)
    at: AwareDatetime


class AccountabilityRecorded(CaseEvent):
    message_type: ClassVar[str] = "AccountabilityRecorded"
    target_kind: AccountabilityTarget
    target: ShortText
    measure: ShortText
    at: AwareDatetime


# ---------------------------------------------------------------------------- submission outcomes


class SubmissionApplied(SubmissionOutcome):
    """Rectification applied a submitted command; the case is now at ``case_version``."""

    message_type: ClassVar[str] = "SubmissionApplied"
    submission_id: uuid.UUID
    case_id: Ident
    case_version: int = Field(ge=1)
    events: tuple[str, ...]


class SubmissionAppliedV2(SubmissionOutcome):
    """Rectification applied a submitted command. v2 adds who may now act on the case.

    ``status`` and ``responsible_unit_id`` are the case's after the command, so intake can scope access
    (a unit acts only on cases assigned to it) in the same transaction as the submission's status.
    Read from v1 by ``upcast_submission_applied_v1``: both unknown (None).
    """

    message_type: ClassVar[str] = "SubmissionApplied"
    schema_version: ClassVar[int] = 2
    submission_id: uuid.UUID
    case_id: Ident
    case_version: int = Field(ge=1)
    events: tuple[str, ...]
    status: CaseStatus | None
    responsible_unit_id: Ident | None


def upcast_submission_applied_v1(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "status": None, "responsible_unit_id": None}


class SubmissionRefused(SubmissionOutcome):
    """Rectification refused a submitted command; ``reason`` says why in words a person can act on."""

    message_type: ClassVar[str] = "SubmissionRefused"
    submission_id: uuid.UUID
    case_id: Ident
    reason: ShortText
    code: Ident


# ---------------------------------------------------------------------------- public facts


class TimelineEntry(Frozen):
    step: Ident
    at: AwareDatetime


class PublicCaseChanged(PublicFact):
    """The public view of one case after one of its events: allow-listed fields only.

    This is the only payload the publicity service consumes. It never holds a complainant's
    identity or contact, internal notes, or free text the supervisor has not approved.
    """

    message_type: ClassVar[str] = "PublicCaseChanged"
    case_id: Ident
    status: CaseStatus
    category: Ident
    unit_id: Ident
    responsible_unit_id: Ident | None = None
    filed_at: AwareDatetime
    deadline: AwareDatetime | None = None
    redo_count: int = Field(0, ge=0)
    problem_summary: Text | None = None  # only as approved at publication
    result_summary: Text | None = None  # only as approved at publication
    exposed: bool = False
    entry: TimelineEntry


class PublicHold(Frozen):
    """One spell a holder had the case (倒查责任): the supervisor, a unit, or the complainant (awaiting ratings)."""

    step: Ident
    holder: Annotated[str, StringConstraints(pattern=r"^(supervisor|complainant|unit:[A-Za-z0-9_.:-]{1,64})$")]
    started_at: AwareDatetime
    ended_at: AwareDatetime | None  # None: still holding it
    working_days: float | None = Field(ge=0)  # None while the spell is open


class PublicCaseChangedV2(PublicFact):
    """The public view of one case. v2 adds who held the case up and for how long, and its escalations.

    Read from v1 by ``upcast_public_case_changed_v1``: no holds known, not overdue, no reopenings or escalations.
    """

    message_type: ClassVar[str] = "PublicCaseChanged"
    schema_version: ClassVar[int] = 2
    case_id: Ident
    status: CaseStatus
    category: Ident
    unit_id: Ident
    responsible_unit_id: Ident | None = None
    filed_at: AwareDatetime
    deadline: AwareDatetime | None = None
    redo_count: int = Field(0, ge=0)
    problem_summary: Text | None = None  # only as approved at publication
    result_summary: Text | None = None  # only as approved at publication
    exposed: bool = False
    entry: TimelineEntry
    overdue: bool
    reopen_count: int = Field(ge=0)
    escalations: int = Field(ge=0)
    holds: tuple[PublicHold, ...]


def upcast_public_case_changed_v1(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "overdue": False, "reopen_count": 0, "escalations": 0, "holds": []}


# ---------------------------------------------------------------------------- rankings

Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Fixed4 = Annotated[str, StringConstraints(pattern=r"^-?[0-9]+\.[0-9]{4}$")]  # an exact decimal, 4 places
PeriodText = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}(-(0[1-9]|1[0-2])|-Q[1-4])?$")]
UtcText = Annotated[
    str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$")
]


class RankedRate(Frozen):
    """A rate as numerator and denominator, and its value rounded half to even (None: nothing to rate)."""

    num: int = Field(ge=0)
    den: int = Field(ge=0)
    value: Fixed4 | None


class RankingRow(Frozen):
    """One unit of the tier: ``rank`` is None when it had fewer cases than the formula's minimum."""

    unit_id: Ident
    rank: int | None = Field(ge=1)
    eligible: bool
    cases: int = Field(ge=0)
    counts: dict[Ident, int]
    rates: dict[Ident, RankedRate]
    median_response_days: Fixed4 | None
    median_rectification_days: Fixed4 | None
    composite: Fixed4 | None
    decided_by: Ident | None  # the tie-break key that put it below the unit ranked just above
    top_ten: bool
    flags: tuple[Ident, ...]


class RankingPosition(Frozen):
    """The slice of rectify.case.events the ranking covers: every event whose effective recorded time is at
    or before ``cutoff``; ``events`` of them, ``events_hash`` the sum of sha256(event id) mod 2**256."""

    cutoff: UtcText
    events: int = Field(ge=0)
    events_hash: Hex64
    settle_rule: ShortText


class BottomFlag(Frozen):
    unit_id: Ident
    reasons: tuple[Ident, ...]


class RankingPublished(RankingFact):
    """评议结果: one tier's unit ranking for one period, as computed from the case events.

    ``result_hash`` is the sha256 of the canonical JSON of this payload without ``result_hash``, and
    ``input_hash`` that of the figures it was computed from; ``rectify ranking recompute`` rebuilds both
    from the log (docs/scoring.md). No personal data: units, counts, rates and scores only.
    """

    message_type: ClassVar[str] = "RankingPublished"
    period: PeriodText
    tier: Ident
    formula_version: Ident
    calendar_version: ShortText
    reference_version: ShortText
    position: RankingPosition
    input_hash: Hex64
    result_hash: Hex64
    rows: tuple[RankingRow, ...]
    top_ten: tuple[Ident, ...]
    bottom_flags: tuple[BottomFlag, ...]


DecimalText = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?$")]


class EvidenceUnit(Frozen):
    """One unit's inputs: its counters, and every duration item as [case id, start, end] (UTC text)."""

    unit_id: Ident
    counts: dict[Ident, int]
    response: tuple[tuple[Ident, UtcText, UtcText], ...]
    rectification: tuple[tuple[Ident, UtcText, UtcText], ...]


class EvidenceInputs(Frozen):
    """Everything the ranking was computed from: its canonical JSON hashes to the ranking's ``input_hash``."""

    period: PeriodText
    tier: Ident
    reference_version: ShortText
    position: RankingPosition
    units: tuple[EvidenceUnit, ...]


class EvidenceTop(Frozen):
    size: int = Field(ge=1)
    max_share: DecimalText


class EvidenceBottom(Frozen):
    size: int = Field(ge=0)
    below: DecimalText | None


class EvidenceFormula(Frozen):
    """The formula file's terms as scoring loaded them (decimals as text)."""

    version: Ident
    description: str
    min_cases: int = Field(ge=1)
    weights: dict[Ident, DecimalText]
    deductions: dict[Ident, DecimalText]
    top_ten: EvidenceTop
    bottom: EvidenceBottom


class EvidenceCalendar(Frozen):
    """The working-day calendar over the days the durations span (China time): the weekdays that were not
    working days (holidays) and the weekend days that were (调休). Outside these lists, Monday to Friday work."""

    version: ShortText
    first: date | None  # None: no duration to measure
    last: date | None
    holidays: tuple[date, ...]
    workdays: tuple[date, ...]


class RankingEvidence(Frozen):
    """What anyone needs to recompute a published ranking with scoring's own code, and nothing personal."""

    inputs: EvidenceInputs
    formula: EvidenceFormula
    calendar: EvidenceCalendar


class RankingPublishedV2(RankingPublished):
    """评议结果 with its evidence: v2 adds ``evidence``, so a ranking recomputes from the public ledger alone
    (docs/public-ledger.md). ``result_hash`` still covers the payload without ``result_hash`` and ``evidence``;
    the evidence's ``inputs`` hash to ``input_hash``. Read from v1 by ``upcast_ranking_published_v1``: no evidence.
    """

    schema_version: ClassVar[int] = 2
    evidence: RankingEvidence | None


def upcast_ranking_published_v1(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "evidence": None}


# ---------------------------------------------------------------------------- envelopes


class EventEnvelope(Frozen):
    """A fact on the wire. ``stream_id`` is the case id; ``stream_version`` its place in the case's stream."""

    event_id: uuid.UUID
    event_type: str
    schema_version: int = Field(ge=1)
    stream_id: Ident
    stream_version: int = Field(ge=1)
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime
    actor: Actor
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    payload: DomainEvent


class CommandEnvelope(Frozen):
    """A command on the wire. ``command_id`` is the intake submission id, the idempotency key downstream."""

    command_id: uuid.UUID
    command_type: str
    schema_version: int = Field(ge=1)
    case_id: Ident
    issued_at: AwareDatetime
    actor: Actor
    correlation_id: uuid.UUID
    payload: Command


# ---------------------------------------------------------------------------- registry and codec

MESSAGE_CLASSES: tuple[type[Message], ...] = (
    FileComplaint,
    AssignCase,
    TransferCase,
    DismissCase,
    MergeCase,
    AddCoComplainants,
    AcknowledgeCase,
    RequestExtension,
    DecideExtension,
    SubmitPlan,
    SubmitRectification,
    AcceptRectification,
    RejectRectification,
    PublishCase,
    ExposeCase,
    RateSatisfaction,
    CloseCase,
    ScheduleFollowUp,
    RecordFollowUp,
    MarkOverdue,
    EscalateCase,
    RecordAccountability,
    CaseFiled,
    CaseAssigned,
    CaseTransferred,
    CaseDismissed,
    CaseMerged,
    CoComplainantsAdded,
    CaseAcknowledged,
    ExtensionRequested,
    ExtensionGranted,
    ExtensionDenied,
    PlanSubmitted,
    RectificationSubmitted,
    RectificationAccepted,
    RectificationRejected,
    CasePublished,
    CaseExposed,
    SatisfactionRated,
    CaseReopened,
    CaseClosed,
    FollowUpScheduled,
    FollowUpConfirmed,
    FollowUpRelapsed,
    DeadlinePassed,
    CaseEscalated,
    AccountabilityRecorded,
    SubmissionApplied,
    SubmissionAppliedV2,
    SubmissionRefused,
    PublicCaseChanged,
    PublicCaseChangedV2,
    RankingPublished,
    RankingPublishedV2,
)

REGISTRY: dict[tuple[str, int], type[Message]] = {(c.message_type, c.schema_version): c for c in MESSAGE_CLASSES}
LATEST: dict[str, int] = {}
for _cls in MESSAGE_CLASSES:
    LATEST[_cls.message_type] = max(LATEST.get(_cls.message_type, 0), _cls.schema_version)

# (message_type, from_version) -> function turning that version's payload dict into the next version's.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("SubmissionApplied", 1): upcast_submission_applied_v1,
    ("PublicCaseChanged", 1): upcast_public_case_changed_v1,
    ("RankingPublished", 1): upcast_ranking_published_v1,
}


class ContractError(ValueError):
    """A message that does not fit the contract; ``reason`` names what and why."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def parse_payload(message_type: str, schema_version: int, data: Any) -> Message:
    """Validate ``data`` as ``message_type`` at ``schema_version``, upcast to the latest version."""
    latest = LATEST.get(message_type)
    if latest is None:
        raise ContractError("unknown_type", f"unknown message type {message_type!r}")
    if not isinstance(schema_version, int) or not 1 <= schema_version <= latest:
        raise ContractError("unknown_version", f"{message_type} has no schema version {schema_version!r}")
    if not isinstance(data, dict):
        raise ContractError("invalid_payload", "payload must be a JSON object")
    version = schema_version
    while version < latest:
        step = UPCASTERS.get((message_type, version))
        if step is None:
            raise ContractError("unknown_version", f"no upcaster for {message_type} v{version}")
        data = step(data)
        version += 1
    try:
        return REGISTRY[(message_type, latest)].model_validate(data)
    except ValidationError as exc:
        raise ContractError("invalid_payload", _first_error(exc)) from exc


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "payload"
    return f"{where}: {err['msg']}"


def _envelope_dict(envelope: BaseModel, payload: Message, type_key: str) -> dict[str, Any]:
    body = envelope.model_dump(mode="json", exclude={"payload"})
    body[type_key] = payload.message_type
    body["schema_version"] = payload.schema_version
    body["payload"] = payload.model_dump(mode="json")
    return body


def encode_event(envelope: EventEnvelope) -> bytes:
    payload = envelope.payload
    if envelope.event_type == payload.message_type and envelope.schema_version == payload.schema_version:
        return _to_json(envelope)
    return orjson.dumps(_envelope_dict(envelope, payload, "event_type"))


def encode_command(envelope: CommandEnvelope) -> bytes:
    payload = envelope.payload
    if envelope.command_type == payload.message_type and envelope.schema_version == payload.schema_version:
        return _to_json(envelope)
    return orjson.dumps(_envelope_dict(envelope, payload, "command_type"))


def _model_fields(obj: object) -> dict[str, Any]:
    if isinstance(obj, BaseModel):
        return obj.__dict__  # a model's field values, in declaration order (no aliases or custom serialisers here)
    # msgspec's enc_hook protocol: NotImplementedError means "not a type this hook encodes" (msgspec turns it into
    # its own encode error naming the type). Every contract value is a model, a builtin msgspec knows, or one of these.
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


_ENCODER = msgspec.json.Encoder(enc_hook=_model_fields)


def _to_json(envelope: BaseModel) -> bytes:
    """The same bytes as ``orjson.dumps(_envelope_dict(...))`` when the envelope names its payload's type and version
    (as ``wrap_event`` and decoding make it), in one pass: the payload by its own class, not the declared base.

    msgspec writes each model's fields as pydantic's serialiser does (``to_json(envelope, serialize_as_any=True)``:
    the same bytes, a test compares them over a simulated month), three to four times faster. One difference: a
    float of 1e16 or more is written ``1e16``, not ``1e+16`` (the same number; no contract float gets near it)."""
    return _ENCODER.encode(envelope)


def _load(raw: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ContractError("bad_json", f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ContractError("bad_json", "a message must be a JSON object")
    return data


_WIRE: dict[tuple[type[BaseModel], str], type[BaseModel]] = {}


def _decode(raw: bytes | str | dict[str, Any], cls: type[BaseModel], type_key: str, base: type[Message]) -> Any:
    data = _load(raw)
    decoded = _decode_latest(data, cls, type_key, base)
    return _decode_checked(data, cls, type_key, base) if decoded is None else decoded


def _decode_latest(data: dict[str, Any], cls: type[BaseModel], type_key: str, base: type[Message]) -> Any:
    """``_decode_checked`` in one validation, for a message at its type's latest version: the envelope ``cls`` with
    its payload declared as that type (the same fields, the same validators) validates the envelope and its payload
    together, and the values fill a ``cls`` as validating them would (the same fields set). None for anything else
    (an older version, a type or version that is not a plain int or str, a payload that is not an object, or any
    validation error): ``_decode_checked`` decodes or refuses those, so refusals keep their reasons (a test compares
    the two over a month's messages and over invalid ones)."""
    name, version = data.get(type_key), data.get("schema_version")
    if type(name) is not str or type(version) is not int or type(data.get("payload")) is not dict:
        return None
    if LATEST.get(name) != version:
        return None
    wire = _WIRE.get((cls, name))
    if wire is None:
        payload_type = REGISTRY[(name, version)]
        if not issubclass(payload_type, base):
            return None
        wire = _WIRE[(cls, name)] = create_model(f"{cls.__name__}Of{name}", __base__=cls, payload=(payload_type, ...))
    try:
        checked = wire.model_validate(data)
    except ValidationError:
        return None
    model = cls.__new__(cls)
    _set(model, "__dict__", checked.__dict__)
    _set(model, "__pydantic_fields_set__", checked.__pydantic_fields_set__)
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


def _decode_checked(data: dict[str, Any], cls: type[BaseModel], type_key: str, base: type[Message]) -> Any:
    payload = parse_payload(str(data.get(type_key)), data.get("schema_version"), data.get("payload"))  # type: ignore[arg-type]
    if not isinstance(payload, base):
        raise ContractError("unknown_type", f"{payload.message_type} is not a {base.__name__}")
    fields = {k: v for k, v in data.items() if k != "payload"}
    fields[type_key] = payload.message_type
    fields["schema_version"] = payload.schema_version
    try:
        return cls.model_validate({**fields, "payload": payload})
    except ValidationError as exc:
        raise ContractError("invalid_envelope", _first_error(exc)) from exc


def decode_event(raw: bytes | str | dict[str, Any]) -> EventEnvelope:
    env: EventEnvelope = _decode(raw, EventEnvelope, "event_type", DomainEvent)
    return env


def decode_command(raw: bytes | str | dict[str, Any]) -> CommandEnvelope:
    env: CommandEnvelope = _decode(raw, CommandEnvelope, "command_type", Command)
    return env


def new_id() -> uuid.UUID:
    return uuid.uuid4()


_Model = TypeVar("_Model", bound=BaseModel)
_set = object.__setattr__
_FIELD_ORDER: dict[type[BaseModel], tuple[str, ...]] = {}


def trusted(cls: type[_Model], **values: Any) -> _Model:
    """A model of values a service derived itself from validated ones (an envelope it wraps, a view of its state),
    not validated again: filled as pydantic's ``model_construct`` fills it, without the per-field bookkeeping that
    makes ``model_construct`` cost more than validating (pydantic 2.13). ``values`` must name every field, in
    declaration order: msgspec and pydantic write the fields in ``__dict__`` order (checked: a ``TypeError`` names
    the difference). Never for input from outside."""
    return _filled(cls, values)


def _filled(cls: type[_Model], values: dict[str, Any]) -> _Model:
    """``trusted`` on a dict of the values, which the model keeps as its ``__dict__``."""
    _check_order(cls, values)
    model = cls.__new__(cls)
    _set(model, "__dict__", values)
    _set(model, "__pydantic_fields_set__", set(values))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


def _check_order(cls: type[BaseModel], values: dict[str, Any]) -> None:
    order = _FIELD_ORDER.get(cls)
    if order is None:
        order = _FIELD_ORDER[cls] = tuple(cls.model_fields)
    if tuple(values) != order:
        raise TypeError(f"trusted({cls.__name__}) needs every field in declaration order {order}, got {tuple(values)}")


def encode_trusted_event(
    payload_type: type[DomainEvent],
    payload: dict[str, Any],
    *,
    event_id: uuid.UUID,
    stream_id: str,
    stream_version: int,
    occurred_at: datetime,
    recorded_at: datetime,
    actor: Actor,
    correlation_id: uuid.UUID,
    causation_id: uuid.UUID | None,
) -> bytes:
    """``encode_event(wrap_event(trusted(payload_type, **payload), ..., validate=False))`` without building either
    model: the same bytes (a test compares them), for a message a service derives from validated values and only
    sends (the rectification worker's public facts and outcomes: two models fewer each). ``payload`` names every
    field of ``payload_type`` in declaration order (checked, as ``trusted`` checks it)."""
    _check_order(payload_type, payload)
    return _ENCODER.encode(
        {
            "event_id": event_id,
            "event_type": payload_type.message_type,
            "schema_version": payload_type.schema_version,
            "stream_id": stream_id,
            "stream_version": stream_version,
            "occurred_at": occurred_at,
            "recorded_at": recorded_at,
            "actor": actor,
            "correlation_id": correlation_id,
            "causation_id": causation_id,
            "payload": payload,
        }
    )


def encode_trusted_part(model_type: type[BaseModel], values: dict[str, Any]) -> msgspec.Raw:
    """A part of later trusted messages (the values of a ``model_type`` nested in their payloads, in declaration
    order: checked), encoded once: ``encode_trusted_event`` writes a ``msgspec.Raw`` among its values as it is, the
    bytes the model would have been written as (a test compares them)."""
    _check_order(model_type, values)
    return msgspec.Raw(_ENCODER.encode(values))


def wrap_event(
    payload: DomainEvent,
    *,
    stream_id: str,
    stream_version: int,
    occurred_at: datetime,
    recorded_at: datetime,
    actor: Actor,
    correlation_id: uuid.UUID,
    causation_id: uuid.UUID | None,
    event_id: uuid.UUID | None = None,
    validate: bool = True,
) -> EventEnvelope:
    """The envelope of a decided event. ``validate=False``: every value was derived from validated ones (the
    worker's hot path), so the envelope is filled without validating again (``trusted``)."""
    values = {
        "event_id": event_id or new_id(),
        "event_type": payload.message_type,
        "schema_version": payload.schema_version,
        "stream_id": stream_id,
        "stream_version": stream_version,
        "occurred_at": occurred_at,
        "recorded_at": recorded_at,
        "actor": actor,
        "correlation_id": correlation_id,
        "causation_id": causation_id,
        "payload": payload,
    }
    return EventEnvelope(**values) if validate else _filled(EventEnvelope, values)
