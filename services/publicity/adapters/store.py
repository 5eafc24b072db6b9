"""The publicity projection on PostgreSQL: batched idempotent writes and the page queries.

Writes run inside the inbox's transaction, one statement per table per batch. Every column comes from a
public fact (``PublicCaseChangedV2``) or a published ranking (``RankingPublished``): ``CASE_COLUMNS`` is
the allow-list, and a test checks that the schema holds nothing else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from services.common.contracts import EventEnvelope, PublicCaseChangedV2, RankingPublished
from services.publicity.periods import Period, month_of

CASE_COLUMNS: tuple[str, ...] = (
    "case_id",
    "status",
    "category",
    "unit_id",
    "responsible_unit_id",
    "filed_at",
    "deadline",
    "redo_count",
    "problem_summary",  # only as the supervisor approved it at publication
    "result_summary",  # idem
    "exposed",
    "version",
    "updated_at",
    "overdue",
    "reopen_count",
    "escalations",
    "holds",  # step, holder (supervisor | complainant | unit:<id>), start, end, working days: no person
    "published_at",
    "exposed_at",
)
FINISHED = ("closed", "dismissed", "merged")
_SELECT = ", ".join(c if c != "holds" else "holds::text AS holds" for c in CASE_COLUMNS)
_EXPORT = ", ".join(c for c in CASE_COLUMNS if c != "holds")
Cell = tuple[str, str, str, str, bool, bool]  # month, unit, category, status, overdue, exposed


# ---------------------------------------------------------------------------- writes: public case facts


def _cell(month: str, unit_id: str, category: str, status: str, overdue: bool, exposed: bool) -> Cell:
    return (month, unit_id, category, status, overdue, exposed)


def _fact_row(p: PublicCaseChangedV2, version: int, recorded_at: datetime) -> tuple[Any, ...]:
    return (
        p.case_id,
        p.status.value,
        p.category,
        p.unit_id,
        p.responsible_unit_id,
        p.filed_at,
        p.deadline,
        p.redo_count,
        p.problem_summary,
        p.result_summary,
        p.exposed,
        version,
        recorded_at,
        p.overdue,
        p.reopen_count,
        p.escalations,
        orjson.dumps([h.model_dump(mode="json") for h in p.holds]).decode(),
    )


_UPSERT = (
    "INSERT INTO cases (case_id, status, category, unit_id, responsible_unit_id, filed_at, deadline,"
    " redo_count, problem_summary, result_summary, exposed, version, updated_at, overdue, reopen_count,"
    " escalations, holds) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],"
    " $7::timestamptz[], $8::int[], $9::text[], $10::text[], $11::bool[], $12::int[], $13::timestamptz[],"
    " $14::bool[], $15::int[], $16::int[], $17::jsonb[]) "
    "ON CONFLICT (case_id) DO UPDATE SET status = EXCLUDED.status, category = EXCLUDED.category,"
    " unit_id = EXCLUDED.unit_id, responsible_unit_id = EXCLUDED.responsible_unit_id,"
    " deadline = EXCLUDED.deadline, redo_count = EXCLUDED.redo_count,"
    " problem_summary = EXCLUDED.problem_summary, result_summary = EXCLUDED.result_summary,"
    " exposed = EXCLUDED.exposed, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,"
    " overdue = EXCLUDED.overdue, reopen_count = EXCLUDED.reopen_count, escalations = EXCLUDED.escalations,"
    " holds = EXCLUDED.holds "
    "WHERE cases.version < EXCLUDED.version"
)
_CELLS = (
    "INSERT INTO stats_cells AS s (month, unit_id, category, status, overdue, exposed, n) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::bool[], $7::int[]) "
    "ON CONFLICT (month, unit_id, category, status, overdue, exposed) DO UPDATE SET n = s.n + EXCLUDED.n"
)
_MOMENTS = (
    "UPDATE cases c SET published_at = greatest(c.published_at, m.published),"
    " exposed_at = least(c.exposed_at, m.exposed) "
    "FROM (SELECT case_id, max(at) FILTER (WHERE step = 'published') AS published,"
    " min(at) FILTER (WHERE step = 'exposed') AS exposed"
    " FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(case_id, step, at) GROUP BY case_id) m "
    "WHERE c.case_id = m.case_id"
)


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(col) for col in zip(*rows, strict=True)]


async def apply_public_facts(conn: asyncpg.Connection, envelopes: list[EventEnvelope]) -> None:
    """Keep the newest version of each case, every timeline entry, and the statistics cells in step.

    Replays and reorders change nothing: a case row only moves to a higher version, the cells move with it.
    """
    latest: dict[str, tuple[int, PublicCaseChangedV2, datetime]] = {}
    steps: list[tuple[str, int, str, datetime]] = []
    for env in envelopes:
        p = env.payload
        if not isinstance(p, PublicCaseChangedV2):
            continue
        steps.append((p.case_id, env.stream_version, p.entry.step, p.entry.at))
        if p.case_id not in latest or latest[p.case_id][0] < env.stream_version:
            latest[p.case_id] = (env.stream_version, p, env.recorded_at)
    if not latest:
        return
    old = {
        r["case_id"]: r
        for r in await conn.fetch(
            "SELECT case_id, version, filed_at, unit_id, category, status, overdue, exposed FROM cases "
            "WHERE case_id = ANY($1::text[]) ORDER BY case_id FOR UPDATE",
            sorted(latest),
        )
    }
    cells: Counter[Cell] = Counter()
    rows = []
    for case_id, (version, p, recorded_at) in sorted(latest.items()):
        before = old.get(case_id)
        if before is not None and before["version"] >= version:
            continue
        if before is not None:
            cells[_cell(month_of(before["filed_at"]), *(before[k] for k in _CELL_KEYS))] -= 1  # type: ignore[arg-type]
        cells[_cell(month_of(p.filed_at), p.unit_id, p.category, p.status.value, p.overdue, p.exposed)] += 1
        rows.append(_fact_row(p, version, recorded_at))
    if rows:
        await conn.execute(_UPSERT, *_columns(rows))
    await conn.execute(
        "INSERT INTO timeline (case_id, version, step, at) "
        "SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::timestamptz[]) ON CONFLICT DO NOTHING",
        *_columns(steps),
    )
    moments = [(case_id, step, at) for case_id, _, step, at in steps if step in ("published", "exposed")]
    if moments:
        await conn.execute(_MOMENTS, *_columns(moments))
    changed = sorted((cell, n) for cell, n in cells.items() if n)
    if changed:
        await conn.execute(_CELLS, *_columns([(*cell, n) for cell, n in changed]))
    await bump_watermark(conn)


_CELL_KEYS = ("unit_id", "category", "status", "overdue", "exposed")


async def bump_watermark(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE watermark SET changes = changes + 1, changed_at = now()")


async def rebuild_stats(conn: asyncpg.Connection) -> None:
    """Recount every statistics cell from the cases (after a bulk load that bypassed ``apply_public_facts``)."""
    await conn.execute("TRUNCATE stats_cells")
    await conn.execute(
        "INSERT INTO stats_cells SELECT to_char(filed_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM'), unit_id, category,"
        " status, overdue, exposed, count(*) FROM cases GROUP BY 1, 2, 3, 4, 5, 6"
    )
    await bump_watermark(conn)


# ---------------------------------------------------------------------------- writes: rankings


async def apply_rankings(conn: asyncpg.Connection, envelopes: list[EventEnvelope]) -> None:
    """Keep every published ranking; the pages show the newest publication of each period and tier."""
    rows = [
        (
            env.event_id,
            p.period,
            p.tier,
            p.formula_version,
            env.stream_version,
            env.recorded_at,
            p.result_hash,
            orjson.dumps(p.model_dump(mode="json", exclude={"evidence"})).decode(),  # the evidence: in the ledger
        )
        for env in envelopes
        if isinstance(p := env.payload, RankingPublished)
    ]
    if not rows:
        return
    await conn.execute(
        "INSERT INTO rankings (event_id, period, tier, formula_version, stream_version, recorded_at, result_hash,"
        " document) SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[],"
        " $6::timestamptz[], $7::text[], $8::jsonb[]) ON CONFLICT (event_id) DO NOTHING",
        *_columns(rows),
    )
    await bump_watermark(conn)


# ---------------------------------------------------------------------------- reads


@dataclass(frozen=True, slots=True)
class CaseFilter:
    unit_id: str | None = None
    category: str | None = None
    status: str | None = None
    period: Period | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Watermark:
    changes: int
    changed_at: datetime


async def watermark(pool: asyncpg.Pool) -> Watermark:
    row = await pool.fetchrow("SELECT changes, changed_at FROM watermark")
    assert row is not None, "migration 003 creates the watermark row"
    return Watermark(row["changes"], row["changed_at"])


def _case(row: asyncpg.Record) -> dict[str, Any]:
    return dict(row) | {"holds": orjson.loads(row["holds"])}


def _where(f: CaseFilter, *, on_cells: bool) -> tuple[str, list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("unit_id", f.unit_id), ("category", f.category), ("status", f.status)):
        if value:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if f.period is not None:
        if on_cells:
            args.append(list(f.period.months))
            where.append(f"month = ANY(${len(args)}::text[])")
        else:
            args += [f.period.start, f.period.end]
            where.append(f"filed_at >= ${len(args) - 1} AND filed_at < ${len(args)}")
    return (f"WHERE {' AND '.join(where)}" if where else ""), args


async def list_cases(pool: asyncpg.Pool, f: CaseFilter) -> tuple[list[dict[str, Any]], int]:
    """A page of cases, newest filed first, and how many match (counted on the statistics cells)."""
    cells_clause, cells_args = _where(f, on_cells=True)
    total = await pool.fetchval(f"SELECT coalesce(sum(n), 0) FROM stats_cells {cells_clause}", *cells_args)
    clause, args = _where(f, on_cells=False)
    rows = await pool.fetch(
        f"SELECT {_SELECT} FROM cases {clause} ORDER BY filed_at DESC, case_id "
        f"LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
        *args,
        f.limit,
        f.offset,
    )
    return [_case(r) for r in rows], int(total)


async def get_case(pool: asyncpg.Pool, case_id: str) -> dict[str, Any] | None:
    """One case with its dated timeline (repeated entries of the same step and moment shown once)."""
    row = await pool.fetchrow(
        f"SELECT {_SELECT}, (SELECT coalesce(json_agg(json_build_array(t.version, t.step, t.at) ORDER BY t.version),"
        " '[]')::text FROM timeline t WHERE t.case_id = c.case_id) AS steps FROM cases c WHERE case_id = $1",
        case_id,
    )
    if row is None:
        return None
    timeline: list[dict[str, Any]] = []
    for version, step, at in orjson.loads(row["steps"]):
        moment = datetime.fromisoformat(at)
        if timeline and (timeline[-1]["step"], timeline[-1]["at"]) == (step, moment):
            continue
        timeline.append({"version": version, "step": step, "at": moment})
    case = _case(row)
    del case["steps"]
    return case | {"timeline": timeline}


async def exposure_board(pool: asyncpg.Pool, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    total = await pool.fetchval("SELECT coalesce(sum(n), 0) FROM stats_cells WHERE exposed")
    rows = await pool.fetch(
        f"SELECT {_SELECT} FROM cases WHERE exposed ORDER BY exposed_at DESC NULLS LAST, case_id LIMIT $1 OFFSET $2",
        limit,
        offset,
    )
    return [_case(r) for r in rows], int(total)


async def stalled_by_unit(pool: asyncpg.Pool) -> list[tuple[str, int]]:
    """(responsible unit, overdue cases) for every unit holding overdue cases, most first."""
    rows = await pool.fetch(
        "SELECT coalesce(responsible_unit_id, unit_id) AS unit, count(*) AS n FROM cases WHERE overdue "
        "GROUP BY 1 ORDER BY 2 DESC, 1"
    )
    return [(r["unit"], r["n"]) for r in rows]


async def stalled_cases(pool: asyncpg.Pool, unit_id: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
    """Overdue cases, the longest overdue (earliest deadline) first."""
    clause, args = ("AND responsible_unit_id = $3", [unit_id]) if unit_id else ("", [])
    rows = await pool.fetch(
        f"SELECT {_SELECT} FROM cases WHERE overdue {clause} ORDER BY deadline NULLS LAST, case_id LIMIT $1 OFFSET $2",
        limit,
        offset,
        *args,
    )
    return [_case(r) for r in rows]


async def published_results(pool: asyncpg.Pool, limit: int) -> list[dict[str, Any]]:
    """The cases most recently published (向社会公布), newest first: the Atom feed."""
    rows = await pool.fetch(
        f"SELECT {_SELECT} FROM cases WHERE published_at IS NOT NULL ORDER BY published_at DESC, case_id LIMIT $1",
        limit,
    )
    return [_case(r) for r in rows]


@dataclass(frozen=True, slots=True)
class Statistics:
    months: list[dict[str, Any]]  # month, filed, closed, overdue, exposed: every month with cases
    by_category: list[dict[str, Any]]  # category, filed, closed, overdue, exposed (in the period)
    by_unit: list[dict[str, Any]]  # unit_id, ...
    by_status: list[dict[str, Any]]  # status, filed


_SUMS = (
    "sum(n)::int AS filed, coalesce(sum(n) FILTER (WHERE status = 'closed'), 0)::int AS closed,"
    " coalesce(sum(n) FILTER (WHERE overdue), 0)::int AS overdue,"
    " coalesce(sum(n) FILTER (WHERE exposed), 0)::int AS exposed"
)


async def statistics(pool: asyncpg.Pool, period: Period | None) -> Statistics:
    clause, args = _where(CaseFilter(period=period), on_cells=True)

    def grouped(column: str, sums: str = _SUMS) -> str:
        return (
            f"SELECT {column}, {sums} FROM stats_cells {clause} GROUP BY {column} HAVING sum(n) > 0 "
            f"ORDER BY filed DESC, {column}"
        )

    months = await pool.fetch(f"SELECT month, {_SUMS} FROM stats_cells GROUP BY month HAVING sum(n) > 0 ORDER BY month")
    categories = await pool.fetch(grouped("category"), *args)
    units = await pool.fetch(grouped("unit_id"), *args)
    statuses = await pool.fetch(grouped("status", "sum(n)::int AS filed"), *args)
    return Statistics(
        [dict(r) for r in months], [dict(r) for r in categories], [dict(r) for r in units], [dict(r) for r in statuses]
    )


async def months_with_cases(pool: asyncpg.Pool) -> list[str]:
    return [
        r["month"]
        for r in await pool.fetch("SELECT month FROM stats_cells GROUP BY month HAVING sum(n) > 0 ORDER BY month DESC")
    ]


async def export_cases(pool: asyncpg.Pool, f: CaseFilter) -> AsyncIterator[list[dict[str, Any]]]:
    """Every matching case in filing order (without ``holds``), a chunk at a time, through one server-side cursor."""
    clause, args = _where(f, on_cells=False)
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        chunk: list[dict[str, Any]] = []
        async for row in conn.cursor(f"SELECT {_EXPORT} FROM cases {clause} ORDER BY filed_at, case_id", *args):
            chunk.append(dict(row))
            if len(chunk) >= 1000:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


@dataclass(frozen=True, slots=True)
class RequestFilter:
    """Open311 GET requests: ids override everything; otherwise categories, open/closed, and a filing window."""

    case_ids: tuple[str, ...] | None = None
    categories: tuple[str, ...] | None = None
    finished: bool | None = None  # True: closed, False: open, None: both
    filed_from: datetime | None = None
    filed_to: datetime | None = None
    limit: int = 1000
    offset: int = 0


async def find_requests(pool: asyncpg.Pool, f: RequestFilter) -> list[dict[str, Any]]:
    where: list[str] = []
    args: list[Any] = []

    def add(condition: str, value: Any) -> None:
        args.append(value)
        where.append(condition.replace("$?", f"${len(args)}"))

    if f.case_ids is not None:
        add("case_id = ANY($?::text[])", list(f.case_ids))
    else:
        if f.categories:
            add("category = ANY($?::text[])", list(f.categories))
        if f.finished is True:
            add("status = ANY($?::text[])", list(FINISHED))
        elif f.finished is False:
            add("NOT status = ANY($?::text[])", list(FINISHED))
        if f.filed_from is not None:
            add("filed_at >= $?", f.filed_from)
        if f.filed_to is not None:
            add("filed_at <= $?", f.filed_to)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = await pool.fetch(
        f"SELECT {_SELECT} FROM cases {clause} ORDER BY filed_at DESC, case_id "
        f"LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
        *args,
        f.limit,
        f.offset,
    )
    return [_case(r) for r in rows]


# ---------------------------------------------------------------------------- rankings


@dataclass(frozen=True, slots=True)
class Publication:
    """One published ranking, without its rows."""

    event_id: str
    period: str
    tier: str
    formula_version: str
    stream_version: int
    recorded_at: datetime
    result_hash: str


async def ranking_publications(pool: asyncpg.Pool) -> list[Publication]:
    """Every published ranking, latest period first, then tier, then newest publication first (a small table)."""
    rows = await pool.fetch(
        "SELECT event_id::text, period, tier, formula_version, stream_version, recorded_at, result_hash "
        "FROM rankings ORDER BY period DESC, tier DESC, stream_version DESC, recorded_at DESC"
    )
    return [Publication(*r) for r in rows]


async def ranking_document(pool: asyncpg.Pool, event_id: str) -> dict[str, Any]:
    """The RankingPublished payload of one publication, as published."""
    text = await pool.fetchval("SELECT document::text FROM rankings WHERE event_id = $1::uuid", event_id)
    document: dict[str, Any] = orjson.loads(text)
    return document
