"""A bare aiokafka consumer for hot projections: one poll, one ``Inbox`` transaction, then the offset commit.

A faust agent costs about 95 µs of CPU per event on its stream path; a plain ``getmany`` loop about 4 µs
(shared/BROKER.md). So a projection whose volume matters runs this loop instead of an agent: it joins a
consumer group, takes up to ``batch_size`` records per poll across its partitions, hands them to an
``Inbox`` (decode, claim ids, apply, dead-letter poison: one PostgreSQL transaction) and commits the
offsets only after that transaction has committed. A crash in between redelivers the batch, which the
inbox ignores.

While one batch is being applied the next poll is already fetched and decoded (``apply_in_order``), so the
Python work of one batch overlaps PostgreSQL's work on the previous one; batches still apply and commit
strictly in order. The overlap needs the event loop: the batch in flight sends its next statement only when the
loop runs, so the next batch is decoded a slice at a time (``prepare_paced``) and a ``plan`` hook should pace
itself the same way; without that, only the first statement of a batch would overlap anything.

Failures: a database outage retries the same batch until the database is back; a broker error (or any
other failure of the loop) closes the consumer and joins again after a pause, from the committed offsets;
a failed offset commit (a rebalance) is logged, and the records come back to whoever owns the partition
next. ``on_revoked`` lets the projection drop what it cached about partitions it may no longer own; it is also
called whenever the loop fails and joins again (leaving a group does not call the rebalance listener).
``stop()`` finishes the batch in hand, commits it and leaves the group; cancelling ``run`` rolls the batch
in hand back instead, and it comes again.

It runs as a ``Runtime.background`` job. A service whose only consumers are such loops has no faust agent,
and a faust app with no subscribed topic refuses to start, so ``run_service`` runs the ``Runtime`` under
mode's ``Worker`` (faust's own service runner: signals, graceful stop, logging) instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import mode
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from services.common.inbox import TRANSIENT, Inbox, Prepared, Record
from services.common.metrics import CONSUMER_LAG, HEALTH

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    bootstrap: str
    topic: str
    group_id: str
    client_id: str
    batch_size: int = 2000
    poll_timeout_ms: int = 200
    # how long the broker may hold a fetch that has no new records (aiokafka's fetch_max_wait_ms; its default 500).
    # The local broker answers such a fetch only when this has passed, so a hop costs about half of it; an idle
    # consumer sends one fetch per wait (docs/benchmarks.md).
    fetch_wait_ms: int = 500
    session_timeout_ms: int = 10_000
    retry_pause_s: float = 1.0


Polled = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


def require_ready(topic: str) -> str:
    """Make /readyz wait for this topic's consumer (it reports ready once it has joined); returns the check's name.
    A worker calls it when it is built, so that it is not ready before the background job has started the loop."""
    name = f"consumer {topic}"
    HEALTH.require(name)
    return name


def to_records(polled: Polled) -> list[Record]:
    new = tuple.__new__  # what Record(...) does, without its Python-level __new__ per record
    return [
        new(Record, (r.topic, r.partition, r.offset, r.key, r.value or b"", tuple(r.headers) if r.headers else ()))
        for records in polled.values()
        for r in records
    ]


def next_offsets(polled: Polled) -> dict[TopicPartition, int]:
    return {tp: records[-1].offset + 1 for tp, records in polled.items() if records}


Plan = Callable[[Prepared[Any]], Awaitable[None]]
PACE = 500  # records decoded between two turns of the event loop


async def prepare_paced(inbox: Inbox[Any], records: Sequence[Record]) -> Prepared[Any]:
    """``inbox.prepare(records)``, a slice at a time, letting the event loop run in between: the batch in flight
    sends its next statement meanwhile instead of waiting for the whole batch to be decoded."""
    if len(records) <= PACE:
        return inbox.prepare(records)
    good: list[Any] = []
    poison: list[Any] = []
    for start in range(0, len(records), PACE):
        part = inbox.prepare(records[start : start + PACE])
        good += part.good
        poison += part.poison
        await asyncio.sleep(0)
    return Prepared(records, good, poison)


async def counted(
    batches: AsyncIterable[list[Record]], progress: Callable[[int], None] | None = None
) -> AsyncIterator[tuple[list[Record], None]]:
    """A log's batches for ``apply_in_order`` (no tag), each one's size reported to ``progress``: a rebuild's feed."""
    async for batch in batches:
        if progress is not None:
            progress(len(batch))
        yield batch, None


