"""Scoring's tables on PostgreSQL: a batch's write is one statement (the function ``write_projection``, one round
trip), inside the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
import orjson

from services.common.contracts import EventEnvelope, RankingPublished
from services.common.outbox import OutgoingMessage, enqueue
from services.common.topics import RANKINGS
from services.scoring.domain.facts import CaseFacts, load_stored_facts, stored_facts
from services.scoring.domain.figures import COUNTERS, WIDTH, DurationKey
from services.scoring.domain.projection import Change, EpochTally, Tables

# The whole write is one call of write_projection (migrations/003): one round trip, where a statement per table
# took one each, plus a savepoint for the version check. Its parameters are the statements' own: the facts' and the
# durations' rows as one JSON array of arrays each (msgspec encodes a row in well under a microsecond; asyncpg spent
# ~0.3-2 µs per array element, most of it deciding whether the element is itself an array, and ~1.5 µs per
# timestamptz), the stored states a bytea[] beside them (the two unnest in lockstep), the counts and epochs as column
# arrays. jsonb, not json: the server parses it once, where json's ->> lexes the row again for every field.
_WRITE_SQL = (
    "SELECT write_projection($1::jsonb, $2::bytea[], $3::int, $4::text[], $5::text[], "
    f"{', '.join(f'${i + 6}::int[]' for i in range(WIDTH))}, "
    f"${WIDTH + 6}::jsonb, ${WIDTH + 7}::jsonb, "
    f"${WIDTH + 8}::text[], ${WIDTH + 9}::bigint[], ${WIDTH + 10}::numeric[], ${WIDTH + 11}::timestamptz[])"
)
_NO_FACTS = (None, None)
_NO_COUNTS = (None,) * (WIDTH + 2)
_NO_EPOCHS = (None,) * 4
_DURATION_COLUMNS = "month, unit_id, kind, case_id, started_at, ended_at"
_PROJECTION_TABLES = ("case_facts", "unit_month", "unit_durations", "log_epochs")  # no claims: versions decide


class ConcurrentUpdate(RuntimeError):
    """A case's facts changed under us (another worker, or a stale cache): reload and apply again."""


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    columns = [list(column) for column in zip(*rows, strict=True)]
    assert len(columns) == width
    return columns


_encode = msgspec.json.Encoder().encode  # instants with an offset: ~100 ns each where orjson takes ~220


def _json(rows: list[Any]) -> str:
    """Rows as a JSON array of arrays: an instant as RFC 3339 with its offset and microseconds (msgspec's form, ``Z``
    for UTC), which PostgreSQL reads back as the same timestamptz."""
    return _encode(rows).decode()


@dataclass(frozen=True, slots=True)
class Writes:
    """A change as the column arrays of its statements: built ahead, so that a batch's Python work can be done
    while the previous batch's statements run."""

    cases: int
    facts: tuple[str, list[bytes | None]] | None  # the rows but their states as JSON, the states
    counts: list[list[Any]]
    removed: str | None  # duration rows, as JSON
    added: str | None
    epochs: list[list[Any]]

    @classmethod
    def of(cls, change: Change) -> Writes:
        previous = change.previous_versions
        facts: list[tuple[Any, ...]] = []
        states: list[bytes | None] = []
        for f in change.facts.values():
            s = f.spell
            if s is None or f.withdrawn:  # no unit charged (CaseFacts.charged_unit, inlined)
                facts.append((f.case_id, f.version, previous[f.case_id], f.recorded_at, None, None))
            else:
                facts.append((f.case_id, f.version, previous[f.case_id], f.recorded_at, s.unit_id, s.month))
            states.append(stored_facts(f))
        facts += [
            (case_id, version, change.previous_versions[case_id], None, None, None)
            for case_id, version in change.versions.items()
        ]  # cases with no facts: the version alone
        states += [None] * len(change.versions)
        counts = [(unit, month, *deltas) for (unit, month), deltas in change.nonzero_counts().items()]
        removed = [key for key, n in change.durations.items() if n < 0]
        added = [key for key, n in change.durations.items() if n > 0]
        epochs = [(e, t.events, t.id_hash_sum, t.last_recorded_at) for e, t in change.epochs.items()]
        return cls(
            cases=len(facts),
            facts=(_json(facts), states) if facts else None,
            counts=_columns(counts, WIDTH + 2) if counts else [],
            removed=_json(removed) if removed else None,
            added=_json(added) if added else None,
            epochs=_columns(epochs, 4) if epochs else [],
        )


