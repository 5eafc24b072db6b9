"""Periods (month, quarter, year) on the China calendar, and when a month's figures settle.

A month's figures settle ``SETTLE_DAYS`` days after it ends, at 00:00 Asia/Shanghai (the 6th of the next
month): events recorded after that moment no longer change them. Quarters and years are sums of their
months, so they settle month by month. See docs/scoring.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from services.rectification.domain.calendar import SHANGHAI

SETTLE_DAYS = 10
SETTLE_RULE = f"month+{SETTLE_DAYS}d@00:00+08:00"  # recorded with every ranking
_PERIOD = re.compile(r"^(?P<year>\d{4})(?:-(?:(?P<month>0[1-9]|1[0-2])|Q(?P<quarter>[1-4])))?$")


class PeriodError(ValueError):
    """A period that cannot be read; the message shows the accepted forms."""


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """``2026-11`` (a month), ``2026-Q4`` (a quarter) or ``2026`` (a year)."""

    year: int
    first_month: int
    months_count: int

    @classmethod
    def parse(cls, text: str) -> Period:
        found = _PERIOD.match(text.strip())
        if not found:
            raise PeriodError(f"{text!r} is not a period: use YYYY-MM (month), YYYY-Qn (quarter) or YYYY (year)")
        year = int(found["year"])
        if found["month"]:
            return cls(year, int(found["month"]), 1)
        if found["quarter"]:
            return cls(year, 3 * int(found["quarter"]) - 2, 3)
        return cls(year, 1, 12)

    @property
    def kind(self) -> str:
        return {1: "month", 3: "quarter", 12: "year"}[self.months_count]

    def __str__(self) -> str:
        if self.months_count == 1:
            return f"{self.year:04d}-{self.first_month:02d}"
        if self.months_count == 3:
            return f"{self.year:04d}-Q{(self.first_month + 2) // 3}"
        return f"{self.year:04d}"

    @property
    def months(self) -> tuple[str, ...]:
        return tuple(f"{self.year:04d}-{m:02d}" for m in range(self.first_month, self.first_month + self.months_count))

    @property
    def last_month(self) -> str:
        return self.months[-1]

    @property
    def cutoff(self) -> datetime:
        """The moment the whole period has settled: the cutoff of its last month."""
        return cutoff(self.last_month)


def month_of(at: datetime) -> str:
    """``YYYY-MM`` of the China calendar day of ``at``, whatever the server's zone."""
    return f"{at.astimezone(SHANGHAI):%Y-%m}"


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