async def apply_in_order(
    inbox: Inbox[Any],
    batches: AsyncIterable[tuple[Sequence[Record], T]],
    applied: Callable[[T], Awaitable[None]] | None = None,
    retry_pause_s: float = 1.0,
    plan: Plan | None = None,
) -> int:
    """Apply each batch through ``inbox``, in order, decoding the next while the previous one applies.

    ``plan(prepared)``, if given, runs on each decoded batch before it waits for its turn: a projection may work
    out ahead what the batch will write (its handler must check the plan still holds when the batch applies).
    ``applied(tag)`` runs after each batch has committed (to commit its offsets, say). A database outage
    retries the batch until the database is back. Returns how many records were applied.
    """
    count = 0
    in_flight: asyncio.Future[None] | None = None

    async def apply(prepared: Any, tag: T) -> None:
        while True:
            try:
                await inbox.apply(prepared)
                break
            except TRANSIENT as exc:
                log.warning("database unavailable; retrying the batch", extra={"error": repr(exc)})
                await asyncio.sleep(retry_pause_s)
        if applied is not None:
            await applied(tag)

    try:
        async for records, tag in batches:
            prepared = await prepare_paced(inbox, records)
            if plan is not None:
                await plan(prepared)
            if in_flight is not None:
                await in_flight
            in_flight = asyncio.ensure_future(apply(prepared, tag))
            await asyncio.sleep(0)  # let it send its first statement before the next batch's Python work
            count += len(records)
        if in_flight is not None:
            await in_flight
            in_flight = None
    finally:
        if in_flight is not None and not in_flight.done():
            in_flight.cancel()
            with contextlib.suppress(BaseException):
                await in_flight
    return count


class _Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_revoked: Callable[[], None] | None) -> None:
        self.on_revoked = on_revoked

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked and self.on_revoked is not None:
            self.on_revoked()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


class BatchConsumer:
    def __init__(
        self,
        config: ConsumerConfig,
        inbox: Inbox[Any],
        *,
        on_revoked: Callable[[], None] | None = None,
        plan: Plan | None = None,
    ) -> None:
        self.config = config
        self.inbox = inbox
        self.on_revoked = on_revoked
        self.plan = plan
        self.applied = 0  # records applied (and offsets committed, or tried) since start
        self._stopping = asyncio.Event()
        self._ready_flag = require_ready(config.topic)
        self._positions: dict[TopicPartition, int] = {}

    def stop(self) -> None:
        """Finish the batch in hand, commit its offsets and leave the group."""
        self._stopping.set()

    async def run(self) -> None:
        """Consume until ``stop()`` or cancellation, joining again after failures."""
        while not self._stopping.is_set():
            consumer = self._new_consumer()
            try:
                await consumer.start()
                consumer.subscribe([self.config.topic], listener=_Revocations(self.on_revoked))
                HEALTH.mark(self._ready_flag, True)
                await apply_in_order(
                    self.inbox, self._polls(consumer), self._committer(consumer), self.config.retry_pause_s, self.plan
                )
            except KafkaError as exc:
                log.warning("consumer failed; joining again", extra={"topic": self.config.topic, "error": repr(exc)})
                await self._pause()
            except Exception:
                log.exception("batch loop failed; joining again", extra={"topic": self.config.topic})
                await self._pause()
            finally:
                HEALTH.mark(self._ready_flag, False)
                with contextlib.suppress(Exception):
                    await consumer.stop()
                if self.on_revoked is not None:
                    # leaving the group does not call the listener, yet what the projection cached may rest on a
                    # batch that never committed (the one in flight is rolled back): it must not survive a rejoin
                    self.on_revoked()

    def _new_consumer(self) -> AIOKafkaConsumer:
        c = self.config
        return AIOKafkaConsumer(
            bootstrap_servers=c.bootstrap,
            group_id=c.group_id,
            client_id=c.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=c.session_timeout_ms,
            heartbeat_interval_ms=max(300, c.session_timeout_ms // 3),
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_wait_ms=c.fetch_wait_ms,
        )

    async def _polls(self, consumer: AIOKafkaConsumer) -> Any:
        while not self._stopping.is_set():
            polled = await consumer.getmany(timeout_ms=self.config.poll_timeout_ms, max_records=self.config.batch_size)
            if polled:
                records = to_records(polled)
                yield records, (next_offsets(polled), len(records))

    def _committer(
        self, consumer: AIOKafkaConsumer
    ) -> Callable[[tuple[dict[TopicPartition, int], int]], Awaitable[None]]:
        async def commit(tag: tuple[dict[TopicPartition, int], int]) -> None:
            offsets, count = tag
            self.applied += count
            self._note_lag(consumer, offsets)
            try:
                await consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError, KafkaError) as exc:
                log.warning("offset commit failed; the batch may come again, harmlessly", extra={"error": repr(exc)})

        return commit

    def _note_lag(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        """Events behind, from the high watermarks seen in fetch responses (not ListOffsets: shared/BROKER.md)."""
        self._positions.update(offsets)
        behind = 0
        for tp, position in self._positions.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                behind += max(0, highwater - position)
        CONSUMER_LAG.labels(self.inbox.service, self.config.topic).set(behind)

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.config.retry_pause_s)


def run_service(service: mode.Service, loglevel: str = "INFO") -> None:
    """Run ``service`` (a ``Runtime`` with its background jobs) until SIGTERM or SIGINT, then stop it gracefully."""
    mode.Worker(service, loglevel=loglevel.lower(), quiet=True, override_logging=False).execute_from_commandline()
