"""The consumer edge: case events into scoring's projection."""

from __future__ import annotations

import asyncpg

from services.common.contracts import CaseFiled, EventEnvelope
from services.common.inbox import Decoded
from services.scoring.adapters.projection import record_filed


async def apply_case_events(conn: asyncpg.Connection, batch: list[Decoded[EventEnvelope]]) -> None:
    filed = [
        (e.stream_id, e.payload.unit_id, e.payload.category, e.payload.filed_at, e.stream_version)
        for e in (d.message for d in batch)
        if isinstance(e.payload, CaseFiled)
    ]
    await record_filed(conn, filed)
