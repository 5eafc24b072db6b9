"""The consumer edge: a batch of commands from intake, applied in the inbox's transaction."""

from __future__ import annotations

from collections import Counter

import asyncpg

from services.common.contracts import CommandEnvelope
from services.common.inbox import Decoded
from services.common.metrics import COMMANDS_DECIDED
from services.common.outbox import enqueue
from services.rectification.adapters.event_store import PostgresEventStore
from services.rectification.service import Clock, apply_commands


def command_handler(clock: Clock, units: frozenset[str], categories: frozenset[str]):  # type: ignore[no-untyped-def]
    async def handle(conn: asyncpg.Connection, batch: list[Decoded[CommandEnvelope]]) -> None:
        outgoing, outcomes = await apply_commands(
            PostgresEventStore(conn), [d.message for d in batch], clock=clock, units=units, categories=categories
        )
        await enqueue(conn, outgoing)
        counts = Counter("refused" if refusal else "applied" for _, refusal in outcomes)
        for outcome, n in counts.items():
            COMMANDS_DECIDED.labels(outcome).inc(n)

    return handle
