"""Periods of the public pages: a month (YYYY-MM), a quarter (YYYY-Qn) or a year (YYYY), on China time (UTC+8).

A case belongs to the period in which it was filed, read on the China calendar whatever the server's zone.
Pure: no clock, no I/O.
"""

from __future__ import annotations

from services.common.periods import CHINA, PERIOD_PATTERN, Period, PeriodError, month_of

__all__ = ["CHINA", "PERIOD_PATTERN", "Period", "PeriodError", "month_of", "optional_period", "period_choices"]


def optional_period(text: str | None) -> Period | None:
    return Period.parse(text) if text else None


def recent_months(last: str, count: int) -> list[str]:
    """``count`` months ending with ``last`` (YYYY-MM), oldest first."""
    year, month = int(last[:4]), int(last[5:7])
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return out[::-1]


def period_choices(months: list[str]) -> list[Period]:
    """The periods worth offering for months that have cases: each year, then its quarters and months, latest first."""
    found = {Period.parse(m) for m in months}
    found |= {Period.parse(f"{m[:4]}-Q{(int(m[5:7]) + 2) // 3}") for m in months}
    found |= {Period.parse(m[:4]) for m in months}
    return sorted(
        found,
        key=lambda p: (-p.year, p.months_count != 12, -((p.first_month + 2) // 3), p.months_count != 3, -p.first_month),
    )
