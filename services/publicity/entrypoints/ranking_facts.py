"""The consumer edge: published rankings into the publicity projection and the public ledger, in one transaction."""

from __future__ import annotations

import asyncpg

from services.common.contracts import ContractError, EventEnvelope, RankingPublished, decode_event
from services.common.inbox import Decoded
from services.publicity.adapters import ledger
from services.publicity.adapters.store import apply_rankings


async def apply_ranking_batch(conn: asyncpg.Connection, batch: list[Decoded[EventEnvelope]]) -> None:
    rankings = [d.message for d in batch]
    await apply_rankings(conn, rankings)
    await ledger.append(conn, rankings)


def decode_ranking_fact(raw: bytes) -> EventEnvelope:
    """Only a RankingPublished passes; anything else on the rankings topic is refused (and dead-lettered)."""
    env = decode_event(raw)
    if not isinstance(env.payload, RankingPublished):
        raise ContractError(
            "not_ranking", f"{env.event_type} is not a published ranking; publicity only reads RankingPublished"
        )
    return env
