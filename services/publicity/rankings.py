"""Which published ranking to show, and the site's in-process copy of the (small) rankings table.

A publication never changes once published, so its rows are kept by event id for good; the list of
publications is read again only when the projection's change counter has moved.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from services.publicity.adapters.store import Publication

TIERS = ("township", "department")


def published_keys(index: list[Publication]) -> list[tuple[str, str]]:
    """(period, tier) of every published ranking, latest period first, townships before departments."""
    seen: dict[tuple[str, str], None] = {}
    for p in index:
        seen.setdefault((p.period, p.tier), None)
    return list(seen)


def choose(index: list[Publication], period: str | None, tier: str | None) -> tuple[str | None, str]:
    """The period and tier to show: as asked, else the latest published period, townships first."""
    if period is None:
        period = index[0].period if index else None
    if tier is None:
        tiers = {p.tier for p in index if p.period == period}
        tier = "township" if "township" in tiers or not tiers else sorted(tiers)[0]
    return period, tier


def history(index: list[Publication], period: str, tier: str) -> list[Publication]:
    """Every publication for the period and tier, newest first."""
    return [p for p in index if p.period == period and p.tier == tier]


def latest(index: list[Publication], period: str, tier: str, formula: str | None = None) -> Publication | None:
    return next((p for p in history(index, period, tier) if formula is None or p.formula_version == formula), None)


class RankingsCache:
    def __init__(
        self,
        read_index: Callable[[Any], Awaitable[list[Publication]]],
        read_document: Callable[[Any, str], Awaitable[dict[str, Any]]],
        keep: int = 256,
    ) -> None:
        self._read_index = read_index
        self._read_document = read_document
        self._keep = keep
        self._changes: int | None = None
        self._index: list[Publication] = []
        self._documents: dict[str, dict[str, Any]] = {}

    async def index(self, pool: Any, changes: int) -> list[Publication]:
        """The publications as of the projection's change counter ``changes``."""
        if changes != self._changes:
            self._index = await self._read_index(pool)
            self._changes = changes
        return self._index

    async def document(self, pool: Any, event_id: str) -> dict[str, Any]:
        found = self._documents.get(event_id)
        if found is None:
            found = await self._read_document(pool, event_id)
            if len(self._documents) >= self._keep:
                self._documents.pop(next(iter(self._documents)))
            self._documents[event_id] = found
        return found
