"""The event store port, its PostgreSQL adapter and an in-memory fake with the same behaviour."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Protocol

import asyncpg
import orjson

from services.common.contracts import EventEnvelope, decode_event, encode_event

EVENT_COLUMNS = (
    "event_id",
    "stream_id",
    "stream_version",
    "event_type",
    "schema_version",
    "occurred_at",
    "recorded_at",
    "envelope",
)


class ConcurrencyConflict(Exception):
    """Another writer appended to the stream first; reload and decide again."""


class EventStore(Protocol):
    async def load(
        self, stream_ids: Iterable[str], after: dict[str, int] | None = None
    ) -> dict[str, list[EventEnvelope]]: ...

    async def append(self, envelopes: list[EventEnvelope], encoded: list[bytes] | None = None) -> None:
        """Append with expected versions. ``encoded``, when given, is ``encode_event`` of each envelope."""
        ...


class PostgresEventStore:
    """Runs on the caller's connection so appends share the caller's transaction (and its outbox rows)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def load(
        self, stream_ids: Iterable[str], after: dict[str, int] | None = None
    ) -> dict[str, list[EventEnvelope]]:
        """Each stream's events in order; with ``after``, only those past the given version of that stream."""
        ids = sorted(set(stream_ids))
        after = after or {}
        rows = await self.conn.fetch(
            "SELECT e.stream_id, e.envelope::text AS envelope FROM events e "
            "JOIN unnest($1::text[], $2::int[]) AS s(stream_id, after) ON e.stream_id = s.stream_id "
            "WHERE e.stream_version > s.after ORDER BY e.stream_id, e.stream_version",
            ids,
            [after.get(i, 0) for i in ids],
        )
        streams: dict[str, list[EventEnvelope]] = defaultdict(list)
        for row in rows:
            streams[row["stream_id"]].append(decode_event(row["envelope"]))
        return dict(streams)

    async def append(self, envelopes: list[EventEnvelope], encoded: list[bytes] | None = None) -> None:
        if not envelopes:
            return
        if encoded is None:
            encoded = [encode_event(e) for e in envelopes]
        expected = _expected_heads(envelopes)
        try:
            async with self.conn.transaction():
                heads = await self.conn.fetch(
                    "SELECT stream_id, max(stream_version) AS head FROM events WHERE stream_id = ANY($1::text[]) "
                    "GROUP BY stream_id",
                    list(expected),
                )
                found = {r["stream_id"]: r["head"] for r in heads}
                for stream_id, head in expected.items():
                    if found.get(stream_id, 0) != head:
                        raise ConcurrencyConflict(
                            f"{stream_id}: expected version {head}, found {found.get(stream_id, 0)}"
                        )
                await self.conn.copy_records_to_table(  # binary COPY: far cheaper per row than unnest arrays
                    "events",
                    records=[
                        (
                            e.event_id,
                            e.stream_id,
                            e.stream_version,
                            e.event_type,
                            e.schema_version,
                            e.occurred_at,
                            e.recorded_at,
                            value.decode(),
                        )
                        for e, value in zip(envelopes, encoded, strict=True)
                    ],
                    columns=EVENT_COLUMNS,
                )
        except asyncpg.UniqueViolationError as exc:
            raise ConcurrencyConflict(str(exc)) from exc


def _expected_heads(envelopes: list[EventEnvelope]) -> dict[str, int]:
    """The version each stream must be at before the append: one below its first new event."""
    heads: dict[str, int] = {}
    for e in envelopes:
        heads.setdefault(e.stream_id, e.stream_version - 1)
    return heads


class InMemoryEventStore:
    def __init__(self) -> None:
        self.streams: dict[str, list[EventEnvelope]] = defaultdict(list)

    async def load(
        self, stream_ids: Iterable[str], after: dict[str, int] | None = None
    ) -> dict[str, list[EventEnvelope]]:
        after = after or {}
        found = {s: self.streams[s][after.get(s, 0) :] for s in set(stream_ids) if self.streams.get(s)}
        return {s: events for s, events in found.items() if events}

    async def append(self, envelopes: list[EventEnvelope], encoded: list[bytes] | None = None) -> None:
        staged: dict[str, int] = {}
        for e in envelopes:
            current = staged.get(e.stream_id, len(self.streams[e.stream_id]))
            if e.stream_version != current + 1:
                raise ConcurrencyConflict(f"{e.stream_id}: expected version {current + 1}, got {e.stream_version}")
            staged[e.stream_id] = e.stream_version
        for e, value in zip(envelopes, encoded or [encode_event(e) for e in envelopes], strict=True):
            self.streams[e.stream_id].append(decode_event(orjson.loads(value)))
