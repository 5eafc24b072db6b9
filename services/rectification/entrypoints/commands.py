"""The consumer edge: a batch of commands from intake, applied in the inbox's transaction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import asyncpg

from services.common.contracts import CommandEnvelope
from services.common.inbox import Decoded, Handler
from services.common.metrics import COMMANDS_DECIDED
from services.common.outbox import enqueue
from services.rectification.adapters.event_store import PostgresEventStore
from services.rectification.adapters.projections import update_projections
from services.rectification.service import Rules, StateCache, apply_commands


def command_handler(rules: Rules, cache: StateCache | None = None) -> Handler[CommandEnvelope]:
    async def handle(conn: asyncpg.Connection, batch: list[Decoded[CommandEnvelope]]) -> Callable[[], None] | None:
        decisions = await apply_commands(
            PostgresEventStore(conn),
            [d.message for d in batch],
            cache=cache,
            **rules.kwargs(),  # type: ignore[arg-type]
        )
        await enqueue(conn, decisions.outgoing)
        await update_projections(conn, decisions.before, decisions.states, rules.calendar)
        counts = Counter("refused" if refusal else "applied" for _, refusal in decisions.outcomes)
        for outcome, n in counts.items():
            COMMANDS_DECIDED.labels(outcome).inc(n)
        if cache is None:
            return None
        return lambda: cache.put(decisions.states)

    return handle
