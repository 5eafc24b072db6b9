"""The consumer edge: a batch of case events into scoring's tables, in the inbox's transaction.

Exactly once by stream version, not by a claim per event id (the inbox runs with ``claim=False``): a case's
events come in stream order on one partition, each case's row in ``case_facts`` holds the version it is applied
up to (events of every kind), in the same transaction as the figures, and the projection skips what is at or
below it. So a redelivery, a refill of the broker and a rebuild apply nothing twice. Every write of a case's row
checks the version it was read at, so two writers can never lose each other's update, and a cache that ran
ahead of the database (a plan whose batch rolled back) shows up as a conflict, never as events skipped.

Facts of cases seen recently are kept in memory with what they contribute, so a batch reads only the others.
With a pool, the projector also *plans* each batch while the previous one is being written
(``apply_in_order``'s ``plan`` hook): it works out the batch's change on top of the batches planned before it
and builds its statements ahead, so the transaction only runs them. A plan is used only if the batch arrives
exactly as planned (every event fresh) and every case is still at the version the plan read; otherwise the
cache and every plan are dropped and the batch is worked out again inside its transaction, from the database.
A plan works a batch out a slice of cases at a time and lets the event loop run in between, so the batch being
written sends its statements meanwhile; what it took from the cache goes back only if the cache was not dropped
in between.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import asyncpg

from services.common.inbox import Decoded, Prepared
from services.scoring.adapters.store import ConcurrentUpdate, ScoringStore, Writes
from services.scoring.domain.events import ScoredEvent
from services.scoring.domain.facts import CaseFacts
from services.scoring.domain.figures import Contributions, contributions
from services.scoring.domain.projection import Change, apply_grouped, by_case

ATTEMPTS = 3
PACE = 1000  # events worked out between two turns of the event loop, when planning
log = logging.getLogger(__name__)


class FactsCache:
    """The latest facts of recently seen cases, with what they contribute; least recently used go first."""

    def __init__(self, max_cases: int) -> None:
        self.max_cases = max_cases
        self.clears = 0  # how many times it was cleared: what was taken before a clear must not come back
        self._entries: OrderedDict[str, tuple[CaseFacts, Contributions]] = OrderedDict()

    def take(self, case_ids: Iterable[str]) -> tuple[dict[str, CaseFacts], dict[str, Contributions]]:
        """Hand the entries over (they leave the cache): the batch changes them in place and ``put`` brings
        them back. A batch that fails leaves them out: they are read again when next needed."""
        facts, contributed = {}, {}
        for case_id in case_ids:
            entry = self._entries.pop(case_id, None)
            if entry is not None:
                facts[case_id], contributed[case_id] = entry
        return facts, contributed

    def put(self, change: Change) -> None:
        self.put_back(change.facts, change.contributions)

    def put_back(self, facts: dict[str, CaseFacts], contributed: dict[str, Contributions]) -> None:
        for case_id, case_facts in facts.items():
            self._entries[case_id] = (case_facts, contributed[case_id])
        while len(self._entries) > self.max_cases:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self.clears += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def case_slices(events: list[ScoredEvent], size: int) -> Iterator[list[ScoredEvent]]:
    """The events in slices of about ``size``, every case's events in one slice."""
    for part in grouped_slices(by_case(events), size):
        yield [event for case_events in part.values() for event in case_events]


def grouped_slices(grouped: dict[str, list[ScoredEvent]], size: int) -> Iterator[dict[str, list[ScoredEvent]]]:
    """Events grouped by case (``by_case``) in parts of about ``size`` events, every case's events in one part."""
    part: dict[str, list[ScoredEvent]] = {}
    n = 0
    for case_id, case_events in grouped.items():
        part[case_id] = case_events
        n += len(case_events)
        if n >= size:
            yield part
            part, n = {}, 0
    if part:
        yield part


