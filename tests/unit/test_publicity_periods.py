"""Periods of the public pages, on China time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.publicity.periods import Period, PeriodError, month_of, period_choices, recent_months


@pytest.mark.parametrize(
    ("text", "months", "start", "end"),
    [
        ("2025-03", ("2025-03",), "2025-03-01T00:00:00+08:00", "2025-04-01T00:00:00+08:00"),
        ("2025-Q4", ("2025-10", "2025-11", "2025-12"), "2025-10-01T00:00:00+08:00", "2026-01-01T00:00:00+08:00"),
        (
            "2025",
            tuple(f"2025-{m:02d}" for m in range(1, 13)),
            "2025-01-01T00:00:00+08:00",
            "2026-01-01T00:00:00+08:00",
        ),
        ("2025-12", ("2025-12",), "2025-12-01T00:00:00+08:00", "2026-01-01T00:00:00+08:00"),
    ],
)
def test_a_period_covers_its_months_in_china_time(text: str, months: tuple[str, ...], start: str, end: str) -> None:
    period = Period.parse(text)
    assert str(period) == text and period.months == months
    assert period.start == datetime.fromisoformat(start) and period.end == datetime.fromisoformat(end)


@pytest.mark.parametrize("text", ["2025-13", "2025-Q5", "25-03", "2025-3", "", "2025-03-01", "1999"])
def test_what_is_not_a_period_is_refused(text: str) -> None:
    with pytest.raises(PeriodError):
        Period.parse(text)


def test_the_month_of_a_moment_is_read_on_the_china_calendar() -> None:
    assert month_of(datetime(2025, 3, 31, 16, 30, tzinfo=UTC)) == "2025-04"  # 00:30 on 1 April in Beijing
    assert month_of(datetime(2025, 3, 31, 15, 59, tzinfo=UTC)) == "2025-03"


def test_labels() -> None:
    assert Period.parse("2025-03").label("zh") == "2025年3月"
    assert Period.parse("2025-Q2").label("zh") == "2025年第2季度"
    assert Period.parse("2025").label("zh") == "2025年"
    assert Period.parse("2025-Q2").label("en") == "2025-Q2"


def test_choices_list_each_year_then_its_quarters_and_months_latest_first() -> None:
    choices = [str(p) for p in period_choices(["2025-03", "2025-02", "2024-12"])]
    assert choices == ["2025", "2025-Q1", "2025-03", "2025-02", "2024", "2024-Q4", "2024-12"]


def test_recent_months_cross_the_year() -> None:
    assert recent_months("2025-02", 4) == ["2024-11", "2024-12", "2025-01", "2025-02"]
