"""Case commands per second on a durable PostgreSQL: Rectify's hot path against the ``eventsourcing`` library.

    .venv/bin/python -m bench.commands [--cases N] [--quick] [--batch 2000]

One throwaway PostgreSQL is started with ``infra/stack.py`` in durable mode (fsync, synchronous_commit and
full_page_writes at PostgreSQL's defaults: on), with two fresh databases in it, one per system.

(a) Rectify: exactly what the rectification worker does with each polled batch. Encoded ``CommandEnvelope``
    records go, a poll at a time (``--batch``; by default the worker's ``CONSUMER_BATCH_SIZE``, 2000, the most a
    worker's poll takes), through ``Inbox.process`` with the worker's real handler: decode, claim the message ids,
    load only what the hot ``StateCache`` lacks, decide, append with version checks, outbox rows (case event,
    public fact, outcome) and projections, one durable commit per poll.
    Measured with one worker and with two worker processes that split the cases, as two workers splitting the
    partitions of the commands topic would (one per core of the 2-core machine it was written on).
(b) The ``eventsourcing`` library with its PostgreSQL persistence (``pip install -e '.[bench]'``): an
    ``Aggregate`` ``Case`` with the equivalent commands and checks, each command as that library is used:
    retrieve the aggregate, call the method, save (one durable commit per command). Measured with 1 and with 4
    worker processes, each owning a share of the cases, on the same commands as (a): in ``--library-rounds`` runs
    (3) of a share of the cases each (every third case), which together apply the whole workload once.

Each setup's figure is the median of its rounds: one run moves by tens of percent on these virtual machines (a
rectify run lasts a few seconds and catches one moment; a library run of the whole workload, 30-40 s, swung
between 791 and 1,053/s on a quiet machine).

Each case gets six commands: FileComplaint (a channel), AssignCase (the supervisor), AcknowledgeCase, SubmitPlan
and SubmitRectification (the assigned unit), AcceptRectification (the supervisor), at plausible times: office
hours, before the deadlines the policy and the calendar give. All commands are sorted by time, so a poll
interleaves many cases, as a partition would. Every run is timed from the moment all its workers are ready
to the moment the last one has committed, then its store is counted: every command applied exactly once, no
refusal, no dead letter, every case at version six, or the benchmark fails rather than print a figure.

Each side is compared in its best deployment measured: the last line printed is ``rectify X commands/s (best
of 1 and 2 workers; 1 worker Z), eventsourcing Y commands/s (best of 1 and 4 workers), ratio R x (1 worker
Z/Y x) (goal >= 10x)``. Kafka is not in the loop; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import multiprocessing as mp
import os
import platform
import queue
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from multiprocessing.queues import Queue as MpQueue
from multiprocessing.sharedctypes import SynchronizedArray
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.results import Figure, record
from services.cli.local import stack_module
from services.common.contracts import (
    AcceptRectification,
    AcknowledgeCase,
    Actor,
    AssignCase,
    Channel,
    Command,
    CommandEnvelope,
    FileComplaint,
    Role,
    Severity,
    SubmitPlan,
    SubmitRectification,
    decode_command,
    encode_command,
)
from services.common.db import create_pool, migrate
from services.common.inbox import Inbox, Record
from services.common.settings import Settings
from services.common.topics import COMMANDS, OUTCOMES
from services.common.worker import tune_gc
from services.rectification.domain.calendar import SHANGHAI, WorkCalendar, load_calendar, to_local
from services.rectification.domain.time_limits import TimeLimitPolicy, load_time_limits
from services.rectification.entrypoints.commands import command_handler
from services.rectification.service import StateCache
from services.rectification.simulation import PROBLEMS
from services.rectification.wiring import MIGRATIONS, SCHEMA, load_rules

try:
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event
except ImportError:  # pragma: no cover - the bench extra is not part of the default install
    sys.exit("bench.commands needs the eventsourcing library: .venv/bin/pip install -c constraints.txt -e '.[bench]'")

COMMANDS_PER_CASE = 6
FULL_CASES = 4000
QUICK_CASES = 600
RECTIFY_WORKERS = (1, 2)
LIBRARY_WORKERS = (1, 4)
GOAL = 10.0
WORKER_BATCH: int = Settings.model_fields["consumer_batch_size"].default  # the most records a worker poll takes
_NS = uuid.UUID("7d2c0c4e-51b7-4c1e-a0f4-3b8e2d6f9a11")

CHANNEL = Actor(agency_id="hotline-12345", role=Role.CHANNEL)
SUPERVISOR = Actor(agency_id="jiufengban", role=Role.SUPERVISOR)
SEVERITIES = ((Severity.GENERAL, 60), (Severity.COMPLEX, 20), (Severity.UTILITIES, 12), (Severity.URGENT, 8))
OFFICE_OPENS, OFFICE_CLOSES = dtime(8, 30), dtime(17, 30)
MINUTE = timedelta(minutes=1)

console = Console(width=None if sys.stdout.isatty() else 160)


# ---------------------------------------------------------------------------- the workload


def unit_actor(unit_id: str) -> Actor:
    return Actor(agency_id=f"unit-{unit_id}", role=Role.UNIT, unit_id=unit_id)


@dataclass(frozen=True, slots=True)
class _Planner:
    rng: random.Random
    calendar: WorkCalendar

    def office(self, moment: datetime) -> datetime:
        """``moment``, or the next office hour on a working day when it falls outside one."""
        local = to_local(moment)
        if self.calendar.is_workday(local.date()) and OFFICE_OPENS <= local.time() <= OFFICE_CLOSES:
            return local
        day = local.date()
        if not (self.calendar.is_workday(day) and local.time() < OFFICE_OPENS):
            day = self.calendar.next_workday(day)
        return datetime.combine(day, dtime(9, local.minute), tzinfo=SHANGHAI)

    def after(self, now: datetime, low_hours: float, high_hours: float) -> datetime:
        return max(self.office(now + timedelta(hours=self.rng.uniform(low_hours, high_hours))), now + MINUTE)

    def before(self, now: datetime, due: datetime, low: float, high: float) -> datetime:
        """A moment between ``now`` and ``due``: in office hours when they fit, else any hour (urgent tiers)."""
        if due <= now + MINUTE:
            return now + MINUTE
        moment = now + (due - now) * self.rng.uniform(low, high)
        in_office = self.office(moment)
        return max(in_office if in_office < due else moment, now + MINUTE)


def plan_commands(
    cases: int, *, seed: int, calendar: WorkCalendar, policy: TimeLimitPolicy, units: Sequence[str]
) -> list[CommandEnvelope]:
    """Six commands per case, filed over a month from 2025-03-03, all sorted by time as a partition would see them."""
    rng = random.Random(seed)
    planner = _Planner(rng, calendar)
    unit_ids = sorted(units)
    categories = sorted(policy.categories)
    opening = datetime.combine(date(2025, 3, 3), dtime(0), tzinfo=SHANGHAI)
    out: list[CommandEnvelope] = []
    for index in range(cases):
        case_id = f"BENCH-{seed}-{index + 1:06d}"
        unit = rng.choice(unit_ids)
        category = rng.choice(categories)
        severity = rng.choices([s for s, _ in SEVERITIES], [w for _, w in SEVERITIES])[0]
        filed_at = opening + timedelta(minutes=rng.randrange(30 * 24 * 60))
        assigned_at = planner.after(filed_at, 0.5, 20)
        due = policy.deadlines(assigned_at, category, severity, calendar)  # what the decider will set
        acked_at = planner.before(assigned_at, due.ack_due, 0.1, 0.7)
        planned_at = planner.before(acked_at, due.rectify_due, 0.05, 0.25)
        rectified_at = planner.before(planned_at, due.rectify_due, 0.4, 0.9)
        accepted_at = planner.after(rectified_at, 4, 48)
        unit_agency = unit_actor(unit)
        filing = FileComplaint(
            channel=rng.choice(tuple(Channel)),
            category=category,
            unit_id=unit,
            description=f"{PROBLEMS.get(category, '群众反映的作风问题')}（基准测试 {index + 1}）",
            severity=severity,
            complainant_ref=f"cp-{case_id}",
        )
        story: list[tuple[datetime, Actor, Command]] = [
            (filed_at, CHANNEL, filing),
            (assigned_at, SUPERVISOR, AssignCase(responsible_unit_id=unit, first_officer=f"{unit} 办公室主任")),
            (acked_at, unit_agency, AcknowledgeCase()),
            (planned_at, unit_agency, SubmitPlan(plan_summary="三日内完成整改，责任到人")),
            (rectified_at, unit_agency, SubmitRectification(report="已整改到位", evidence_refs=(f"ev-{case_id}",))),
            (accepted_at, SUPERVISOR, AcceptRectification(note="验收合格")),
        ]
        correlation = uuid.uuid5(_NS, f"{seed}:{case_id}")
        for n, (at, actor, command) in enumerate(story, start=1):
            out.append(
                CommandEnvelope(
                    command_id=uuid.uuid5(_NS, f"{seed}:{case_id}:{n}"),
                    command_type=command.message_type,
                    schema_version=command.schema_version,
                    case_id=case_id,
                    issued_at=at,
                    actor=actor,
                    correlation_id=correlation,
                    payload=command,
                )
            )
    out.sort(key=lambda c: (c.issued_at, c.case_id))
    return out


def split_by_case(items: Sequence[Any], case_of: Callable[[Any], str], workers: int) -> list[list[Any]]:
    """Each worker owns every ``workers``-th case (as partitions own keys) and gets its commands in time order."""
    shares: list[list[Any]] = [[] for _ in range(workers)]
    owner: dict[str, int] = {}
    for item in items:
        case_id = case_of(item)
        shares[owner.setdefault(case_id, len(owner) % workers)].append(item)
    return shares


def cases_per_poll(commands: Sequence[CommandEnvelope], batch: int) -> float:
    polls = [commands[i : i + batch] for i in range(0, len(commands), batch)]
    return sum(len({c.case_id for c in poll}) for poll in polls) / len(polls)


# ---------------------------------------------------------------------------- results and worker processes


@dataclass(frozen=True, slots=True)
class Result:
    system: str
    workers: int
    commands: int
    events: int
    commits: int
    seconds: float
    client_cpu: float  # CPU seconds of the worker processes while timed
    server_cpu: float  # CPU seconds of every PostgreSQL process while timed
    note: str = ""

    @property
    def per_second(self) -> float:
        return self.commands / self.seconds

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    @property
    def client_us(self) -> float:
        return self.client_cpu / self.commands * 1e6

    @property
    def server_us(self) -> float:
        return self.server_cpu / self.commands * 1e6


class BenchError(RuntimeError):
    """A run that did not apply every command exactly once: its figure would not be honest."""


# what a worker process reports: (slot, commits, refusals, CPU seconds while timed, error)
Report = tuple[int, int, int, float, str | None]
Done = SynchronizedArray  # type: ignore[type-arg]  # commands done so far, one slot per worker


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    commits: int
    refused: int
    client_cpu: float
    server_cpu: float


class PostgresCpu:
    """CPU seconds used so far by one PostgreSQL cluster: the postmaster, its live children and those it reaped."""

    def __init__(self, postmaster: int) -> None:
        self.postmaster = postmaster
        self.tick = os.sysconf("SC_CLK_TCK")

    def seconds(self) -> float:
        ticks = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # it ended meanwhile: its time is in the postmaster's reaped-children counters
            pid, ppid = int(entry), int(fields[1])
            if pid == self.postmaster:
                ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
            elif ppid == self.postmaster:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / self.tick


def run_workers(
    label: str, target: Callable[..., None], shares: list[list[Any]], postgres: PostgresCpu, *args: Any
) -> Run:
    """Start one spawned process per share, let them all start together, time until the last one reports.

    ``target(slot, share, done, barrier, reports, *args)`` prepares, waits on the barrier, works, reports.
    """
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(shares) + 1)
    reports: MpQueue[Report] = ctx.Queue()
    done = ctx.Array("q", len(shares), lock=False)
    procs = [
        ctx.Process(target=target, args=(slot, share, done, barrier, reports, *args), daemon=True)
        for slot, share in enumerate(shares)
    ]
    for p in procs:
        p.start()
    got: list[Report] = []
    total = sum(len(s) for s in shares)
    try:
        deadline = time.monotonic() + 180
        while barrier.n_waiting < len(procs) and not barrier.broken:  # every worker ready, or one failed
            if time.monotonic() > deadline or not all(p.is_alive() for p in procs):
                barrier.abort()
                break
            time.sleep(0.02)
        try:
            barrier.wait(timeout=10)
        except threading.BrokenBarrierError:
            with contextlib.suppress(queue.Empty):
                got.append(reports.get(timeout=1))
            raise BenchError(f"{label}: a worker failed before the start: {[r[-1] for r in got]}") from None
        started = time.perf_counter()
        server_started = postgres.seconds()
        with _progress() as progress:
            task = progress.add_task(label, total=total)
            while len(got) < len(procs):
                try:
                    got.append(reports.get(timeout=0.2))
                except queue.Empty:
                    if not any(p.is_alive() for p in procs) and reports.empty():
                        break
                progress.update(task, completed=sum(done))
            seconds = time.perf_counter() - started
            server_cpu = postgres.seconds() - server_started
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    errors = [error for *_, error in got if error]
    if errors or len(got) < len(procs):
        raise BenchError(f"{label}: a worker failed: {errors or 'it died without reporting'}")
    return Run(seconds, sum(r[1] for r in got), sum(r[2] for r in got), sum(r[3] for r in got), server_cpu)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


# ---------------------------------------------------------------------------- (a) Rectify


def _rectify_worker(
    slot: int,
    records: list[Record],
    done: Done,
    barrier: Barrier,
    reports: MpQueue[Report],
    dsn: str,
    schema: str,
    batch: int,
) -> None:
    """One rectification worker: its own pool, cache and inbox, fed polls of ``batch`` records."""

    async def work() -> None:
        pool = await create_pool(dsn, schema)
        try:
            inbox: Inbox[CommandEnvelope] = Inbox(
                pool,
                service="rectification",
                decode=decode_command,
                message_id=lambda c: c.command_id,
                handle=command_handler(load_rules(), StateCache()),
            )
            polls = [records[i : i + batch] for i in range(0, len(records), batch)]
            tune_gc()  # as the worker does at start
            await asyncio.to_thread(barrier.wait)
            cpu = time.process_time()
            for n, poll in enumerate(polls):
                await inbox.process(poll)
                done[slot] = min((n + 1) * batch, len(records))
            reports.put((slot, len(polls), 0, time.process_time() - cpu, None))
        finally:
            await pool.close()

    try:
        asyncio.run(work())
    except Exception as exc:
        barrier.abort()  # the others, and the timer, need not wait for this one
        reports.put((slot, 0, 0, 0.0, f"{type(exc).__name__}: {exc}"))
        raise


def run_rectify(
    dsn: str, commands: list[CommandEnvelope], batch: int, workers: int, postgres: PostgresCpu, round_: int = 0
) -> tuple[Result, dict[str, int]]:
    schema = SCHEMA if workers == 1 else f"{SCHEMA}_{workers}w"  # a fresh schema per run, same migrations
    schema += f"_r{round_}" if round_ else ""
    asyncio.run(migrate(dsn, schema, MIGRATIONS))
    # what the broker hands the worker: encoded envelopes keyed by case id, in each partition's order
    shares = split_by_case(commands, lambda c: c.case_id, workers)
    record_shares = [
        [Record(COMMANDS.name, slot, offset, c.case_id.encode(), encode_command(c)) for offset, c in enumerate(share)]
        for slot, share in enumerate(shares)
    ]
    label = f"rectify, {workers} worker{'s' if workers > 1 else ''}"
    run = run_workers(label, _rectify_worker, record_shares, postgres, dsn, schema, batch)
    checks = asyncio.run(_check_rectify(dsn, schema, commands))
    per_poll = sum(cases_per_poll(s, batch) for s in shares) / len(shares)
    note = f"{batch} commands, {per_poll:.0f} cases per poll"
    result = Result(
        "rectify",
        workers,
        len(commands),
        checks["events"],
        run.commits,
        run.seconds,
        run.client_cpu,
        run.server_cpu,
        note,
    )
    return result, checks


async def _check_rectify(dsn: str, schema: str, commands: list[CommandEnvelope]) -> dict[str, int]:
    cases = len({c.case_id for c in commands})
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        outcome = "SELECT count(*) FROM outbox WHERE topic = $1 AND position($2 in convert_from(value, 'UTF8')) > 0"
        checks: dict[str, int] = {
            "events": await conn.fetchval("SELECT count(*) FROM events"),
            "claimed": await conn.fetchval("SELECT count(*) FROM processed_messages"),
            "dead_letters": await conn.fetchval("SELECT count(*) FROM dead_letters"),
            "outbox": await conn.fetchval("SELECT count(*) FROM outbox"),
            "applied": await conn.fetchval(outcome, OUTCOMES.name, '"SubmissionApplied"'),
            "refused": await conn.fetchval(outcome, OUTCOMES.name, '"SubmissionRefused"'),
            "complete_cases": await conn.fetchval(
                "SELECT count(*) FROM (SELECT stream_id FROM events GROUP BY stream_id "
                "HAVING max(stream_version) = $1 AND count(*) = $1) s",
                COMMANDS_PER_CASE,
            ),
        }
    finally:
        await conn.close()
    n = len(commands)
    expected = {"events": n, "claimed": n, "dead_letters": 0, "applied": n, "refused": 0, "complete_cases": cases}
    wrong = {k: (checks[k], v) for k, v in expected.items() if checks[k] != v}
    if wrong:
        raise BenchError(f"rectify did not apply every command exactly once: {wrong} (found, expected)")
    return checks


# ---------------------------------------------------------------------------- (b) the eventsourcing library


class LibraryRefused(Exception):
    """The library's case refused a command (none should be: the run fails if one is)."""