async def work_out(
    store: ScoringStore,
    cache: FactsCache | None,
    events: list[ScoredEvent],
    use_cache: bool = True,
    paced: bool = False,
) -> Change:
    """The batch's change: facts from the cache, the rest read (a case filed in this batch needs no read).

    ``paced``: work it out a slice of cases at a time, letting the event loop run in between, so that the batch
    being written meanwhile sends its next statement instead of waiting for the whole batch's Python work.
    The events are grouped by case once (``by_case``), for the reads and the fold alike.
    """
    grouped = by_case(events)  # every kind moves its case's applied version
    known: dict[str, CaseFacts] = {}
    versions: dict[str, int] = {}
    contributed: dict[str, Contributions] = {}
    clears = cache.clears if cache is not None else 0
    if use_cache and cache is not None:
        known, contributed = cache.take(grouped)
        missing = [c for c, case_events in grouped.items() if case_events[0].version != 1 and c not in known]
    else:
        missing = list(grouped)
    if missing:
        loaded, versions = await store.load_facts(missing)
        known |= loaded
    if paced and len(events) > PACE:
        change = Change()
        for part in grouped_slices(grouped, PACE):
            change.add(apply_grouped(known, part, known_contributions=contributed, known_versions=versions, owned=True))
            await asyncio.sleep(0)
    else:
        change = apply_grouped(known, grouped, known_contributions=contributed, known_versions=versions, owned=True)
    if cache is not None and use_cache and cache.clears == clears:  # what was taken and did not change goes back
        unchanged = {case_id: facts for case_id, facts in known.items() if case_id not in change.facts}
        cache.put_back(unchanged, {c: contributed.get(c) or contributions(f) for c, f in unchanged.items()})
    return change


@dataclass(frozen=True, slots=True)
class _Plan:
    generation: int
    good: list[Decoded[ScoredEvent]]
    writes: Writes


def _same(planned: list[Decoded[ScoredEvent]], batch: list[Decoded[ScoredEvent]]) -> bool:
    if planned is batch:  # the inbox hands the prepared list itself on when nothing was claimed or dropped
        return True
    return len(planned) == len(batch) and all(a is b for a, b in zip(planned, batch, strict=True))


class CaseEventProjector:
    """The inbox handler of ``rectify.case.events`` (and, with a pool, its planner)."""

    def __init__(self, cache: FactsCache | None = None, pool: asyncpg.Pool | None = None) -> None:
        self.cache = cache
        self.pool = pool
        self.generation = 0
        self.planned = 0  # batches written as planned
        self.worked_out = 0  # batches worked out in their transaction
        self._plans: deque[_Plan] = deque()

    def forget(self) -> None:
        """After a rebalance or a batch that did not go as planned: drop the cache and every plan."""
        self.generation += 1
        self._plans.clear()
        if self.cache is not None:
            self.cache.clear()

    async def plan(self, prepared: Prepared[ScoredEvent]) -> None:
        """Work out a batch ahead of its turn, on top of the batches planned before it."""
        if self.pool is None or self.cache is None or not prepared.good:
            return
        generation = self.generation
        try:
            async with self.pool.acquire() as conn:
                change = await work_out(ScoringStore(conn), self.cache, [d.message for d in prepared.good], paced=True)
        except Exception:  # e.g. an event scoring cannot place: the batch is worked out (and dead-lettered) in turn
            log.warning("could not plan a batch; it will be worked out in its transaction", exc_info=True)
            self.forget()
            return
        if generation != self.generation:
            return  # something went otherwise meanwhile: this plan may rest on it
        self.cache.put(change)
        await asyncio.sleep(0)
        self._plans.append(_Plan(generation, prepared.good, Writes.of(change)))

    async def __call__(self, conn: asyncpg.Connection, batch: list[Decoded[ScoredEvent]]) -> Callable[[], None] | None:
        plan = self._plans.popleft() if self._plans else None
        if plan is not None and plan.generation == self.generation and _same(plan.good, batch):
            try:  # a stale plan writes nothing (the write is one statement that undoes itself): no savepoint
                await ScoringStore(conn).write(plan.writes)
                self.planned += 1
                return None
            except ConcurrentUpdate:
                pass
        if self.pool is not None:
            self.forget()  # the cache may hold what later plans expect: only the database can be trusted now
        change = await self._work_out_and_write(conn, [d.message for d in batch])
        self.worked_out += 1
        cache = self.cache
        return None if cache is None else (lambda: cache.put(change))

    async def _work_out_and_write(self, conn: asyncpg.Connection, events: list[ScoredEvent]) -> Change:
        store = ScoringStore(conn)
        use_cache = self.cache is not None
        for attempt in range(ATTEMPTS):
            change = await work_out(store, self.cache, events, use_cache)
            try:  # a conflict writes nothing (see ScoringStore.write): the next attempt starts from the same state
                await store.write(change)
                return change
            except ConcurrentUpdate:
                if attempt == ATTEMPTS - 1:
                    raise
                use_cache = False
                self.forget()
        raise AssertionError("unreachable")
