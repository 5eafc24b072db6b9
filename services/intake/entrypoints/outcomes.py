"""The consumer edge: rectification's decisions become each submission's status and each case's access."""

from __future__ import annotations

import asyncpg

from services.common.contracts import EventEnvelope, SubmissionAppliedV2, SubmissionRefused
from services.common.inbox import Decoded
from services.intake.adapters.repository import record_outcomes, update_case_access


async def apply_outcomes(conn: asyncpg.Connection, batch: list[Decoded[EventEnvelope]]) -> None:
    rows = []
    access: dict[str, tuple[str, str, str | None, int]] = {}
    for item in batch:
        env = item.message
        p = env.payload
        if isinstance(p, SubmissionAppliedV2):
            rows.append((p.submission_id, "applied", None, None, p.case_version, env.recorded_at))
            if p.status is not None and (p.case_id not in access or access[p.case_id][3] < p.case_version):
                access[p.case_id] = (p.case_id, p.status.value, p.responsible_unit_id, p.case_version)
        elif isinstance(p, SubmissionRefused):
            rows.append((p.submission_id, "refused", p.code, p.reason, None, env.recorded_at))
    await record_outcomes(conn, rows)
    await update_case_access(conn, sorted(access.values()))
