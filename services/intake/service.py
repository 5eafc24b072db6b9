"""Intake's service layer: accepting submissions durably, many requests to one commit.

Every way in (HTTP, Open311, the Kafka ingestion topic, bulk import) hands a ``Submit`` to the
``Submitter``. Its writers take whatever submissions are waiting and store them in ONE transaction
(group commit): the submissions, sealed complainant data, case access and the commands' outbox rows,
all in one SQL statement, so one round trip carries the batch and its commit (the case numbers of new
complaints are drawn just before). Each caller's future resolves only after that transaction has
committed, so an answer of success always means the submission is durable. Under light load a batch
is a single submission, and no time is spent waiting to fill one.

Idempotency: a submission with an agency's Idempotency-Key that was seen before (in an earlier batch,
in the same batch, or by another intake process at the same moment) gets the earlier submission, or
``IdempotencyConflict`` when its body differs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from services.common.contracts import Command, CommandEnvelope, FileComplaint
from services.common.metrics import SUBMISSIONS_PER_COMMIT
from services.common.outbox import OutgoingMessage
from services.common.topics import COMMANDS
from services.intake.adapters import repository as repo
from services.intake.adapters.repository import Agency, Submission
from services.intake.adapters.vault import Contact, Vault
from services.intake.domain import case_numbers
from services.intake.randomness import random_bytes

log = logging.getLogger(__name__)
CASE_NUMBER_BLOCK = 256  # case numbers reserved per round trip to the sequence


class IdempotencyConflict(Exception):
    """The agency used this Idempotency-Key before, with a different body."""


@dataclass(frozen=True)
class Submit:
    who: Agency
    idempotency_key: str | None
    digest: bytes  # fingerprint of the request body, bound to the idempotency key
    command: Callable[[str], Command]  # the command, given the case id (a new one for a filing)
    case_id: str | None = None  # None: a new complaint, numbered here
    contact: Contact | None = None  # a filing's complainant, sealed in the vault
    complainant_ref: str | None = None
    future: asyncio.Future[Submission] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Submitter:
    def __init__(
        self, pool: asyncpg.Pool, vault: Vault, clock: Callable[[], datetime], *, writers: int = 2, max_batch: int = 256
    ) -> None:
        self.pool = pool
        self.vault = vault
        self.clock = clock
        self.max_batch = max_batch
        self.writers = writers
        self._queue: asyncio.Queue[Submit] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._spare_seqs: collections.deque[int] = collections.deque()  # case numbers reserved, not yet used
        self.commits = 0

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._write_forever(), name=f"intake-writer-{i}") for i in range(self.writers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def submit(self, request: Submit) -> Submission:
        """Durably stored (or the earlier submission with the same key); raises IdempotencyConflict."""
        self._queue.put_nowait(request)  # unbounded: never waits
        return await request.future

    async def _write_forever(self) -> None:
        held = _HeldConnection(self.pool)
        try:
            while True:
                batch = [await self._queue.get()]
                while len(batch) < self.max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                await self._write_or_isolate(batch, held)
        finally:
            await held.release()

    async def _write_or_isolate(self, batch: list[Submit], held: _HeldConnection) -> None:
        """A failed batch did not commit, so nobody was told success; retry alone so one bad item fails alone."""
        try:
            await self.write(batch, held)
        except Exception as exc:
            if len(batch) > 1:
                for item in batch:
                    if not item.future.done():
                        await self._write_or_isolate([item], held)
                return
            log.exception("submission failed")
            if not batch[0].future.done():
                batch[0].future.set_exception(exc)

    async def write(self, batch: list[Submit], held: _HeldConnection | None = None) -> None:
        """Store a batch in one statement (its own transaction, one commit), then resolve every caller's future.
        A writer passes the connection it keeps between batches; without one, a connection comes from the pool."""
        if held is None:
            held = _HeldConnection(self.pool)
            try:
                await self.write(batch, held)
            finally:
                await held.release()
            return
        now = self.clock()
        results: dict[int, Submission | Exception | _Same] = {}
        conn = await held.get()
        try:
            fresh = await self._resolve_replays(conn, batch, results)
            seqs = await self._case_seqs(conn, sum(1 for i in fresh if batch[i].case_id is None))
            new_ids = iter(case_numbers(now, seqs))  # in ascending order, to the filings in batch order
            planned: dict[int, repo.NewSubmission] = {}
            for i in fresh:
                item = batch[i]
                case_id = item.case_id or next(new_ids)
                planned[i] = self._plan(item, case_id, item.command(case_id), now)
            stored = await repo.store_submissions(conn, list(planned.values()))
        except BaseException:
            if held.closed():  # the database went away: the next batch takes a fresh connection
                await held.release()
            raise
        lost = [i for i, p in planned.items() if p.submission.submission_id not in stored]
        for i, p in planned.items():
            if i not in lost:
                results[i] = p.submission
        self.commits += 1
        SUBMISSIONS_PER_COMMIT.observe(len(batch))
        for i in lost:  # another process stored the same key a moment ago: answer as it did
            results[i] = await self._replay(self.pool, batch[i])
        for i, result in list(results.items()):
            if isinstance(result, _Same):
                first = results[result.index]
                conflict = isinstance(first, Submission) and first.request_hash != result.digest
                results[i] = IdempotencyConflict() if conflict else first
        for i, item in enumerate(batch):
            result = results[i]
            assert not isinstance(result, _Same)
            if isinstance(result, Exception):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    async def _case_seqs(self, conn: asyncpg.Connection, n: int) -> list[int]:
        """n new case numbers, ascending, from a block this process reserved from the database sequence (one round
        trip per CASE_NUMBER_BLOCK filings, not per batch). Unique across processes and restarts; the numbers left
        in a block when the process stops are never used (gaps), and processes number from their own blocks."""
        while len(self._spare_seqs) < n:  # again after each draw: the other writer may have taken some meanwhile
            drawn = await repo.next_case_seqs(conn, max(n, CASE_NUMBER_BLOCK) - len(self._spare_seqs))
            self._spare_seqs.extend(drawn)
        return [self._spare_seqs.popleft() for _ in range(n)]

    def _plan(self, item: Submit, case_id: str, command: Command, now: datetime) -> repo.NewSubmission:
        """The submission's rows: itself, its command in the outbox, a filing's case access and sealed contact."""
        submission = Submission(
            submission_id=uuid.UUID(bytes=random_bytes(16), version=4),  # as uuid4(), from the buffered CSPRNG
            agency_id=item.who.agency_id,
            idempotency_key=item.idempotency_key,
            request_hash=item.digest,
            command_type=command.message_type,
            case_id=case_id,
            status="received",
            code=None,
            reason=None,
            case_version=None,
            received_at=now,
            decided_at=None,
            complainant_ref=item.complainant_ref,
        )
        envelope = CommandEnvelope(
            command_id=submission.submission_id,
            command_type=command.message_type,
            schema_version=command.schema_version,
            case_id=case_id,
            issued_at=now,
            actor=item.who.actor,
            correlation_id=submission.submission_id,
            payload=command,
        )
        sealed = None
        if item.contact is not None and item.complainant_ref is not None:
            sealed = self.vault.seal(item.complainant_ref, item.contact)
        return repo.NewSubmission(
            submission=submission,
            outbox=OutgoingMessage.command(COMMANDS, envelope),
            files_case=item.case_id is None,
            category=command.category if isinstance(command, FileComplaint) else None,
            sealed=sealed,
        )

    async def _resolve_replays(
        self, conn: asyncpg.Connection, batch: list[Submit], results: dict[int, Submission | Exception | _Same]
    ) -> list[int]:
        """Indexes of the submissions to store now; the others are answered from an earlier one."""
        keyed = [(i, s) for i, s in enumerate(batch) if s.idempotency_key is not None]
        earlier = await repo.submissions_by_keys(conn, [(s.who.agency_id, s.idempotency_key) for _, s in keyed])  # type: ignore[misc]
        first_in_batch: dict[tuple[str, str], int] = {}
        fresh: list[int] = []
        for i, item in enumerate(batch):
            if item.idempotency_key is None:
                fresh.append(i)
                continue
            key = (item.who.agency_id, item.idempotency_key)
            previous = earlier.get(key)
            if previous is not None:
                results[i] = previous if previous.request_hash == item.digest else IdempotencyConflict()
            elif key in first_in_batch:
                results[i] = _Same(first_in_batch[key], item.digest)
            else:
                first_in_batch[key] = i
                fresh.append(i)
        return fresh

    async def _replay(self, conn: asyncpg.Pool, item: Submit) -> Submission | Exception:
        assert item.idempotency_key is not None
        previous = await repo.get_submission_by_key(conn, item.who.agency_id, item.idempotency_key)
        if previous is None:
            return RuntimeError("idempotent submission vanished")
        return previous if previous.request_hash == item.digest else IdempotencyConflict()


@dataclass(frozen=True)
class _Same:
    """A second submission with the same key in the same batch: answered by the first one's result."""

    index: int
    digest: bytes


class _HeldConnection:
    """A writer's connection, kept from one batch to the next (no pool acquire and release per commit); taken
    again from the pool after the database closed it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._conn: asyncpg.Connection | None = None

    async def get(self) -> asyncpg.Connection:
        if self._conn is not None and self.closed():  # closed while idle (a restart, an operator)
            await self.release()
        if self._conn is None:
            self._conn = await self.pool.acquire()
        return self._conn

    def closed(self) -> bool:
        try:
            return self._conn is not None and self._conn.is_closed()
        except asyncpg.InterfaceError:  # the pool took the connection back when it closed
            return True

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await self.pool.release(conn)
            except BaseException:
                conn.terminate()
                raise
