"""Scoring's pure rules: which period an instant belongs to."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

CHINA = timezone(timedelta(hours=8))


def month_of(at: datetime) -> str:
    """Periods follow the China calendar day, whatever the server's zone."""
    return f"{at.astimezone(CHINA):%Y-%m}"
