"""The idempotent consumer: one PostgreSQL transaction per polled batch.

A batch is decoded; messages that cannot be decoded (bad JSON, unknown type or version,
invalid fields, oversized) are poison and go to the dead-letter topic through the outbox,
counted. The rest are deduplicated against ``processed_messages`` and applied by the
service's handler in the same transaction, so a redelivered message changes nothing and a
crash between commit and the Kafka offset commit is harmless.

A handler error on a batch is retried record by record; a record that still fails is
dead-lettered, so one bad message never stops its partition. Connection errors are not the
message's fault: they propagate and the batch is redelivered.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Generic, NamedTuple, TypeVar

import asyncpg
import orjson

from services.common.contracts import ContractError
from services.common.logs import bound
from services.common.metrics import (
    CONSUMER_LAST_BATCH,
    DEAD_LETTERS,
    DUPLICATES_SKIPPED,
    HANDLER_ERRORS,
    HANDLER_SECONDS,
    MESSAGES_CONSUMED,
)
from services.common.topics import CASE_EVENTS, COMMANDS, OUTCOMES, PUBLIC_CASES
from services.common.topics import DEAD_LETTERS as DLQ_TOPIC

log = logging.getLogger(__name__)

M = TypeVar("M")
TRANSIENT = (  # the database is away, not the message bad: retry the batch, never dead-letter for these
    OSError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.exceptions.AdminShutdownError,  # 57P01: a fast or immediate shutdown, pg_terminate_backend
    asyncpg.exceptions.CrashShutdownError,  # 57P02
    asyncpg.CannotConnectNowError,  # 57P03: starting up or in recovery
)


class Record(NamedTuple):  # one per polled message: a tuple builds ~3x faster than a frozen dataclass
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()  # the Kafka headers, for consumers that read them


_VALUE = itemgetter(4)  # Record.value


class Decoded(NamedTuple, Generic[M]):  # one per message on hot paths: a tuple builds faster than a frozen dataclass
    record: Record
    message: M


@dataclass(frozen=True, slots=True)
class Prepared(Generic[M]):
    """A polled batch, decoded and split, ready for ``Inbox.apply``."""

    records: Sequence[Record]
    good: list[Decoded[M]]
    poison: list[tuple[Record, str, str]]


# A handler applies fresh messages on the inbox's connection, inside its transaction. It may return a
# callback to run once that transaction has committed (to update an in-memory cache, say).
Handler = Callable[[asyncpg.Connection, list[Decoded[M]]], Awaitable[Callable[[], None] | None]]


class Inbox(Generic[M]):
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        service: str,
        decode: Callable[[bytes], M],
        message_id: Callable[[M], uuid.UUID],
        handle: Handler[M],
        max_message_bytes: int = 1024 * 1024,
        optimistic_claim: bool = False,
        claim: bool = True,
    ) -> None:
        self.pool = pool
        self.service = service
        self.decode = decode
        self.message_id = message_id
        self.handle = handle
        self.max_message_bytes = max_message_bytes
        # True: claim a batch without RETURNING (inside a savepoint) and only when some id was claimed before, claim
        # it again learning which. For hot consumers, where redeliveries are rare and reading back every id is not.
        self.optimistic_claim = optimistic_claim
        # False: no claim in processed_messages; every decoded message goes to the handler, which must deduplicate
        # by itself, in the same transaction (scoring: by each case's applied stream version, docs/scoring.md).
        self.claim = claim

    def _split(self, records: Sequence[Record]) -> tuple[list[Decoded[M]], list[tuple[Record, str, str]]]:
        # The usual batch, nothing oversized and nothing poison: decoded and paired by C-level maps, without a
        # Python-level turn per message. Any refusal sends the whole batch through the loop below, which gives
        # every message its verdict (decoding is pure, so decoding a message twice changes nothing).
        values = list(map(_VALUE, records))
        if max(map(len, values), default=0) <= self.max_message_bytes:
            try:
                messages = list(map(self.decode, values))
            except ContractError:
                pass
            else:
                return list(map(tuple.__new__, repeat(Decoded), zip(records, messages, strict=True))), []
        good: list[Decoded[M]] = []
        poison: list[tuple[Record, str, str]] = []
        new = tuple.__new__  # what Decoded(...) does, without its Python-level __new__ per message
        for record in records:
            if len(record.value) > self.max_message_bytes:
                poison.append((record, "oversized", f"{len(record.value)} bytes > {self.max_message_bytes}"))
                continue
            try:
                good.append(new(Decoded, (record, self.decode(record.value))))
            except ContractError as exc:
                poison.append((record, exc.code, exc.reason))
        return good, poison

    async def process(self, records: Sequence[Record]) -> None:
        if not records:
            return
        await self.apply(self.prepare(records))

    def prepare(self, records: Sequence[Record]) -> Prepared[M]:
        """Decode and split a batch; no I/O, so a consumer may prepare the next batch while one applies."""
        good, poison = self._split(records)
        return Prepared(records, good, poison)

    async def apply(self, prepared: Prepared[M]) -> None:
        """Apply a prepared batch in one transaction (what ``process`` does after decoding)."""
        records, good, poison = prepared.records, prepared.good, prepared.poison
        if not records:
            return
        topic = records[0].topic
        started = time.perf_counter()
        with bound(**batch_ids(good)):
            try:
                await self._apply(good, poison)
            except TRANSIENT:
                raise
            except Exception:
                HANDLER_ERRORS.labels(self.service, topic).inc()
                log.exception("batch failed; retrying record by record", extra={"topic": topic, "size": len(records)})
                await self._apply_one_by_one(good, poison)
        HANDLER_SECONDS.labels(self.service, topic).observe(time.perf_counter() - started)
        MESSAGES_CONSUMED.labels(self.service, topic).inc(len(records))
        CONSUMER_LAST_BATCH.labels(self.service, topic).set(time.time())

    async def _apply_one_by_one(self, good: list[Decoded[M]], poison: list[tuple[Record, str, str]]) -> None:
        await self._apply([], poison)
        for item in good:
            try:
                await self._apply([item], [])
            except TRANSIENT:
                raise
            except Exception as exc:
                log.exception("message failed; dead-lettering it", extra={"offset": item.record.offset})
                await self._apply([], [(item.record, "handler_error", f"{type(exc).__name__}: {exc}"[:500])])

    async def _apply(self, good: list[Decoded[M]], poison: list[tuple[Record, str, str]]) -> None:
        committed = None
        async with self.pool.acquire() as conn, conn.transaction():
            fresh = await self._claim(conn, good)
            if fresh:
                committed = await self.handle(conn, fresh)
            if poison:
                await self._dead_letter(conn, poison)
        if committed is not None:
            committed()

    async def _claim(self, conn: asyncpg.Connection, good: list[Decoded[M]]) -> list[Decoded[M]]:
        if not good or not self.claim:
            return good
        ids = [self.message_id(d.message) for d in good]
        topics = [d.record.topic for d in good]
        if self.optimistic_claim:
            topic = topics[0]
            savepoint = conn.transaction()
            await savepoint.start()
            if topics.count(topic) == len(topics):  # one topic: sent once, not once per message
                status = await conn.execute(_CLAIM_ONE_TOPIC, ids, topic)
            else:
                status = await conn.execute(_CLAIM, ids, topics)
            if int(status.rsplit(" ", 1)[-1]) == len(ids):
                await savepoint.commit()
                return good  # every id new (and none twice in the batch)
            await savepoint.rollback()
        rows = await conn.fetch(_CLAIM + " RETURNING message_id", ids, topics)
        claimed = {r["message_id"] for r in rows}
        fresh: list[Decoded[M]] = []
        for mid, item in zip(ids, good, strict=True):
            if mid in claimed:
                claimed.discard(mid)  # a duplicate inside the same batch is skipped too
                fresh.append(item)
        skipped = len(good) - len(fresh)
        if skipped:
            DUPLICATES_SKIPPED.labels(self.service, good[0].record.topic).inc(skipped)
        return fresh

    async def _dead_letter(self, conn: asyncpg.Connection, poison: list[tuple[Record, str, str]]) -> None:
        await dead_letter(conn, self.service, poison)


_CLAIM = (
    "INSERT INTO processed_messages (message_id, topic) SELECT * FROM unnest($1::uuid[], $2::text[]) "
    "ON CONFLICT DO NOTHING"
)
_CLAIM_ONE_TOPIC = (
    "INSERT INTO processed_messages (message_id, topic) SELECT m, $2::text FROM unnest($1::uuid[]) AS m "
    "ON CONFLICT DO NOTHING"
)
CASE_KEYED = frozenset(t.name for t in (COMMANDS, CASE_EVENTS, OUTCOMES, PUBLIC_CASES))


def batch_ids(good: Sequence[Decoded[M]]) -> dict[str, str | None]:
    """The correlation and case ids a batch's log lines carry, when the whole batch shares them (else none).

    Each stops looking at its second distinct value (a batch of many cases: at its second record)."""
    ids: dict[str, str | None] = {}
    correlation: object = None
    for d in good:
        c = getattr(d.message, "correlation_id", None)
        if c is not None:
            if correlation is None:
                correlation = c
            elif c != correlation and str(c) != str(correlation):
                correlation = None
                break
    if correlation is not None:
        ids["correlation_id"] = str(correlation)
    case: bytes | None = None
    for d in good:
        key, topic = d.record.key, d.record.topic
        if key and topic in CASE_KEYED:
            if case is None:
                case = key
            elif key != case:
                return ids
    if case is not None:
        ids["case_id"] = case.decode(errors="replace")
    return ids


async def dead_letter(conn: asyncpg.Connection, service: str, poison: list[tuple[Record, str, str]]) -> None:
    """Send (record, code, reason) triples to the dead-letter topic through the outbox, in the caller's transaction."""
    for r, code, reason in poison:
        new = await conn.fetchval(
            "INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, key, value, code, reason, value_sha256) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, sha256($5)) "
            "ON CONFLICT ON CONSTRAINT dead_letters_identity DO NOTHING RETURNING id",
            r.topic,
            r.partition,
            r.offset,
            r.key.decode(errors="replace") if r.key else None,
            r.value,
            code,
            reason,
        )
        if new is None:
            continue  # this very record was dead-lettered before its offset was committed
        headers = {
            "x-source-topic": r.topic,
            "x-source-partition": r.partition,
            "x-source-offset": r.offset,
            "x-error-code": code,
            "x-error-reason": reason,
            "x-consumer": service,
        }
        await conn.execute(
            "INSERT INTO outbox (topic, key, value, headers) VALUES ($1, $2, $3, $4)",
            DLQ_TOPIC.name,
            r.topic,
            r.value[: 1024 * 1024 - 4096],
            orjson.dumps(headers).decode(),
        )
        DEAD_LETTERS.labels(service, r.topic, code).inc()
        log.warning("dead-lettered a message", extra={"topic": r.topic, "offset": r.offset, "code": code})
