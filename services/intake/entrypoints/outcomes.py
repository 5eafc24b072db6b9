"""The consumer edge: rectification's decisions become each submission's status and each case's access.

A submission is decided once. Rectification derives its outcome's event id from the command, so a redelivered
outcome is the same message (the inbox skips it); a second, *different* verdict on a submission already decided
is impossible in a sound system, and is refused: the handler raises, so the inbox dead-letters that message
(``handler_error``, with this reason) and applies the rest of its batch.
"""

from __future__ import annotations

import uuid

import asyncpg

from services.common.contracts import EventEnvelope, SubmissionAppliedV2, SubmissionRefused
from services.common.inbox import Decoded
from services.intake.adapters.repository import record_outcomes, update_case_access


class ImpossibleOutcome(ValueError):
    """A second, different verdict on a submission that was already decided."""


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
    await _refuse_second_verdicts(conn, rows)
    await record_outcomes(conn, rows)
    await update_case_access(conn, sorted(access.values()))


async def _refuse_second_verdicts(conn: asyncpg.Connection, rows: list[tuple]) -> None:  # type: ignore[type-arg]
    if not rows:
        return
    decided = {
        r["submission_id"]: (r["status"], r["code"], r["case_version"])
        for r in await conn.fetch(
            "SELECT submission_id, status, code, case_version FROM submissions"
            " WHERE submission_id = ANY($1::uuid[]) AND status <> 'received'",
            [row[0] for row in rows],
        )
    }
    for submission_id, status, code, _, case_version, _ in rows:
        earlier = decided.get(submission_id)
        if earlier is not None and earlier != (status, code, case_version):
            raise ImpossibleOutcome(_why(submission_id, earlier, (status, code, case_version)))


def _why(submission_id: uuid.UUID, earlier: tuple, now: tuple) -> str:  # type: ignore[type-arg]
    return f"submission {submission_id} was already {earlier[0]}; a second, different outcome ({now[0]}) is impossible"
