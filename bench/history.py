"""A history of N cases, loaded fast through the real writers and copied inside PostgreSQL.

- rectification's event store: a month of cases decided by the real decider (``bench.scoring.simulated_month``)
  appended with ``PostgresEventStore.append``, then copied with new event and stream ids, a month earlier per
  copy (spread over two years), until the store holds the events of N cases;
- the publicity projection: ``bench.publicity.fill`` (its month through ``apply_public_facts`` and
  ``apply_rankings``, copied to N cases, statistics recounted).

Not loaded: intake's submissions and scoring's projection (scoring keeps per-unit and per-month tables whose size
does not follow the number of cases; intake's rows would need a sealed vault entry each).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from services.common.contracts import decode_event
from services.common.db import create_pool

_COPY_EVENTS = """
INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, occurred_at, recorded_at,
    envelope)
SELECT n.event_id, n.stream_id, b.stream_version, b.event_type, b.schema_version,
    b.occurred_at - make_interval(months => k % 24), b.recorded_at - make_interval(months => k % 24),
    b.envelope || jsonb_build_object('event_id', n.event_id, 'stream_id', n.stream_id)
FROM base_events b, generate_series($1::int, $2::int) AS k,
    LATERAL (SELECT md5(b.event_id::text || k)::uuid AS event_id, b.stream_id || '-' || lpad(k::text, 5, '0')
             AS stream_id) n
"""


_MONTHS: dict[str, Any] = {}  # simulated once per process, whatever the number of sizes


async def load_events(dsn: str, size: int, step: int = 100) -> dict[str, Any]:
    from bench.scoring import simulated_month
    from services.rectification.adapters.event_store import PostgresEventStore

    if "events" not in _MONTHS:
        _MONTHS["events"] = [decode_event(orjson.dumps(e)) for e in simulated_month()]
    month = _MONTHS["events"]
    cases = len({e.stream_id for e in month})
    copies = max(0, -(-size // cases) - 1)
    pool = await create_pool(dsn, "rectification", max_size=2)
    try:
        async with pool.acquire() as conn:
            store = PostgresEventStore(conn)
            for i in range(0, len(month), 2000):
                await store.append(month[i : i + 2000])
            await conn.execute("CREATE TEMP TABLE base_events AS SELECT * FROM events")
            for first in range(1, copies + 1, step):
                async with conn.transaction():
                    await conn.execute(_COPY_EVENTS, first, min(copies, first + step - 1))
            await conn.execute("VACUUM ANALYZE events")
            events = int(await conn.fetchval("SELECT count(*) FROM events"))
    finally:
        await pool.close()
    return {"events": events, "event_cases": cases * (copies + 1)}


async def load(dsn: str, size: int) -> dict[str, Any]:
    from bench.publicity import BASE_CASES, fill, simulate_month

    started = time.perf_counter()
    out = await load_events(dsn, size)
    if "public" not in _MONTHS:
        _MONTHS["public"] = await simulate_month(cases=BASE_CASES)
    month = _MONTHS["public"]
    count, _ = await fill(dsn, month, size)
    out |= {
        "public_cases": count,
        "case_ids": month.case_ids,
        "copies": max(0, -(-size // len(month.case_ids)) - 1),
        "seconds": time.perf_counter() - started,
    }
    return out
