"""Query parameters shared by the pages, the JSON API and the feeds, with their documentation."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from services.common.contracts import CaseStatus
from services.publicity.periods import PERIOD_PATTERN

IDENT = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
Unit = Annotated[str | None, Query(max_length=64, description="a unit id, see /api/v1/reference")]
Category = Annotated[str | None, Query(max_length=64, description="a category id, see /api/v1/reference")]
# Empty values mean "any": the pages' search forms send every field, chosen or not.
Status = Annotated[
    str | None,
    Query(pattern=f"^({'|'.join(s.value for s in CaseStatus)})?$", description="a case status; empty: any"),
]
PeriodText = Annotated[
    str | None,
    Query(
        pattern=f"^({PERIOD_PATTERN[1:-1]})?$",
        description="when filed, China time: YYYY-MM (month), YYYY-Qn (quarter) or YYYY (year); empty: any",
    ),
]
Page = Annotated[int, Query(ge=1, le=100_000)]
Size = Annotated[int, Query(ge=1, le=200)]
Lang = Annotated[str | None, Query(pattern="^(zh|en)$", description="zh (default) or en")]
Tier = Annotated[str | None, Query(pattern="^(township|department)$", description="township or department")]
Formula = Annotated[str | None, Query(pattern=IDENT, description="a formula version; default: the newest publication")]


def recompute_command(period: str, tier: str) -> str:
    return f"rectify ranking recompute --period {period} --tier {tier}"