class Case(Aggregate):
    """The same six steps as Rectify's decider, with the same checks: who may act, in which status, deadlines."""

    @staticmethod
    def create_id(case_id: str, **_: Any) -> uuid.UUID:
        return uuid.uuid5(_NS, case_id)

    @event("Filed")
    def __init__(
        self,
        case_id: str,
        channel: str,
        category: str,
        unit_id: str,
        description: str,
        severity: str,
        complainant_ref: str,
        filed_at: datetime,
    ) -> None:
        self.case_id = case_id
        self.channel = channel
        self.category = category
        self.unit_id = unit_id
        self.description = description
        self.severity = severity
        self.complainant_refs = [complainant_ref]
        self.status = "filed"
        self.responsible_unit_id: str | None = None
        self.first_officer: str | None = None
        self.ack_due: datetime | None = None
        self.rectify_due: datetime | None = None
        self.changed_at = filed_at

    def _require(self, role: str, unit_id: str | None, statuses: tuple[str, ...], action: str) -> None:
        if self.status not in statuses:
            raise LibraryRefused(f"cannot {action}: the case is {self.status}")
        if role == Role.UNIT.value:
            if unit_id != self.responsible_unit_id:
                raise LibraryRefused(f"cannot {action}: not your case")
        elif role != Role.SUPERVISOR.value:
            raise LibraryRefused(f"cannot {action} as {role}")

    @staticmethod
    def _require_role(role: str, wanted: Role, action: str) -> None:
        if role != wanted.value:
            raise LibraryRefused(f"cannot {action} as {role}")

    def assign(
        self,
        role: str,
        unit_id: str | None,
        at: datetime,
        unit: str,
        officer: str,
        policy: TimeLimitPolicy,
        calendar: WorkCalendar,
    ) -> None:
        self._require_role(role, Role.SUPERVISOR, "assign")
        self._require(role, unit_id, ("filed",), "assign")
        due = policy.deadlines(at, self.category, self.severity, calendar)
        self._assigned(unit, officer, due.ack_due, due.rectify_due, due.policy_version, due.calendar_version, at)

    @event("Assigned")
    def _assigned(
        self,
        responsible_unit_id: str,
        first_officer: str,
        ack_due: datetime,
        rectify_due: datetime,
        policy_version: str,
        calendar_version: str,
        at: datetime,
    ) -> None:
        self.status = "assigned"
        self.responsible_unit_id = responsible_unit_id
        self.first_officer = first_officer
        self.ack_due = ack_due
        self.rectify_due = rectify_due
        self.changed_at = at

    def acknowledge(self, role: str, unit_id: str | None, at: datetime) -> None:
        self._require_role(role, Role.UNIT, "acknowledge")
        self._require(role, unit_id, ("assigned",), "acknowledge")
        assert self.ack_due is not None
        self._acknowledged(at <= self.ack_due, at)

    @event("Acknowledged")
    def _acknowledged(self, on_time: bool, at: datetime) -> None:
        self.status = "acknowledged"
        self.changed_at = at

    def plan(self, role: str, unit_id: str | None, at: datetime, summary: str) -> None:
        self._require_role(role, Role.UNIT, "submit a plan")
        self._require(role, unit_id, ("acknowledged", "planned"), "submit a plan")
        self._planned(summary, at)

    @event("PlanSubmitted")
    def _planned(self, plan_summary: str, at: datetime) -> None:
        self.status = "planned"
        self.changed_at = at

    def rectify(self, role: str, unit_id: str | None, at: datetime, report: str, evidence: list[str]) -> None:
        self._require_role(role, Role.UNIT, "submit the rectification")
        self._require(role, unit_id, ("planned",), "submit the rectification")
        assert self.rectify_due is not None
        self._rectified(report, evidence, at <= self.rectify_due, at)

    @event("RectificationSubmitted")
    def _rectified(self, report: str, evidence_refs: list[str], on_time: bool, at: datetime) -> None:
        self.status = "rectified"
        self.changed_at = at

    def accept(self, role: str, unit_id: str | None, at: datetime, note: str | None) -> None:
        self._require_role(role, Role.SUPERVISOR, "accept")
        self._require(role, unit_id, ("rectified",), "accept")
        self._accepted(note, True, at)

    @event("RectificationAccepted")
    def _accepted(self, note: str | None, first_pass: bool, at: datetime) -> None:
        self.status = "accepted"
        self.changed_at = at


