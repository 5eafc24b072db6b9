"""Which published ranking the site shows, and its in-process copy of the rankings table."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from services.publicity.adapters.store import Publication
from services.publicity.rankings import RankingsCache, choose, history, latest, published_keys

T = datetime(2025, 4, 11, tzinfo=UTC)


def pub(event: str, period: str, tier: str, version: int, formula: str = "v1") -> Publication:
    return Publication(event, period, tier, formula, version, T + timedelta(days=version), event * 64)


INDEX = [  # as the store orders them: period desc, tier desc, newest first
    pub("d", "2025-04", "township", 1),
    pub("c", "2025-03", "township", 2, "v2"),
    pub("b", "2025-03", "township", 1),
    pub("a", "2025-03", "department", 1),
]


def test_the_latest_period_and_townships_are_shown_first() -> None:
    assert choose(INDEX, None, None) == ("2025-04", "township")
    assert choose(INDEX, "2025-03", None) == ("2025-03", "township")
    assert choose([pub("x", "2025-05", "department", 1)], None, None) == ("2025-05", "department")
    assert choose([], None, None) == (None, "township")


def test_the_newest_publication_wins_unless_a_formula_is_asked() -> None:
    assert latest(INDEX, "2025-03", "township").event_id == "c"  # type: ignore[union-attr]
    assert latest(INDEX, "2025-03", "township", "v1").event_id == "b"  # type: ignore[union-attr]
    assert latest(INDEX, "2025-03", "township", "v9") is None
    assert [p.event_id for p in history(INDEX, "2025-03", "township")] == ["c", "b"]
    assert published_keys(INDEX) == [("2025-04", "township"), ("2025-03", "township"), ("2025-03", "department")]


def test_the_cache_reads_the_index_again_only_when_the_projection_changed() -> None:
    reads: list[str] = []

    async def read_index(_: Any) -> list[Publication]:
        reads.append("index")
        return INDEX

    async def read_document(_: Any, event_id: str) -> dict[str, Any]:
        reads.append(event_id)
        return {"event": event_id}

    async def scenario() -> None:
        cache = RankingsCache(read_index, read_document, keep=2)
        assert await cache.index(None, 1) == INDEX
        await cache.index(None, 1)
        await cache.index(None, 2)
        assert await cache.document(None, "a") == {"event": "a"}
        await cache.document(None, "a")
        await cache.document(None, "b")
        await cache.document(None, "c")  # keeps two: "a" goes
        await cache.document(None, "a")

    asyncio.run(scenario())
    assert reads == ["index", "index", "a", "b", "c", "a"]
