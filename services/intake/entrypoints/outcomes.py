"""The consumer edge: rectification's decisions become each submission's status."""

from __future__ import annotations

import asyncpg

from services.common.contracts import EventEnvelope, SubmissionApplied, SubmissionRefused
from services.common.inbox import Decoded
from services.intake.adapters.repository import record_outcomes


async def apply_outcomes(conn: asyncpg.Connection, batch: list[Decoded[EventEnvelope]]) -> None:
    rows = []
    for item in batch:
        env = item.message
        p = env.payload
        if isinstance(p, SubmissionApplied):
            rows.append((p.submission_id, "applied", None, None, p.case_version, env.recorded_at))
        elif isinstance(p, SubmissionRefused):
            rows.append((p.submission_id, "refused", p.code, p.reason, None, env.recorded_at))
    await record_outcomes(conn, rows)
