"""The working-day calendar: facts checked by hand against the 2025/2026 State Council notices, and properties."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.rectification.domain.calendar import (
    DEFAULT_OVERRIDES_PATH,
    END_OF_DAY,
    ONE_DAY,
    SHANGHAI,
    CalendarOverrides,
    ConfigError,
    WorkCalendar,
    load_calendar,
    start_of_local_day,
)

CALENDAR = load_calendar()


def shanghai(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def end_of(day: date) -> datetime:
    return datetime.combine(day, END_OF_DAY, tzinfo=SHANGHAI)


def test_default_override_file_is_shipped_with_the_package() -> None:
    assert DEFAULT_OVERRIDES_PATH.is_file()
    assert DEFAULT_OVERRIDES_PATH.parent == Path(__file__).parents[2] / "services" / "rectification" / "config"


def test_version_names_library_and_override_file() -> None:
    assert CALENDAR.version == "chinesecalendar-1.11.0+cn-2026.1"


def test_calendar_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        CALENDAR.override_version = "other"  # type: ignore[misc]


@pytest.mark.parametrize("day", [date(2026, 10, d) for d in range(1, 8)])
def test_national_day_2026_is_not_a_workday(day: date) -> None:
    assert not CALENDAR.is_workday(day)


@pytest.mark.parametrize("day", [date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2025, 1, 26)])
def test_make_up_weekend_days_are_workdays(day: date) -> None:
    assert day.weekday() >= 5
    assert CALENDAR.is_workday(day)


def test_ordinary_days() -> None:
    assert CALENDAR.is_workday(date(2026, 10, 8))
    assert not CALENDAR.is_workday(date(2026, 10, 11))
    assert not CALENDAR.is_workday(date(2026, 2, 16))


def test_is_workday_reads_an_aware_datetime_in_shanghai_time() -> None:
    assert CALENDAR.is_workday(datetime(2026, 9, 30, 15, 0, tzinfo=UTC))  # 23:00 on Sep 30 in Shanghai
    assert not CALENDAR.is_workday(datetime(2026, 9, 30, 16, 0, tzinfo=UTC))  # 00:00 on Oct 1


def test_library_and_override_coverage() -> None:
    assert CALENDAR.library_years == (2004, 2026)
    assert CALENDAR.override_years == frozenset({2027})
    assert CALENDAR.covers(date(2004, 1, 1))
    assert CALENDAR.covers(date(2027, 12, 31))
    assert not CALENDAR.covers(date(2003, 12, 31))
    assert not CALENDAR.covers(date(2028, 1, 1))


def test_provisional_2027_override() -> None:
    assert CALENDAR.is_provisional(date(2027, 3, 1))
    assert not CALENDAR.is_provisional(date(2026, 3, 1))
    assert not CALENDAR.is_workday(date(2027, 1, 1))
    assert not CALENDAR.is_workday(date(2027, 2, 8))
    assert all(not CALENDAR.is_workday(date(2027, 10, d)) for d in range(1, 8))
    assert CALENDAR.is_workday(date(2027, 10, 8))


def test_outside_coverage_falls_back_to_monday_to_friday() -> None:
    assert CALENDAR.is_workday(date(2028, 10, 2))  # a Monday in National Day week: unknown, so a workday
    assert not CALENDAR.is_workday(date(2028, 10, 7))  # Saturday
    assert CALENDAR.is_workday(date(2003, 10, 1))  # a Wednesday before the library's data


def test_override_wins_over_library() -> None:
    overrides = CalendarOverrides(
        version="test-1",
        holidays=(date(2026, 10, 8), date(2031, 1, 6)),
        workdays=(date(2026, 10, 1), date(2026, 10, 11)),
    )
    calendar = WorkCalendar.build(overrides)
    assert not calendar.is_workday(date(2026, 10, 8))
    assert calendar.is_workday(date(2026, 10, 1))
    assert calendar.is_workday(date(2026, 10, 11))
    assert not calendar.is_workday(date(2031, 1, 6))
    assert calendar.covers(date(2031, 1, 6))
    assert not calendar.covers(date(2031, 1, 7))
    assert calendar.version == "chinesecalendar-1.11.0+test-1"


def test_without_overrides_only_the_library_counts() -> None:
    calendar = WorkCalendar.build()
    assert calendar.is_workday(date(2027, 10, 1))
    assert not calendar.covers(date(2027, 10, 1))


def test_override_file_errors_name_the_field(tmp_path: Path) -> None:
    both = tmp_path / "both.yaml"
    both.write_text('version: "x-1"\nholidays: [2027-01-01]\nworkdays: [2027-01-01]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="holidays and workdays"):
        load_calendar(both)
    provisional = tmp_path / "provisional.yaml"
    provisional.write_text('version: "x-1"\nprovisional_years: [2028]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="provisional_years"):
        load_calendar(provisional)
    bad_date = tmp_path / "bad_date.yaml"
    bad_date.write_text('version: "x-1"\nholidays: [2027-02-30]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"holidays\.0"):
        load_calendar(bad_date)
    with pytest.raises(ConfigError, match="cannot read"):
        load_calendar(tmp_path / "missing.yaml")


def test_deadline_skips_national_day() -> None:
    assert CALENDAR.add_working_days(shanghai(2026, 9, 30, 10, 0), 7) == end_of(date(2026, 10, 15))


def test_deadline_lands_on_a_make_up_saturday() -> None:
    assigned = shanghai(2026, 2, 13, 16, 0)
    assert CALENDAR.add_working_days(assigned, 1) == end_of(date(2026, 2, 14))
    assert CALENDAR.add_working_days(assigned, 7) == end_of(date(2026, 3, 2))


def test_start_day_never_counts() -> None:
    assert CALENDAR.add_working_days(shanghai(2026, 3, 6, 8, 0), 1) == end_of(date(2026, 3, 9))
    assert CALENDAR.add_working_days(shanghai(2026, 3, 7, 8, 0), 1) == end_of(date(2026, 3, 9))
    assert CALENDAR.add_working_days(shanghai(2026, 3, 9, 0, 0), 1) == end_of(date(2026, 3, 10))


def test_start_day_is_taken_in_shanghai_time() -> None:
    thursday_evening_utc = datetime(2026, 3, 5, 17, 0, tzinfo=UTC)  # Friday 01:00 in Shanghai
    assert CALENDAR.add_working_days(thursday_evening_utc, 1) == end_of(date(2026, 3, 9))


def test_rejects_naive_datetimes_and_empty_limits() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CALENDAR.add_working_days(datetime(2026, 3, 5, 9, 0), 1)
    with pytest.raises(ValueError, match="at least 1"):
        CALENDAR.add_working_days(shanghai(2026, 3, 5, 9, 0), 0)
    with pytest.raises(ValueError, match="positive"):
        CALENDAR.add_working_hours(shanghai(2026, 3, 5, 9, 0), 0)


def test_hour_limits_run_round_the_clock() -> None:
    assert CALENDAR.add_working_hours(shanghai(2026, 10, 3, 22, 30), 2) == shanghai(2026, 10, 4, 0, 30)
    assert CALENDAR.add_working_hours(shanghai(2026, 9, 30, 18, 0), 24) == shanghai(2026, 10, 1, 18, 0)
    assert CALENDAR.add_working_hours(datetime(2026, 9, 30, 10, 0, tzinfo=UTC), 2).utcoffset() == timedelta(hours=8)


def test_working_days_between_by_hand() -> None:
    friday_noon, monday_noon = shanghai(2026, 3, 6, 12, 0), shanghai(2026, 3, 9, 12, 0)
    assert CALENDAR.working_days_between(friday_noon, monday_noon) == 1.0
    assert CALENDAR.working_days_between(monday_noon, friday_noon) == 0.0
    assert CALENDAR.working_days_between(friday_noon, friday_noon) == 0.0
    assert CALENDAR.working_days_between(shanghai(2026, 10, 1, 0, 0), shanghai(2026, 10, 8, 0, 0)) == 0.0
    assert CALENDAR.working_days_between(shanghai(2026, 10, 7, 18, 0), shanghai(2026, 10, 8, 6, 0)) == 0.25
    assert CALENDAR.working_days_between(shanghai(2026, 2, 13, 0, 0), shanghai(2026, 3, 2, 0, 0)) == 7.0


ZONES = st.sampled_from([SHANGHAI, UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))])
MOMENTS = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31), timezones=ZONES)
LIMITS = st.integers(min_value=1, max_value=40)


@given(start=MOMENTS, n=LIMITS)
def test_deadline_is_the_end_of_a_workday_and_grows_with_n(start: datetime, n: int) -> None:
    due = CALENDAR.add_working_days(start, n)
    assert CALENDAR.is_workday(due)
    assert due.timetz() == END_OF_DAY.replace(tzinfo=SHANGHAI)
    assert due > start
    assert CALENDAR.add_working_days(start, n + 1) > due


@given(start=MOMENTS, a=LIMITS, b=LIMITS)
def test_extending_a_deadline_composes(start: datetime, a: int, b: int) -> None:
    assert CALENDAR.add_working_days(CALENDAR.add_working_days(start, a), b) == CALENDAR.add_working_days(start, a + b)


@given(start=MOMENTS, n=LIMITS)
def test_working_time_to_a_deadline_matches_the_rule(start: datetime, n: int) -> None:
    due = CALENDAR.add_working_days(start, n)
    local = start.astimezone(SHANGHAI)
    rest_of_start_day = start_of_local_day(local.date() + ONE_DAY) - local
    expected = n * ONE_DAY - timedelta(microseconds=1)
    if CALENDAR.is_workday(local.date()):
        expected += rest_of_start_day
    assert CALENDAR.working_time_between(start, due) == expected
    elapsed = CALENDAR.working_days_between(start, due)
    assert n - 1e-9 < elapsed < n + 1


@settings(max_examples=50)
@given(moments=st.lists(MOMENTS, min_size=3, max_size=3))
def test_working_time_is_additive_and_bounded(moments: list[datetime]) -> None:
    a, b, c = sorted(moments)
    whole = CALENDAR.working_time_between(a, c)
    assert whole == CALENDAR.working_time_between(a, b) + CALENDAR.working_time_between(b, c)
    assert timedelta(0) <= whole <= c - a
    assert CALENDAR.working_days_between(c, a) == 0.0


WIDE_MOMENTS = st.datetimes(min_value=datetime(1995, 1, 1), max_value=datetime(2110, 12, 31), timezones=ZONES)


@settings(max_examples=300)
@given(a=st.one_of(MOMENTS, WIDE_MOMENTS), span=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)))
def test_running_total_gives_the_day_by_day_working_time(a: datetime, span: timedelta) -> None:
    """The index of working days (the years the calendar knows) and the day-by-day count (any year) agree exactly,
    also for spans that start or end outside the index, across holidays and make-up working days."""
    b = a + span
    local_a, local_b = a.astimezone(SHANGHAI), b.astimezone(SHANGHAI)
    expected = CALENDAR._working_time_day_by_day(local_a, local_b) if span else timedelta(0)
    assert CALENDAR.working_time_between(a, b) == expected
    assert CALENDAR.working_time_between(b, a) == timedelta(0)


def test_a_calendar_of_explicit_days_only_counts_day_by_day() -> None:
    """A ranking's evidence carries its span's days, not library years (scoring.domain.evidence.calendar_from):
    such a calendar has no years to index and counts working time one day at a time."""
    national_day = date(2026, 10, 1)
    days_only = WorkCalendar(
        library_version="lib",
        override_version="evidence",
        library_years=(0, 0),
        override_years=frozenset(),
        provisional_years=frozenset(),
        library_holidays=frozenset(),
        library_workdays=frozenset(),
        extra_holidays=frozenset({national_day}),
        extra_workdays=frozenset({date(2026, 10, 10)}),
    )
    start, end = shanghai(2026, 9, 30, 12), shanghai(2026, 10, 11)
    # half of 30 Sep, 1 Oct a holiday, 2 Oct a Friday, 3-4 Oct a weekend, 5-9 Oct, 10 Oct a make-up Saturday
    assert days_only.working_time_between(start, end) == timedelta(days=7, hours=12)
    assert days_only.working_time_between(start, end) == days_only._working_time_day_by_day(start, end)
