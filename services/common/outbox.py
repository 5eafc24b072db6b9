"""Writing to the outbox, in the caller's transaction. ``relay.OutboxRelay`` publishes it."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.common.contracts import CommandEnvelope, EventEnvelope, encode_command, encode_event
from services.common.topics import TopicSpec


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    topic: str
    key: str
    value: bytes

    @classmethod
    def event(cls, spec: TopicSpec, envelope: EventEnvelope) -> OutgoingMessage:
        return cls(spec.name, envelope.stream_id, encode_event(envelope))

    @classmethod
    def command(cls, spec: TopicSpec, envelope: CommandEnvelope) -> OutgoingMessage:
        return cls(spec.name, envelope.case_id, encode_command(envelope))


async def enqueue(conn: asyncpg.Connection, messages: list[OutgoingMessage]) -> None:
    """Add messages to the outbox in one round trip; they leave only if the transaction commits."""
    if not messages:
        return
    await conn.execute(
        "INSERT INTO outbox (topic, key, value) SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])",
        [m.topic for m in messages],
        [m.key for m in messages],
        [m.value for m in messages],
    )
