"""Periods (month, quarter, year) on the China calendar, and when a month's figures settle.

A month's figures settle ``SETTLE_DAYS`` days after it ends, at 00:00 Asia/Shanghai (the 11th of the next
month): events recorded after that moment no longer change them. Quarters and years are sums of their
months, so they settle month by month. See docs/scoring.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from services.common.periods import Period as BasePeriod
from services.common.periods import PeriodError, month_of
from services.rectification.domain.calendar import SHANGHAI

__all__ = ["SETTLE_DAYS", "SETTLE_RULE", "Period", "PeriodError", "cutoff", "epoch_of", "month_of", "previous_month"]

SETTLE_DAYS = 10
SETTLE_RULE = f"month+{SETTLE_DAYS}d@00:00+08:00"  # recorded with every ranking


class Period(BasePeriod):
    """A period whose figures settle: ``cutoff`` is when the last of its months has settled."""

    __slots__ = ()

    @property
    def last_month(self) -> str:
        return self.months[-1]

    @property
    def cutoff(self) -> datetime:
        return cutoff(self.last_month)


def _month_start(year: int, month: int) -> datetime:
    while month > 12:
        year, month = year + 1, month - 12
    while month < 1:
        year, month = year - 1, month + 12
    return datetime(year, month, 1, tzinfo=SHANGHAI)


@lru_cache(maxsize=4096)
def cutoff(month: str) -> datetime:
    """When ``month``'s figures settle: 00:00 Asia/Shanghai, ``SETTLE_DAYS`` days after the month ends."""
    year, number = int(month[:4]), int(month[5:7])
    return _month_start(year, number + 1) + timedelta(days=SETTLE_DAYS)


def epoch_of(recorded_at: datetime) -> str:
    """The first month whose cutoff is at or after ``recorded_at``: the event changes that month and later ones."""
    month = month_of(recorded_at)
    previous = previous_month(month)
    return previous if recorded_at <= cutoff(previous) else month


def quarter_of(month: str) -> str:
    return f"{month[:4]}-Q{(int(month[5:7]) + 2) // 3}"


def previous_month(month: str) -> str:
    year, number = int(month[:4]), int(month[5:7])
    return f"{year - 1:04d}-12" if number == 1 else f"{year:04d}-{number - 1:02d}"
