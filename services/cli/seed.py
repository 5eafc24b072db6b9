"""Demo data: a simulated month replayed through the running system, or complaints filed over HTTP.

``seed_month`` (``rectify seed``) replays ``services.rectification.simulation.month_of_cases`` through the
real path; ``file_demo_complaints`` (``rectify seed --complaints N``) files complaints through intake's API.
Both are deterministic for a given seed and idempotent.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from services.common.contracts import CommandEnvelope, FileComplaint, MergeCase
from services.common.outbox import OutgoingMessage, enqueue
from services.common.periods import month_of
from services.common.reference import reference
from services.common.topics import COMMANDS, PUBLIC_CASES
from services.rectification.domain.calendar import load_calendar, to_local
from services.rectification.domain.time_limits import load_time_limits
from services.rectification.simulation import month_of_cases
from services.rectification.watcher import WATCHER_LOCK

PROBLEMS: dict[str, list[str]] = {
    "inaction": ["反映多次的路灯损坏问题无人处理", "村道塌方一个月无人过问"],
    "slow_action": ["营业执照变更申请超过承诺时限未办结", "低保复核材料提交后迟迟没有答复"],
    "wrongful_action": ["执法人员未出示证件即扣押摊贩物品", "违规向商户摊派赞助费用"],
    "extortion": ["办理建房审批时被暗示需要请客送礼", "窗口工作人员索要好处费"],
    "obstruction": ["惠企政策在科室层面迟迟不落地", "项目审批材料在中间环节被反复退回"],
    "buck_passing": ["小区积水问题街道与城管互相推诿", "噪音投诉被多个部门来回转办"],
    "land_demolition": ["征地补偿款未按公示标准发放", "拆迁过渡费拖欠半年"],
    "subcontracting": ["安置房工程层层转包导致农民工工资拖欠", "道路工程转包后质量明显下降"],
    "business_environment": ["企业开办需要重复提交相同材料", "工程项目审批要求提供法规外的证明"],
    "service_window": ["窗口工作人员上班时间玩手机、态度生硬", "办事大厅午休时间无人值守"],
    "integrity": ["公务接待超标准安排宴请", "公车私用在节假日接送家属"],
}
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"


def demo_complaints(count: int, seed: int = 2026) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    ref = reference()
    units = sorted(ref.units)
    for i in range(count):
        category = rng.choice(sorted(PROBLEMS))
        unit = rng.choice(units)
        yield {
            "category": category,
            "unit_id": unit,
            "description": f"{rng.choice(PROBLEMS[category])}（{ref.units[unit].zh}，演示数据 {i + 1}）",
            "location": ref.units[unit].zh,
            "severity": rng.choice(["general", "general", "general", "complex", "utilities"]),
            "complainant": {
                "name": f"{rng.choice(SURNAMES)}某某",
                "phone": f"13{rng.randint(100000000, 999999999)}",
            },
        }


def file_demo_complaints(intake_url: str, api_key: str, count: int, seed: int = 2026) -> list[dict[str, Any]]:
    answers = []
    with httpx.Client(base_url=intake_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10) as client:
        for i, body in enumerate(demo_complaints(count, seed)):
            r = client.post("/v1/complaints", json=body, headers={"Idempotency-Key": f"demo-{seed}-{i}"})
            r.raise_for_status()
            answers.append(r.json())
    return answers


# ---------------------------------------------------------------------------- a simulated month, through the system


@dataclass(frozen=True, slots=True)
class MonthPlan:
    """The commands of a simulated month that happened up to ``until``, split into waves (see ``waves``)."""

    seed: int
    start: date
    days: int
    until: datetime
    cases: int
    commands: list[CommandEnvelope]

    @property
    def case_ids(self) -> list[str]:
        return sorted({c.case_id for c in self.commands})

    @property
    def busiest_month(self) -> str:
        """The month (China time) in which most cases were filed: the one to rank."""
        filed = Counter(month_of(c.issued_at) for c in self.commands if isinstance(c.payload, FileComplaint))
        return filed.most_common(1)[0][0]

    def waves(self) -> list[list[CommandEnvelope]]:
        """The commands in time order, cut before a merge whose surviving case is filed in the same wave.

        Within a case the commands keep their order (one key, one partition); across cases only a merge depends
        on another case, so the survivor is decided before its duplicate is merged into it.
        """
        out: list[list[CommandEnvelope]] = [[]]
        cases: set[str] = set()
        for command in self.commands:
            if isinstance(command.payload, MergeCase) and command.payload.into_case_id in cases:
                out.append([])
                cases = set()
            out[-1].append(command)
            cases.add(command.case_id)
        return [w for w in out if w]


def plan_month(seed: int, cases: int, days: int, until: datetime, start: date | None = None) -> MonthPlan:
    """``month_of_cases`` over ``days`` from ``start`` (default: the days before ``until``'s), up to ``until``.

    What is dated after ``until`` is the future: it is not sent, and the running system (its deadline watcher)
    takes the cases on from where the seed leaves them.
    """
    ref = reference()
    start = start or to_local(until).date() - timedelta(days=days)
    simulation = month_of_cases(
        seed=seed,
        calendar=load_calendar(),
        policy=load_time_limits(),
        units=sorted(ref.units),
        categories=sorted(ref.categories),
        cases=cases,
        start=start,
        days=days,
    )
    commands = [c for c in simulation.envelopes() if c.issued_at <= until]
    return MonthPlan(seed, start, days, until, cases, commands)


async def plan_seeded_month(dsn: str, seed: int, cases: int, days: int, until: datetime) -> MonthPlan:
    """The month ``seed`` replays: fixed in ``intake.seeded_months`` the first time, the same on every later run."""
    start = to_local(until).date() - timedelta(days=days)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "intake", "application_name": "rectify-seed"})
    try:
        await conn.execute(
            "INSERT INTO seeded_months (seed, start_day, days, cases) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            seed,
            start,
            days,
            cases,
        )
        row = await conn.fetchrow("SELECT start_day, days, cases FROM seeded_months WHERE seed = $1", seed)
    finally:
        await conn.close()
    return plan_month(seed, row["cases"], row["days"], until, row["start_day"])


@dataclass(frozen=True, slots=True)
class SeedReport:
    plan: MonthPlan
    stored: int  # commands put in intake's outbox by this run (0 when seeded before)
    decided: int
    events: int
    public_facts: int


class SeedTimeout(RuntimeError):
    """The running system did not take the seeded month on in time (is every worker running?)."""


Progress = Callable[[str, int, int], None]  # stage, done, total


async def seed_month(
    dsn: str, plan: MonthPlan, *, timeout_s: float = 300.0, progress: Progress | None = None
) -> SeedReport:
    """Replay ``plan`` through the running system and wait until every service has taken it on.

    1. In intake's schema, in one transaction per wave: ``seeded_commands`` claims each command id, and only the
       newly claimed commands go into intake's outbox, so seeding twice sends nothing twice. Intake's relay
       publishes them to the commands topic like every other command.
    2. While the month is replayed this holds the deadline watcher's lock: the watcher would otherwise mark the
       month's past deadlines at today's date in the middle of stories that mark them at their own time.
       Each wave waits until rectification has decided it (its ``processed_messages``).
    3. Then the watcher is let go, and the seed waits for scoring to apply every event of the seeded cases and
       for publicity to apply every public fact of them.
    """
    report = progress or (lambda stage, done, total: None)
    deadline = time.monotonic() + timeout_s
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "intake", "application_name": "rectify-seed"})
    try:
        await conn.execute("SELECT pg_advisory_lock(hashtext($1))", WATCHER_LOCK)
        try:
            stored = handled = decided = 0
            total = len(plan.commands)
            report("stored", 0, total)
            report("decided", 0, total)
            for wave in plan.waves():
                stored += await _store_wave(conn, plan.seed, wave)
                handled += len(wave)
                report("stored", handled, total)
                ids = [c.command_id for c in wave]
                await _wait(conn, _DECIDED, ids, "decided", decided, total, report, deadline)
                decided += len(ids)
            events = [r[0] for r in await conn.fetch(_SEEDED_EVENTS, plan.case_ids)]
            facts = [r[0] for r in await conn.fetch(_SEEDED_FACTS, PUBLIC_CASES.name, plan.case_ids)]
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", WATCHER_LOCK)
        await _wait(conn, _SCORED, events, "scored", 0, len(events), report, deadline)
        await _wait(conn, _PUBLIC, facts, "public", 0, len(facts), report, deadline)
    finally:
        await conn.close()
    return SeedReport(plan, stored, decided, len(events), len(facts))


_DECIDED = "SELECT count(*) FROM rectification.processed_messages WHERE message_id = ANY($1::uuid[])"
_SCORED = (  # scoring keeps no event ids: an event is scored once its case is applied up to its version
    "SELECT count(*) FROM rectification.events e JOIN scoring.case_facts f ON f.case_id = e.stream_id "
    "WHERE e.event_id = ANY($1::uuid[]) AND e.stream_version <= f.version"
)
_PUBLIC = "SELECT count(*) FROM publicity.processed_messages WHERE message_id = ANY($1::uuid[])"
_SEEDED_EVENTS = "SELECT event_id FROM rectification.events WHERE stream_id = ANY($1::text[])"
_SEEDED_FACTS = (
    "SELECT (convert_from(value, 'UTF8')::jsonb->>'event_id')::uuid FROM rectification.outbox "
    "WHERE topic = $1 AND key = ANY($2::text[])"
)


async def _store_wave(conn: asyncpg.Connection, seed: int, wave: list[CommandEnvelope]) -> int:
    async with conn.transaction():
        claimed = {
            r["command_id"]
            for r in await conn.fetch(
                "INSERT INTO seeded_commands (command_id, seed, case_id, issued_at, agency_id) "
                "SELECT c.command_id, $2::int, c.case_id, c.issued_at, c.agency_id "
                "FROM unnest($1::uuid[], $3::text[], $4::timestamptz[], $5::text[]) "
                "AS c(command_id, case_id, issued_at, agency_id) "
                "ON CONFLICT DO NOTHING RETURNING command_id",
                [c.command_id for c in wave],
                seed,
                [c.case_id for c in wave],
                [c.issued_at for c in wave],
                [c.actor.agency_id for c in wave],
            )
        }
        fresh = [OutgoingMessage.command(COMMANDS, c) for c in wave if c.command_id in claimed]
        await enqueue(conn, fresh)  # intake's outbox: its relay publishes them like every other command
    return len(fresh)


async def _wait(
    conn: asyncpg.Connection,
    query: str,
    ids: list[uuid.UUID],
    stage: str,
    before: int,
    total: int,
    report: Progress,
    deadline: float,
) -> None:
    while True:
        done = int(await conn.fetchval(query, ids))
        report(stage, before + done, total)
        if done >= len(ids):
            return
        if time.monotonic() > deadline:
            raise SeedTimeout(f"{stage}: {before + done} of {total} after the timeout; are all workers running?")
        await asyncio.sleep(0.2)


STAGES = {
    "stored": "stored in intake's outbox",
    "decided": "decided by rectification",
    "scored": "events applied by scoring",
    "public": "public facts applied by publicity",
}


def seed_month_with_progress(dsn: str, plan: MonthPlan, timeout_s: float = 300.0) -> SeedReport:
    """``seed_month`` with a progress bar per stage."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns) as bars:
        tasks = {stage: bars.add_task(label, total=None, start=False) for stage, label in STAGES.items()}

        def advance(stage: str, done: int, total: int) -> None:
            bars.start_task(tasks[stage])
            bars.update(tasks[stage], completed=done, total=total)

        return asyncio.run(seed_month(dsn, plan, timeout_s=timeout_s, progress=advance))


def describe(report: SeedReport) -> list[str]:
    """What a seeded month is and where to look at it."""
    plan = report.plan
    again = "" if report.stored else " (seeded before: nothing sent again)"
    return [
        f"seeded {plan.cases} simulated cases filed {plan.start} .. {plan.start + timedelta(days=plan.days - 1)}"
        f" (SIM-{plan.seed}-0001 ..), {len(plan.commands):,} commands up to {plan.until:%Y-%m-%d %H:%M} UTC{again}",
        f"{report.events:,} case events, {report.public_facts:,} public facts; the deadline watcher takes the cases on",
        f"provisional ranking: rectify ranking show --period {plan.busiest_month}"
        f" (publishable once {plan.busiest_month} settles: rectify ranking publish --period {plan.busiest_month})",
    ]
