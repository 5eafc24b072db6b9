"""The consumer edge: public case facts into the publicity projection and the public ledger, in one transaction."""

from __future__ import annotations

import asyncpg

from services.common.contracts import ContractError, EventEnvelope, PublicCaseChangedV2, decode_event
from services.common.inbox import Decoded
from services.publicity.adapters import ledger
from services.publicity.adapters.store import apply_public_facts


async def apply_public_batch(conn: asyncpg.Connection, batch: list[Decoded[EventEnvelope]]) -> None:
    facts = [d.message for d in batch]
    await apply_public_facts(conn, facts)
    await ledger.append(conn, facts)


def decode_public_fact(raw: bytes) -> EventEnvelope:
    """The allow-list at the door: anything but a PublicCaseChanged is refused (and dead-lettered)."""
    env = decode_event(raw)
    if not isinstance(env.payload, PublicCaseChangedV2):
        raise ContractError(
            "not_public", f"{env.event_type} is not a public fact; publicity only reads PublicCaseChanged"
        )
    return env