class CaseApp(Application[uuid.UUID]):
    """Each command as the library is used: retrieve the aggregate, call the method, save (one transaction)."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        calendar: WorkCalendar | None = None,
        policy: TimeLimitPolicy | None = None,
        units: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(env)
        self.calendar = calendar
        self.policy = policy
        self.units = units

    def run(self, method: str, case_id: str, kwargs: dict[str, Any]) -> bool:
        """One command; False when the case refused it."""
        try:
            if method == "file":
                self.file(case_id, **kwargs)
                return True
            case: Case = self.repository.get(Case.create_id(case_id))
            if method == "assign":
                assert self.policy is not None and self.calendar is not None
                if kwargs["unit"] not in self.units:
                    raise LibraryRefused(f"unknown unit {kwargs['unit']}")
                case.assign(**kwargs, policy=self.policy, calendar=self.calendar)
            else:
                getattr(case, method)(**kwargs)
            self.save(case)
        except LibraryRefused:
            return False
        return True

    def file(self, case_id: str, *, role: str, at: datetime, **fields: Any) -> None:
        if role != Role.CHANNEL.value:
            raise LibraryRefused(f"cannot file as {role}")
        if fields["unit_id"] not in self.units:
            raise LibraryRefused(f"unknown unit {fields['unit_id']}")
        if self.policy is None or fields["category"] not in self.policy.categories:
            raise LibraryRefused(f"unknown category {fields['category']}")
        self.save(Case(case_id=case_id, filed_at=at, **fields))


# A command for the library: (method, case id, keyword arguments). Plain data, cheap to send to a process.
EsCommand = tuple[str, str, dict[str, Any]]


def to_library_commands(commands: list[CommandEnvelope]) -> list[EsCommand]:
    """The same commands as plain arguments: the library side skips decoding JSON, which only favours it."""
    out: list[EsCommand] = []
    for c in commands:
        p = c.payload
        actor = {"role": c.actor.role.value, "unit_id": c.actor.unit_id, "at": c.issued_at}
        if isinstance(p, FileComplaint):
            filing = {
                "channel": p.channel.value,
                "category": p.category,
                "unit_id": p.unit_id,
                "description": p.description,
                "severity": p.severity.value,
                "complainant_ref": p.complainant_ref,
            }
            out.append(("file", c.case_id, {"role": c.actor.role.value, "at": c.issued_at, **filing}))
        elif isinstance(p, AssignCase):
            out.append(("assign", c.case_id, {**actor, "unit": p.responsible_unit_id, "officer": p.first_officer}))
        elif isinstance(p, AcknowledgeCase):
            out.append(("acknowledge", c.case_id, actor))
        elif isinstance(p, SubmitPlan):
            out.append(("plan", c.case_id, {**actor, "summary": p.plan_summary}))
        elif isinstance(p, SubmitRectification):
            out.append(("rectify", c.case_id, {**actor, "report": p.report, "evidence": list(p.evidence_refs)}))
        elif isinstance(p, AcceptRectification):
            out.append(("accept", c.case_id, {**actor, "note": p.note}))
        else:
            raise ValueError(f"no library equivalent for {c.command_type}")
    return out


@dataclass(frozen=True, slots=True)
class LibraryDb:
    host: str
    port: str
    dbname: str
    user: str = "postgres"
    password: str = ""

    def env(self, schema: str, create_table: bool) -> dict[str, str]:
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": self.port,
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_SCHEMA": schema,
            "CREATE_TABLE": "y" if create_table else "n",
        }

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(
            host=self.host, port=self.port, dbname=self.dbname, user=self.user, password=self.password, autocommit=True
        )


def _library_worker(
    slot: int,
    commands: list[EsCommand],
    done: Done,
    barrier: Barrier,
    reports: MpQueue[Report],
    env: dict[str, str],
) -> None:
    """One library worker process: its own application (and connection pool), its share of the cases."""
    app: CaseApp | None = None
    try:
        app = CaseApp(env, calendar=load_calendar(), policy=load_time_limits(), units=load_rules().units)
        barrier.wait()
        cpu = time.process_time()
        refused = 0
        for n, (method, case_id, kwargs) in enumerate(commands, start=1):
            if not app.run(method, case_id, kwargs):
                refused += 1
            if n % 50 == 0:
                done[slot] = n
        done[slot] = len(commands)
        reports.put((slot, len(commands), refused, time.process_time() - cpu, None))
    except Exception as exc:
        barrier.abort()  # the others, and the timer, need not wait for this one
        reports.put((slot, 0, 0, 0.0, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        if app is not None:
            app.close()


def run_library(
    db: LibraryDb, commands: list[EsCommand], workers: int, postgres: PostgresCpu, round_: int = 0
) -> tuple[Result, dict[str, int]]:
    schema = f"es_{workers}w_r{round_}"  # a fresh schema per run, so each starts from empty tables
    cases = len({c[1] for c in commands})
    with db.connect() as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    CaseApp(db.env(schema, create_table=True)).close()  # creates the tables once, before the workers start
    shares = split_by_case(commands, lambda c: c[1], workers)
    label = f"eventsourcing, {workers} worker{'s' if workers > 1 else ''}"
    run = run_workers(label, _library_worker, shares, postgres, db.env(schema, create_table=False))
    checks = _check_library(db, schema)
    checks["refused"] = run.refused
    if run.refused or checks["events"] != len(commands) or checks["complete_cases"] != cases:
        raise BenchError(f"the library did not apply every command: {checks}, expected {len(commands)} events")
    name = f"eventsourcing {_library_version()}"
    note = f"1 command per commit; {cases} cases"
    result = Result(
        name, workers, len(commands), checks["events"], run.commits, run.seconds, run.client_cpu, run.server_cpu, note
    )
    return result, checks


def _check_library(db: LibraryDb, schema: str) -> dict[str, int]:
    with db.connect() as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name LIKE %s",
            (schema, "%events"),
        ).fetchall()
        if len(tables) != 1:
            raise BenchError(f"expected one events table in schema {schema}, found {tables}")
        table = f"{schema}.{tables[0][0]}"
        events = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        complete = conn.execute(
            f"SELECT count(*) FROM (SELECT originator_id FROM {table} GROUP BY originator_id "
            "HAVING max(originator_version) = %s AND count(*) = %s) s",
            (COMMANDS_PER_CASE, COMMANDS_PER_CASE),
        ).fetchone()
    return {"events": int(events[0]), "complete_cases": int(complete[0])}


def _library_version() -> str:
    from importlib.metadata import version

    return version("eventsourcing")


# ---------------------------------------------------------------------------- the run


async def _admin(dsn: str, statements: Sequence[str]) -> list[Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return [
            await conn.fetchval(s) if s.startswith(("SHOW", "SELECT")) else await conn.execute(s) for s in statements
        ]
    finally:
        await conn.close()


def _dsn_for(admin_dsn: str, dbname: str) -> str:
    return admin_dsn.rsplit("/", 1)[0] + f"/{dbname}"


def machine() -> str:
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{os.cpu_count()} cores, {mem_kib / 1024 / 1024:.0f} GiB memory, {python}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--cases", type=int, help=f"cases, six commands each (default {FULL_CASES}, quick {QUICK_CASES})"
    )
    parser.add_argument("--quick", action="store_true", help=f"a short run: {QUICK_CASES} cases")
    parser.add_argument(
        "--batch",
        type=int,
        default=WORKER_BATCH,
        help=f"commands per poll, one transaction each (default {WORKER_BATCH}: the worker's CONSUMER_BATCH_SIZE)",
    )
    parser.add_argument("--seed", type=int, default=3, help="seed of the workload (default 3)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="runs of each rectify setup, the median one shown (a few seconds each: a short stall of the machine "
        "moves one run by tens of percent)",
    )
    parser.add_argument(
        "--library-rounds",
        type=int,
        default=3,
        help="runs of each library setup, each on its own share of the cases (every N-th case), the median one "
        "shown: together they apply the whole workload once, in about the time one run of it takes (default 3)",
    )
    args = parser.parse_args(argv)
    cases: int = args.cases or (QUICK_CASES if args.quick else FULL_CASES)

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    rules = load_rules()
    assert rules.calendar is not None and rules.policy is not None
    commands = plan_commands(cases, seed=args.seed, calendar=rules.calendar, policy=rules.policy, units=rules.units)
    library_commands = to_library_commands(commands)
    console.print(f"machine: {machine()}; load average before the run {load_before:.2f}")
    console.print(f"workload: {cases} cases x {COMMANDS_PER_CASE} commands = {len(commands)} commands")

    stack = stack_module()
    base = Path(tempfile.mkdtemp(prefix="rectify-bench-"))
    results: list[Result] = []
    try:
        env = stack.start(base, durable=True)
        admin = env["DATABASE_URL"]
        postgres = PostgresCpu(int(json.loads((base / "pids.json").read_text())["postgres"]["pid"]))
        shown = asyncio.run(
            _admin(
                admin,
                [
                    "SHOW fsync",
                    "SHOW synchronous_commit",
                    "SHOW full_page_writes",
                    "SHOW wal_sync_method",
                    "SHOW server_version",
                    "CREATE DATABASE rectify_bench",
                    "CREATE DATABASE eventsourcing_bench",
                ],
            )
        )
        fsync, synchronous_commit, full_page_writes, sync_method, server = shown[:5]
        if (fsync, synchronous_commit, full_page_writes) != ("on", "on", "on"):
            raise BenchError(f"PostgreSQL is not durable: fsync={fsync} synchronous_commit={synchronous_commit}")
        console.print(
            f"PostgreSQL {server.split()[0]}: fsync={fsync}, synchronous_commit={synchronous_commit}, "
            f"full_page_writes={full_page_writes}, wal_sync_method={sync_method}"
        )
        for workers in RECTIFY_WORKERS:
            runs = []
            for n in range(args.rounds):
                result, checks = run_rectify(
                    _dsn_for(admin, "rectify_bench"), commands, args.batch, workers, postgres, n
                )
                runs.append(result)
                console.print(
                    f"rectify, {workers} worker(s), round {n + 1}: {result.per_second:,.0f} commands/s; checked: "
                    f"{checks['events']} events, {checks['applied']} applied, {checks['refused']} refused, "
                    f"{checks['dead_letters']} dead letters, {checks['outbox']} outbox rows, "
                    f"{checks['complete_cases']} cases complete"
                )
            results.append(_median(runs))
        port = admin.rsplit(":", 1)[1].split("/", 1)[0]
        db = LibraryDb(host="127.0.0.1", port=port, dbname="eventsourcing_bench")
        # the library's rounds split the cases (a round's share: every N-th case, all its commands in time order), so
        # that N rounds together take as long as one run of the whole workload; each round starts from empty tables
        library_shares = split_by_case(library_commands, lambda c: c[1], args.library_rounds)
        for workers in LIBRARY_WORKERS:
            runs = []
            for n, share in enumerate(library_shares):
                result, checks = run_library(db, share, workers, postgres, n)
                runs.append(result)
                console.print(
                    f"eventsourcing, {workers} worker(s), round {n + 1}: {result.per_second:,.0f} commands/s; checked: "
                    f"{checks['events']} events, {checks['refused']} refused, {checks['complete_cases']} cases complete"
                )
            results.append(_median(runs))
    finally:
        stack.stop(base)

    one = next(r for r in results if r.system == "rectify" and r.workers == 1)
    rectify = max((r for r in results if r.system == "rectify"), key=lambda r: r.per_second)
    best = max((r for r in results if r.system.startswith("eventsourcing")), key=lambda r: r.per_second)
    print_table(results, rectify)
    load_after = os.getloadavg()[0]
    console.print(f"whole run {time.perf_counter() - started:.0f} s; load average after the run {load_after:.2f}")
    ratio = rectify.per_second / best.per_second
    library = f"eventsourcing, best of {', '.join(map(str, LIBRARY_WORKERS))} workers ({best.workers}), same PostgreSQL"
    record(
        "commands",
        [
            Figure(
                f"case commands, best of 1 and 2 workers ({rectify.workers})",
                rectify.per_second,
                "commands/s",
                f">= {GOAL:.0f}x eventsourcing",
                ratio >= GOAL,
                best.per_second,
                library,
            ),
            Figure("case commands, 1 worker", one.per_second, "commands/s", "", None, best.per_second, library),
        ],
        {"cases": cases, "load_after": load_after},
    )
    print(
        f"rectify {rectify.per_second:.0f} commands/s (best of 1 and 2 workers; 1 worker {one.per_second:.0f}), "
        f"eventsourcing {best.per_second:.0f} commands/s (best of 1 and 4 workers), ratio {ratio:.1f}x "
        f"(1 worker {one.per_second / best.per_second:.1f}x) (goal >= {GOAL:.0f}x)",
        flush=True,
    )
    return 0


def _median(runs: list[Result]) -> Result:
    """The median run by commands/s (the upper one of an even number), its note naming the spread."""
    runs = sorted(runs, key=lambda r: r.per_second)
    median = runs[len(runs) // 2]
    if len(runs) == 1:
        return median
    spread = f"{runs[0].per_second:,.0f}..{runs[-1].per_second:,.0f}/s"
    return dataclasses.replace(median, note=f"{median.note}; median of {len(runs)} rounds ({spread})")


def print_table(results: list[Result], rectify: Result) -> None:
    table = Table(title="Case commands on one durable PostgreSQL (fsync, synchronous_commit, full_page_writes on)")
    columns = (
        "system",
        "workers",
        "commands",
        "commits",
        "seconds",
        "commands/s",
        "events/s",
        "client CPU µs/cmd",
        "PostgreSQL CPU µs/cmd",
        "ratio",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "system" else "right")
    table.add_column("notes")
    for r in results:
        table.add_row(
            r.system,
            str(r.workers),
            str(r.commands),
            str(r.commits),
            f"{r.seconds:.2f}",
            f"{r.per_second:,.0f}",
            f"{r.events_per_second:,.0f}",
            f"{r.client_us:,.0f}",
            f"{r.server_us:,.0f}",
            "" if r.system == "rectify" else f"{rectify.per_second / r.per_second:.1f}x",
            r.note,
        )
    console.print(table)
    console.print(
        f"ratio: rectify's best ({rectify.workers} worker(s), the figure compared) over that row's commands/s. "
        "CPU: of the worker processes and of all PostgreSQL processes while timed, per command."
    )


if __name__ == "__main__":
    # run as bench.commands, not __main__: worker processes and the library's stored event topics name that module
    from bench.commands import main as bench_main

    raise SystemExit(bench_main())
