"""Time-limit policy (限时办结): versioned configuration, not code.

A policy file gives the acknowledgment limit, one rectification limit per severity tier, per-category
overrides of either, the extension policy and the follow-up review (回头看) period. Limits are either
working days (counted by ``WorkCalendar.add_working_days``) or round-the-clock hours
(``WorkCalendar.add_working_hours``); see ``services.rectification.domain.calendar`` for the rules.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    field_validator,
    model_validator,
)

from services.common.contracts import Severity
from services.rectification.domain.calendar import CONFIG_DIR, VersionTag, WorkCalendar, read_yaml_config, to_local

DEFAULT_TIME_LIMITS_PATH = CONFIG_DIR / "time_limits.v1.yaml"

CategoryId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TimeLimit(_Frozen):
    """Exactly one of ``hours`` (calendar hours from the start instant) or ``working_days``."""

    hours: PositiveInt | None = None
    working_days: PositiveInt | None = None

    @model_validator(mode="after")
    def _exactly_one_unit(self) -> TimeLimit:
        if (self.hours is None) == (self.working_days is None):
            raise ValueError("set exactly one of hours or working_days")
        return self

    def due(self, start: datetime, calendar: WorkCalendar) -> datetime:
        if self.working_days is not None:
            return calendar.add_working_days(start, self.working_days)
        assert self.hours is not None
        return calendar.add_working_hours(start, self.hours)

    def describe(self) -> str:
        if self.working_days is not None:
            return f"{self.working_days} working day{'s' if self.working_days != 1 else ''}"
        return f"{self.hours} hour{'s' if self.hours != 1 else ''}"


class CategoryLimits(_Frozen):
    """What a category changes from the defaults; an empty mapping keeps them all."""

    acknowledgment: TimeLimit | None = None
    tiers: dict[Severity, TimeLimit] = Field(default_factory=dict)


class ExtensionPolicy(_Frozen):
    max_extensions: NonNegativeInt
    max_extension_days: PositiveInt


class ExtensionRefused(ValueError):
    """An extension request the policy does not allow; the message says which limit it breaks."""


class Deadlines(_Frozen):
    ack_due: AwareDatetime
    rectify_due: AwareDatetime
    ack_limit: TimeLimit
    rectify_limit: TimeLimit
    policy_version: str
    calendar_version: str


class TimeLimitPolicy(_Frozen):
    version: VersionTag
    acknowledgment: TimeLimit
    tiers: dict[Severity, TimeLimit]
    categories: dict[CategoryId, CategoryLimits] = Field(min_length=1)
    extensions: ExtensionPolicy
    follow_up_review_days: PositiveInt

    @field_validator("tiers")
    @classmethod
    def _every_severity_has_a_tier(cls, tiers: dict[Severity, TimeLimit]) -> dict[Severity, TimeLimit]:
        missing = [severity.value for severity in Severity if severity not in tiers]
        if missing:
            raise ValueError(f"missing severities {missing}")
        return tiers

    def limits_for(self, category: str, severity: Severity | str) -> tuple[TimeLimit, TimeLimit]:
        """The (acknowledgment, rectification) limits of a category and severity, overrides applied."""
        if category not in self.categories:
            known = ", ".join(sorted(self.categories))
            raise ValueError(f"category {category!r} is not in time-limit policy {self.version} (known: {known})")
        tier = Severity(severity)
        override = self.categories[category]
        return override.acknowledgment or self.acknowledgment, override.tiers.get(tier) or self.tiers[tier]

    def deadlines(
        self, filed_or_assigned_at: datetime, category: str, severity: Severity | str, calendar: WorkCalendar
    ) -> Deadlines:
        """Acknowledgment and rectification deadlines counted from assignment (or filing).

        The acknowledgment is never due after the rectification: an urgent case due in 2 hours must also be
        acknowledged within those 2 hours.
        """
        ack_limit, rectify_limit = self.limits_for(category, severity)
        rectify_due = rectify_limit.due(filed_or_assigned_at, calendar)
        ack_due = min(ack_limit.due(filed_or_assigned_at, calendar), rectify_due)
        return Deadlines(
            ack_due=ack_due,
            rectify_due=rectify_due,
            ack_limit=ack_limit,
            rectify_limit=rectify_limit,
            policy_version=self.version,
            calendar_version=calendar.version,
        )

    def extended_due(
        self, current_due: datetime, working_days: int, extensions_granted: int, calendar: WorkCalendar
    ) -> datetime:
        """The deadline after granting one more extension of ``working_days``, or ``ExtensionRefused``."""
        if extensions_granted >= self.extensions.max_extensions:
            raise ExtensionRefused(
                f"already {extensions_granted} extension(s); policy {self.version} allows "
                f"at most {self.extensions.max_extensions}"
            )
        if not 1 <= working_days <= self.extensions.max_extension_days:
            raise ExtensionRefused(
                f"an extension is 1 to {self.extensions.max_extension_days} working days "
                f"under policy {self.version}, not {working_days}"
            )
        return calendar.add_working_days(current_due, working_days)

    def follow_up_due(self, closed_at: datetime) -> datetime:
        """When the follow-up review (回头看) falls due: ``follow_up_review_days`` calendar days after closing."""
        return to_local(closed_at) + timedelta(days=self.follow_up_review_days)


def load_time_limits(path: Path | str | None = None) -> TimeLimitPolicy:
    """Read a policy file (default: the one shipped in ``services/rectification/config``) once."""
    return read_yaml_config(Path(path) if path is not None else DEFAULT_TIME_LIMITS_PATH, TimeLimitPolicy)
