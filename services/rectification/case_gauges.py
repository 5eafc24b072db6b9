"""Open and overdue cases per tier, for the operators' dashboard: refreshed from rectification's own tables.

A case is open while someone holds it (an open spell in ``case_holds``). It is overdue while one of its running
deadlines is past, whether or not the deadline watcher has recorded the breach yet: the acknowledgment deadline
runs while the unit has not acknowledged (step ``acknowledgment``), the rectification deadline while the unit has
not submitted its rectification (steps ``acknowledgment``, ``planning``, ``rectification``). A deadline's current
value is the last one the case's events set (``ack_due``, ``rectify_due``: assignment, transfer, extension,
rejection, reopening). The responsible unit is the last one named by the case's events (a transfer's
``to_unit_id``, else ``responsible_unit_id``, else the filing's ``unit_id``); its tier comes from
``services.common.reference``. Labels are tiers only, never units or cases.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime

import asyncpg

from services.common.metrics import CASES_OPEN, CASES_OVERDUE

log = logging.getLogger(__name__)

QUERY = """
WITH open AS (
    SELECT DISTINCT ON (case_id) case_id, step FROM case_holds WHERE ended_at IS NULL ORDER BY case_id, seq DESC
),
cases AS (
    SELECT o.case_id, o.step, u.unit_id, a.due AS ack_due, r.due AS rectify_due
    FROM open o
    CROSS JOIN LATERAL (
        SELECT coalesce(e.envelope->'payload'->>'to_unit_id', e.envelope->'payload'->>'responsible_unit_id',
                        e.envelope->'payload'->>'unit_id') AS unit_id
        FROM events e WHERE e.stream_id = o.case_id
          AND e.envelope->'payload' ?| array['to_unit_id', 'responsible_unit_id', 'unit_id']
        ORDER BY e.stream_version DESC LIMIT 1
    ) u
    LEFT JOIN LATERAL (
        SELECT (e.envelope->'payload'->>'ack_due')::timestamptz AS due
        FROM events e WHERE e.stream_id = o.case_id AND e.envelope->'payload' ? 'ack_due'
        ORDER BY e.stream_version DESC LIMIT 1
    ) a ON true
    LEFT JOIN LATERAL (
        SELECT (e.envelope->'payload'->>'rectify_due')::timestamptz AS due
        FROM events e WHERE e.stream_id = o.case_id AND e.envelope->'payload' ? 'rectify_due'
        ORDER BY e.stream_version DESC LIMIT 1
    ) r ON true
)
SELECT unit_id, count(*) AS open,
       count(*) FILTER (WHERE (step = 'acknowledgment' AND ack_due < $1)
                           OR (step IN ('acknowledgment', 'planning', 'rectification') AND rectify_due < $1)) AS overdue
FROM cases GROUP BY unit_id
"""


async def count_cases(conn: asyncpg.Connection, tiers: Mapping[str, str], now: datetime) -> dict[str, tuple[int, int]]:
    """(open, overdue) per tier; units not in the reference count as tier ``unknown``."""
    totals: dict[str, tuple[int, int]] = {t: (0, 0) for t in set(tiers.values())}
    for row in await conn.fetch(QUERY, now):
        tier = tiers.get(row["unit_id"], "unknown")
        o, d = totals.get(tier, (0, 0))
        totals[tier] = (o + row["open"], d + row["overdue"])
    return totals


def publish(totals: Mapping[str, tuple[int, int]]) -> None:
    for tier, (open_, overdue) in totals.items():
        CASES_OPEN.labels(tier).set(open_)
        CASES_OVERDUE.labels(tier).set(overdue)


async def run_case_gauges(
    pool: asyncpg.Pool, tiers: Mapping[str, str], clock: Callable[[], datetime], interval_s: float = 30.0
) -> None:
    while True:
        try:
            async with pool.acquire() as conn:
                publish(await count_cases(conn, tiers, clock()))
        except Exception as exc:
            log.warning("could not count open cases", extra={"error": repr(exc)})
        await asyncio.sleep(interval_s)
