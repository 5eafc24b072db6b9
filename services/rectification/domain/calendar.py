"""The Chinese official working-day calendar and the deadline arithmetic of 限时办结.

Working days come from the ``chinesecalendar`` library (public holidays and the weekend days made
working days, 调休) plus a versioned override file for years the library does not know yet and for
corrections. Precedence for a date: override make-up workday, override holiday, library make-up
workday, library holiday, then the weekday rule (Monday to Friday work). For a date neither the
library nor the override covers (``covers`` is False) only the weekday rule applies, which is a
fallback: such a year's holidays are unknown and count as working days.

Deadline rules, as a supervisory office counts 限时办结 (the Civil Code, arts. 201 and 203):

* N working days: the start day is not counted (开始的当日不计入); counting begins the next day and the
  deadline is the end of the N-th working day after the start day, 24:00 Asia/Shanghai, represented as
  23:59:59.999999 local. Work done at any instant up to and including the deadline is on time.
* N hours (the urgent and utilities tiers): counted from the start instant round the clock, weekends and
  holidays included (按小时计算期间的，自开始时间起算), because those tiers are on duty at all hours.

Every function is pure: times are passed in, nothing reads the clock, and config files are read only by
the explicit loaders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from itertools import accumulate
from pathlib import Path
from typing import Annotated, Any, TypeVar

import chinese_calendar
import yaml
from chinese_calendar.constants import holidays as library_holidays
from chinese_calendar.constants import workdays as library_workdays
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")  # China Standard Time, no daylight saving since 1991
ONE_DAY = timedelta(days=1)
END_OF_DAY = time(23, 59, 59, 999_999)
_DAY_US = 86_400_000_000
CONFIG_DIR = Path(__file__).parent.parent / "config"
DEFAULT_OVERRIDES_PATH = CONFIG_DIR / "calendar_overrides.v1.yaml"
LIBRARY_VERSION = f"chinesecalendar-{chinese_calendar.__version__}"

VersionTag = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}$")]
Year = Annotated[int, Field(ge=1949, le=2200)]

ModelT = TypeVar("ModelT", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file that cannot be read or does not validate; the message names the file and field."""


class _DatesAsTextLoader(yaml.SafeLoader):
    """Leaves dates as text so that pydantic parses them and a bad one is reported with its field."""


_DatesAsTextLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_yaml_config(path: Path, model: type[ModelT]) -> ModelT:
    try:
        raw: Any = yaml.load(path.read_text(encoding="utf-8"), Loader=_DatesAsTextLoader)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{_field_path(error['loc'])}: {_problem(error)}" for error in exc.errors())
        raise ConfigError(f"{path}: {problems}") from exc