class ScoringStore:
    """The projection's tables, on one connection (the inbox's, for the consumer)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def load_facts(self, case_ids: Iterable[str]) -> tuple[dict[str, CaseFacts], dict[str, int]]:
        """The facts of those cases that have some, and the applied version of those that have none."""
        rows = await self.conn.fetch(
            "SELECT case_id, version, state FROM case_facts WHERE case_id = ANY($1::text[])", list(case_ids)
        )
        facts: dict[str, CaseFacts] = {}
        versions: dict[str, int] = {}
        for case_id, version, state in rows:
            if state is None:
                versions[case_id] = version
            else:
                facts[case_id] = load_stored_facts(case_id, state)
        return facts, versions

    async def write(self, change: Change | Writes) -> None:
        """Apply ``change``, in one statement; raises ``ConcurrentUpdate`` when a case was not at the version it
        was read at, and then nothing of the change is written (the caller's transaction stays usable)."""
        w = change if isinstance(change, Writes) else Writes.of(change)
        written = await self.conn.fetchval(
            _WRITE_SQL,
            *(w.facts or _NO_FACTS),
            w.cases,
            *(w.counts or _NO_COUNTS),
            w.removed,
            w.added,
            *(w.epochs or _NO_EPOCHS),
        )
        if written != w.cases:
            raise ConcurrentUpdate(f"{w.cases - written} case(s) moved on since they were read")

    # ------------------------------------------------------------------ reads for rankings

    async def month_counts(self, months: Iterable[str]) -> dict[tuple[str, str], tuple[int, ...]]:
        rows = await self.conn.fetch(
            f"SELECT unit_id, month, {', '.join(COUNTERS)} FROM unit_month WHERE month = ANY($1::text[])", list(months)
        )
        return {(r[0], r[1]): tuple(r[2:]) for r in rows}

    async def durations(self, months: Iterable[str]) -> list[DurationKey]:
        rows = await self.conn.fetch(
            f"SELECT {_DURATION_COLUMNS} FROM unit_durations WHERE month = ANY($1::text[])", list(months)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]

    async def epochs(self) -> dict[str, EpochTally]:
        rows = await self.conn.fetch("SELECT epoch, events, id_hash_sum, last_recorded_at FROM log_epochs")
        return {r[0]: EpochTally(r[1], int(r[2]), r[3]) for r in rows}

    async def latest_recorded_at(self) -> datetime | None:
        latest: datetime | None = await self.conn.fetchval("SELECT max(last_recorded_at) FROM log_epochs")
        return latest

    # ------------------------------------------------------------------ the whole projection

    async def tables(self) -> Tables:
        """Every row, as the in-memory tables: for content hashes (and small projections only)."""
        tables = Tables()
        for row in await self.conn.fetch("SELECT case_id, version, state FROM case_facts"):
            if row[2] is None:
                tables.versions[row[0]] = row[1]
            else:
                tables.facts[row[0]] = load_stored_facts(row[0], row[2])
        for row in await self.conn.fetch(f"SELECT unit_id, month, {', '.join(COUNTERS)} FROM unit_month"):
            if any(row[2:]):
                tables.counts[(row[0], row[1])] = list(row[2:])
        tables.durations = {tuple(r) for r in await self.conn.fetch(f"SELECT {_DURATION_COLUMNS} FROM unit_durations")}  # type: ignore[misc]
        tables.epochs = await self.epochs()
        return tables

    async def applied_versions(self) -> dict[str, int]:
        """Every case's applied version: the events of each case scoring has applied are those up to it."""
        return {r[0]: r[1] for r in await self.conn.fetch("SELECT case_id, version FROM case_facts")}

    # ------------------------------------------------------------------ published rankings

    def snapshot(self, readonly: bool = True) -> Any:
        """A repeatable-read transaction: every read inside sees one state of the tables."""
        return self.conn.transaction(isolation="repeatable_read", readonly=readonly)

    async def published_result(self, period: str, tier: str, formula_version: str) -> tuple[uuid.UUID, str] | None:
        row = await self.conn.fetchrow(
            "SELECT ranking_id, result_hash FROM published_rankings "
            "WHERE period = $1 AND tier = $2 AND formula_version = $3",
            period,
            tier,
            formula_version,
        )
        return None if row is None else (row[0], row[1])

    async def publications(self, period: str, tier: str) -> int:
        count: int = await self.conn.fetchval(
            "SELECT count(*) FROM published_rankings WHERE period = $1 AND tier = $2", period, tier
        )
        return count

    async def save_published(self, envelope: EventEnvelope, input_hash: str) -> None:
        """Store the ranking and put its ``RankingPublished`` in the outbox, in the caller's transaction."""
        p = envelope.payload
        assert isinstance(p, RankingPublished)
        await self.conn.execute(
            "INSERT INTO published_rankings "
            "(ranking_id, period, tier, formula_version, input_hash, result_hash, payload) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
            envelope.event_id,
            p.period,
            p.tier,
            p.formula_version,
            input_hash,
            p.result_hash,
            orjson.dumps(p.model_dump(mode="json")).decode(),
        )
        await enqueue(self.conn, [OutgoingMessage.event(RANKINGS, envelope)])

    async def published(self, period: str, tiers: Iterable[str]) -> list[tuple[uuid.UUID, dict[str, Any]]]:
        rows = await self.conn.fetch(
            "SELECT ranking_id, payload::text FROM published_rankings WHERE period = $1 AND tier = ANY($2::text[]) "
            "ORDER BY tier, published_at",
            period,
            list(tiers),
        )
        return [(r[0], orjson.loads(r[1])) for r in rows]


async def copy_projection(conn: asyncpg.Connection, source: str, target: str) -> None:
    """Replace ``target``'s projection tables with ``source``'s, in the caller's transaction."""
    for table in _PROJECTION_TABLES:
        await conn.execute(f"LOCK TABLE {target}.{table} IN ACCESS EXCLUSIVE MODE")
    for table in _PROJECTION_TABLES:
        await conn.execute(f"TRUNCATE {target}.{table}")
        await conn.execute(f"INSERT INTO {target}.{table} SELECT * FROM {source}.{table}")
