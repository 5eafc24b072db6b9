"""The public JSON API's answers, as documented in its OpenAPI (``/api/docs``).

The handlers return JSON directly (no validation on the hot path); the integration tests validate every
answer against these models, so the documentation cannot drift from what is served.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.common.contracts import RankingPublished


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Hold(_Answer):
    """One spell a holder had the case (倒查责任). ``holder``: ``supervisor``, ``complainant`` or ``unit:<id>``."""

    step: str = Field(description="triage, acknowledgment, planning, rectification, inspection, publication, rating")
    holder: str
    started_at: datetime
    ended_at: datetime | None = Field(description="null while the holder still has it")
    working_days: float | None = Field(description="on the official calendar; null while the spell runs")


class TimelineEntry(_Answer):
    step: str = Field(
        description="filed, assigned, transferred, acknowledged, planned, rectified, accepted, rejected, published, "
        "exposed, rated, reopened, closed, follow_up, overdue, escalated, extended, dismissed, merged"
    )
    at: datetime
    version: int = Field(description="the case's version after this step")


class PublicCase(_Answer):
    """A case's public fields. Never the complainant's identity or contact; text only as approved for publication."""

    case_id: str
    status: str
    category: str = Field(description="a category id, see /api/v1/reference")
    unit_id: str = Field(description="the unit complained about, see /api/v1/reference")
    responsible_unit_id: str | None
    filed_at: datetime
    deadline: datetime | None = Field(description="the rectification deadline (限时办结)")
    redo_count: int = Field(description="rejections at inspection (返工)")
    problem_summary: str | None = Field(description="as the supervisor approved it at publication")
    result_summary: str | None = Field(description="as the supervisor approved it at publication")
    exposed: bool
    version: int
    updated_at: datetime
    overdue: bool
    reopen_count: int
    escalations: int
    holds: list[Hold]
    published_at: datetime | None
    exposed_at: datetime | None


class CaseDetail(PublicCase):
    timeline: list[TimelineEntry]


class CaseList(_Answer):
    total: int
    page: int
    size: int
    cases: list[PublicCase]


class RankingKey(_Answer):
    period: str
    tier: str
    url: str


class RankingIndex(_Answer):
    rankings: list[RankingKey]


class PublicationRef(_Answer):
    event_id: str
    stream_version: int
    formula_version: str
    recorded_at: datetime
    result_hash: str


class RankingAnswer(_Answer):
    """The newest publication for the period and tier (or formula), exactly as scoring published it."""

    event_id: str
    stream_version: int
    recorded_at: datetime
    ranking: RankingPublished
    history: list[PublicationRef]
    recompute: str = Field(description="the command that rebuilds this ranking from the case-event log")


class ExposureList(_Answer):
    total: int
    page: int
    size: int
    cases: list[PublicCase]


class UnitCount(_Answer):
    unit_id: str
    overdue: int


class StalledAnswer(_Answer):
    by_unit: list[UnitCount]
    unit_id: str | None
    page: int
    size: int
    cases: list[PublicCase]


class MonthFigures(_Answer):
    month: str
    filed: int
    closed: int
    overdue: int
    exposed: int


class CategoryFigures(_Answer):
    category: str
    filed: int
    closed: int
    overdue: int
    exposed: int


class UnitFigures(_Answer):
    unit_id: str
    filed: int
    closed: int
    overdue: int
    exposed: int


class StatusFigures(_Answer):
    status: str
    filed: int


class StatisticsAnswer(_Answer):
    """Counts of cases by filing month (China time); by category, unit and status within ``period`` (all if null)."""

    period: str | None
    months: list[MonthFigures]
    by_category: list[CategoryFigures]
    by_unit: list[UnitFigures]
    by_status: list[StatusFigures]


class LedgerHead(_Answer):
    seq: int = Field(description="the newest entry's sequence number; 0 while the ledger is empty")
    hash: str = Field(description="the newest entry's hash; 64 zeros (the genesis hash) while empty")
    appended_at: str | None = Field(description="when the newest entry was appended, UTC text; null while empty")


class LedgerEntry(_Answer):
    """One entry of the public ledger; ``hash`` = sha256 of ``f"{seq}\\n{appended_at}\\n{prev_hash}\\n{fact}"``."""

    seq: int
    appended_at: str = Field(description="UTC, microseconds, Z: exactly as hashed")
    prev_hash: str = Field(description="the previous entry's hash (entry 1: 64 zeros)")
    fact: str = Field(description="the public fact, as canonical JSON text: exactly as hashed")
    hash: str


class LedgerPage(_Answer):
    head: LedgerHead
    entries: list[LedgerEntry]
    next: str | None = Field(description="the next page's URL; null when this page reaches the head")


class LedgerDay(_Answer):
    day: str = Field(description="a day (China time) on which entries were appended, YYYY-MM-DD")
    seq: int = Field(description="the last entry appended that day")
    hash: str = Field(description="that entry's hash: the head at the end of the day")


class LedgerHeads(_Answer):
    head: LedgerHead
    days: list[LedgerDay]