def _field_path(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _problem(error: ErrorDetails) -> str:
    if error["type"] == "value_error" and "error" in error.get("ctx", {}):
        return str(error["ctx"]["error"])
    return error["msg"]


def to_local(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {moment.isoformat()}")
    return moment.astimezone(SHANGHAI)


def local_date(day: date | datetime) -> date:
    """The calendar date in Asia/Shanghai: an aware datetime is converted, a plain date is taken as local."""
    return to_local(day).date() if isinstance(day, datetime) else day


def start_of_local_day(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=SHANGHAI)


class CalendarOverrides(BaseModel):
    """The override file: extra holidays and make-up workdays, and the years it fully describes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: VersionTag
    covered_years: tuple[Year, ...] = ()
    provisional_years: tuple[Year, ...] = ()
    holidays: tuple[date, ...] = ()
    workdays: tuple[date, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> CalendarOverrides:
        uncovered = sorted(set(self.provisional_years) - set(self.covered_years))
        if uncovered:
            raise ValueError(f"provisional_years {uncovered} must also be listed in covered_years")
        both = sorted(set(self.holidays) & set(self.workdays))
        if both:
            raise ValueError(f"dates listed in both holidays and workdays: {[d.isoformat() for d in both]}")
        return self


@dataclass(frozen=True, slots=True)
class WorkCalendar:
    """An immutable snapshot of the official calendar: library data plus one override file."""

    library_version: str
    override_version: str
    library_years: tuple[int, int]
    override_years: frozenset[int]
    provisional_years: frozenset[int]
    library_holidays: frozenset[date] = field(repr=False)
    library_workdays: frozenset[date] = field(repr=False)
    extra_holidays: frozenset[date] = field(repr=False)
    extra_workdays: frozenset[date] = field(repr=False)
    # working days before each date of the years the calendar knows, counted from the first; built on first use
    _index: _WorkdayIndex | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def build(cls, overrides: CalendarOverrides | None = None) -> WorkCalendar:
        overrides = overrides or CalendarOverrides(version="none")
        return cls(
            library_version=LIBRARY_VERSION,
            override_version=overrides.version,
            library_years=(min(library_holidays).year, max(library_holidays).year),
            override_years=frozenset(overrides.covered_years),
            provisional_years=frozenset(overrides.provisional_years),
            library_holidays=frozenset(library_holidays),
            library_workdays=frozenset(library_workdays),
            extra_holidays=frozenset(overrides.holidays),
            extra_workdays=frozenset(overrides.workdays),
        )

    @property
    def version(self) -> str:
        """Identifies the calendar for reproducible rankings: library version + override file version."""
        return f"{self.library_version}+{self.override_version}"

    def covers(self, day: date | datetime) -> bool:
        """Whether the library or the override file knows this date's holidays (False: weekday fallback)."""
        day = local_date(day)
        first, last = self.library_years
        return (
            first <= day.year <= last
            or day.year in self.override_years
            or day in self.extra_holidays
            or day in self.extra_workdays
        )

    def is_provisional(self, day: date | datetime) -> bool:
        """Whether the date's year comes from a provisional override (awaiting the State Council notice)."""
        return local_date(day).year in self.provisional_years

    def is_workday(self, day: date | datetime) -> bool:
        day = local_date(day)
        if day in self.extra_workdays:
            return True
        if day in self.extra_holidays:
            return False
        if day in self.library_workdays:
            return True
        if day in self.library_holidays:
            return False
        return day.weekday() < 5

    def next_workday(self, day: date) -> date:
        """The first working day strictly after ``day``."""
        day += ONE_DAY
        while not self.is_workday(day):
            day += ONE_DAY
        return day

    def add_working_days(self, start: datetime, n: int) -> datetime:
        """The end (23:59:59.999999 Asia/Shanghai) of the n-th working day after the local day of ``start``.

        The start day never counts, whatever the hour or whether it is a working day, so a case assigned
        on Friday evening with a 1-working-day limit is due at the end of Monday (or of a 调休 Saturday).
        Adding to a deadline composes: ``add_working_days(add_working_days(s, a), b) == add_working_days(s, a + b)``.
        """
        if n < 1:
            raise ValueError(f"a working-day limit must be at least 1, got {n}")
        day = to_local(start).date()
        for _ in range(n):
            day = self.next_workday(day)
        return datetime.combine(day, END_OF_DAY, tzinfo=SHANGHAI)

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """``start`` plus ``hours`` calendar hours, in Asia/Shanghai time.

        The hour tiers (urgent 2 h, utilities 24 h) run round the clock: emergencies and water, power or
        heating outages are handled on duty at night, at weekends and on holidays, so no hour is skipped.
        """
        if hours <= 0:
            raise ValueError(f"an hour limit must be positive, got {hours}")
        return to_local(start) + timedelta(hours=hours)

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """The part of [a, b) that falls on working days (local midnight to midnight); zero when b <= a.

        Within the years the calendar knows, the difference of two readings of a running total (the working time
        from the first day it knows up to each moment: one lookup of the working days before the moment's date),
        whatever the span's length; outside them, day by day. Both give the same exact ``timedelta``."""
        a, b = to_local(a), to_local(b)
        if b <= a:
            return timedelta(0)
        index = self._index
        if index is None:
            index = _WorkdayIndex.build(self)
            object.__setattr__(self, "_index", index)
        start, end = index.running_total(a), index.running_total(b)
        if start is None or end is None:
            return self._working_time_day_by_day(a, b)
        return timedelta(microseconds=end - start)

    def _working_time_day_by_day(self, a: datetime, b: datetime) -> timedelta:
        """``working_time_between`` for local ``a < b``, one day at a time."""
        total = timedelta(0)
        day = a.date()
        while day <= b.date():
            if self.is_workday(day):
                day_start = start_of_local_day(day)
                total += min(b, day_start + ONE_DAY) - max(a, day_start)
            day += ONE_DAY
        return total

    def working_days_between(self, a: datetime, b: datetime) -> float:
        """Elapsed working time from a to b in working days (24 h of a working day = 1.0); zero when b <= a.

        Used for response times and time held per step. A deadline ``d = add_working_days(s, n)`` gives
        ``working_days_between(s, d) == n + f`` less one microsecond (the deadline is 23:59:59.999999), where
        ``f`` is the rest of the start day after ``s`` if the start day is a working day, else 0; so the
        result is n (to within 1e-10) on a non-working start day and below n + 1 on a working one.
        """
        return self.working_time_between(a, b) / ONE_DAY


@dataclass(frozen=True, slots=True)
class _WorkdayIndex:
    """How many working days come before each date from ``first`` on (``before[n]``: before ``first`` + n days)."""

    first: int  # the proleptic ordinal of the first date
    before: tuple[int, ...]
    workday: tuple[bool, ...]

    @classmethod
    def build(cls, calendar: WorkCalendar) -> _WorkdayIndex:
        """Every date of the years the library or the override file covers, and the year after the last."""
        years = [year for year in (*calendar.library_years, *calendar.override_years) if year > 0]
        if not years:  # a calendar of explicit days only (a ranking's evidence): nothing to index
            return cls(0, (), ())
        first, last = date(min(years), 1, 1), date(max(years) + 1, 12, 31)
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        workday = tuple(calendar.is_workday(day) for day in days)
        return cls(first.toordinal(), tuple(accumulate(workday, initial=0))[:-1], workday)

    def running_total(self, moment: datetime) -> int | None:
        """The working time from the first date to local ``moment`` in microseconds, or None outside the dates
        indexed."""
        n = moment.toordinal() - self.first
        if not 0 <= n < len(self.before):
            return None
        total = self.before[n] * _DAY_US
        if self.workday[n]:
            total += (moment.hour * 3600 + moment.minute * 60 + moment.second) * 1_000_000 + moment.microsecond
        return total


def load_calendar_overrides(path: Path | str | None = None) -> CalendarOverrides:
    return read_yaml_config(Path(path) if path is not None else DEFAULT_OVERRIDES_PATH, CalendarOverrides)


def load_calendar(path: Path | str | None = None) -> WorkCalendar:
    """Read an override file (default: the one shipped in ``services/rectification/config``) once."""
    return WorkCalendar.build(load_calendar_overrides(path))
