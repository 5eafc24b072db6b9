"""The operator's inspection commands: outboxes, dead letters, benchmarks, and stopping a local run.

rectify outbox [--service S]                     backlog, oldest unpublished row, counts per topic
rectify dlq list [--service S] [--all]           dead letters with code, reason, source topic and offset
rectify dlq redrive --service S (--id N | --all) re-publish dead letters to their source topic
rectify bench [NAME]                             run the benchmarks in bench/; their last lines and figures
rectify down                                     stop what a `rectify up` in another terminal started

The operator's command line reads (and, to re-drive, writes) the services' own tables in PostgreSQL directly:
each service's ``outbox`` and ``dead_letters`` tables in its schema. Nothing else may touch another service's
schema. A re-drive inserts the original bytes into that service's outbox, addressed to the source topic, in the
same transaction that stamps ``redriven_at``; the service's relay publishes it and its consumer applies it
(the inbox ignores it if it had been applied after all).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import orjson
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from services.cli.processes import PROCESSES

REPO = Path(__file__).resolve().parents[2]
SERVICES = sorted({p.schema for p in PROCESSES.values()})
STATE_FILE = REPO / ".rectify" / "up.json"
BENCHMARKS = ("commands", "intake", "scoring", "publicity", "e2e")
BENCH_RESULTS = REPO / ".rectify" / "bench"  # a benchmark may leave <name>.json here: figures for the table
console = Console()
dlq_app = typer.Typer(no_args_is_help=True, add_completion=False, help="List and re-drive dead letters.")

ServiceOpt = Annotated[str | None, typer.Option("--service", help=f"one of: {', '.join(SERVICES)} (default: all)")]


def _dsn() -> str:
    from services.common.settings import get_settings

    return get_settings().database_url


def _services(service: str | None) -> list[str]:
    if service is None:
        return SERVICES
    if service not in SERVICES:
        console.print(f"[red]unknown service {service!r}[/red]; choose one of: {', '.join(SERVICES)}")
        raise typer.Exit(2)
    return [service]


async def _schema_exists(conn: asyncpg.Connection, schema: str, table: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.{table}"))


# ------------------------------------------------------------------------------------------------- outbox


async def outbox_report(dsn: str, services: list[str]) -> list[dict[str, Any]]:
    """Per service and topic: unpublished rows, the oldest unpublished row's age, rows published in all."""
    conn = await asyncpg.connect(dsn)
    try:
        rows: list[dict[str, Any]] = []
        for schema in services:
            if not await _schema_exists(conn, schema, "outbox"):
                continue
            for r in await conn.fetch(
                f"SELECT topic, count(*) FILTER (WHERE published_at IS NULL) AS backlog,"
                f" count(*) FILTER (WHERE published_at IS NOT NULL) AS published,"
                f" min(created_at) FILTER (WHERE published_at IS NULL) AS oldest,"
                f" now() - min(created_at) FILTER (WHERE published_at IS NULL) AS age"
                f" FROM {schema}.outbox GROUP BY topic ORDER BY topic"
            ):
                rows.append({"service": schema, **dict(r)})
        return rows
    finally:
        await conn.close()


def outbox(service: ServiceOpt = None) -> None:
    """Show each service's outbox: unpublished backlog, oldest unpublished row and rows published, per topic."""
    rows = asyncio.run(outbox_report(_dsn(), _services(service)))
    table = Table(title="outbox")
    for column in ("service", "topic", "backlog", "oldest unpublished", "published"):
        table.add_column(column)
    for r in rows:
        oldest = f"{r['oldest']:%Y-%m-%d %H:%M:%S} ({int(r['age'].total_seconds())} s ago)" if r["oldest"] else "—"
        style = "[yellow]" if r["backlog"] else ""
        table.add_row(r["service"], r["topic"], f"{style}{r['backlog']}", oldest, str(r["published"]))
    console.print(table if rows else "no outbox rows")
    console.print(f"backlog in all: {sum(r['backlog'] for r in rows)}")


# ---------------------------------------------------------------------------------------------------- dlq


async def list_dead_letters(dsn: str, services: list[str], include_redriven: bool = False) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows: list[dict[str, Any]] = []
        for schema in services:
            if not await _schema_exists(conn, schema, "dead_letters"):
                continue
            where = "" if include_redriven else "WHERE redriven_at IS NULL"
            for r in await conn.fetch(
                f"SELECT id, topic, kafka_partition, kafka_offset, code, reason, created_at, redriven_at,"
                f" length(value) AS bytes FROM {schema}.dead_letters {where} ORDER BY id"
            ):
                rows.append({"service": schema, **dict(r)})
        return rows
    finally:
        await conn.close()


async def redrive(dsn: str, schema: str, ids: list[int] | None) -> list[int]:
    """Re-publish dead letters (``ids``, or every one not yet re-driven) to their source topic via the outbox."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            rows = await conn.fetch(
                f"SELECT id, topic, key, value FROM {schema}.dead_letters WHERE redriven_at IS NULL"
                + (" AND id = ANY($1::bigint[])" if ids is not None else "")
                + " ORDER BY id FOR UPDATE",
                *([ids] if ids is not None else []),
            )
            for r in rows:
                headers = {"x-redriven-from-dead-letter": r["id"]}
                await conn.execute(
                    f"INSERT INTO {schema}.outbox (topic, key, value, headers) VALUES ($1, $2, $3, $4)",
                    r["topic"],
                    r["key"] or "",
                    r["value"],
                    orjson.dumps(headers).decode(),
                )
            done = [r["id"] for r in rows]
            await conn.execute(
                f"UPDATE {schema}.dead_letters SET redriven_at = now() WHERE id = ANY($1::bigint[])", done
            )
            return done
    finally:
        await conn.close()


@dlq_app.command("list")
def dlq_list(
    service: ServiceOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="include dead letters already re-driven")] = False,
) -> None:
    """List dead letters: service, id, source topic/partition/offset, code and reason."""
    rows = asyncio.run(list_dead_letters(_dsn(), _services(service), all_))
    table = Table(title="dead letters")
    for column in ("service", "id", "topic", "partition", "offset", "code", "reason", "at", "re-driven"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["service"],
            str(r["id"]),
            r["topic"],
            str(r["kafka_partition"]),
            str(r["kafka_offset"]),
            r["code"],
            r["reason"][:80],
            f"{r['created_at']:%Y-%m-%d %H:%M:%S}",
            f"{r['redriven_at']:%Y-%m-%d %H:%M:%S}" if r["redriven_at"] else "",
        )
    console.print(table if rows else "no dead letters")


@dlq_app.command("redrive")
def dlq_redrive(
    service: Annotated[str, typer.Option("--service", help=f"one of: {', '.join(SERVICES)}")],
    id_: Annotated[list[int] | None, typer.Option("--id", help="a dead letter's id (repeatable)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every dead letter of the service not yet re-driven")] = False,
) -> None:
    """Re-publish dead letters to their source topic through the service's outbox; fix the cause first."""
    _services(service)
    if bool(id_) == all_:
        console.print("[red]give --id N (one or more) or --all[/red]")
        raise typer.Exit(2)
    done = asyncio.run(redrive(_dsn(), service, None if all_ else list(id_ or [])))
    console.print(f"re-driven {len(done)} dead letter(s): {', '.join(map(str, done)) or 'none'}")


# -------------------------------------------------------------------------------------------------- bench


def bench(
    name: Annotated[
        str | None, typer.Argument(help=f"one of: {', '.join(BENCHMARKS)} (default: all that exist)")
    ] = None,
) -> None:
    """Run the benchmarks in bench/ one after another; print each one's last line in a table, then every figure a
    benchmark wrote to .rectify/bench/NAME.json with its goal and its ratio to the bare baseline of the same run."""
    names = [n for n in BENCHMARKS if (REPO / "bench" / f"{n}.py").exists()]
    if name is not None:
        if name not in names:
            console.print(f"[red]no benchmark {name!r}[/red]; choose one of: {', '.join(names)}")
            raise typer.Exit(2)
        names = [name]
    results: list[tuple[str, int, str, float]] = []
    figures: list[tuple[str, dict[str, Any]]] = []
    with Progress(console=console) as progress:
        task = progress.add_task("benchmarks", total=len(names))
        for n in names:
            progress.update(task, description=f"bench.{n}")
            started = time.monotonic()
            done = subprocess.run([sys.executable, "-m", f"bench.{n}"], cwd=REPO, capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.strip()] or done.stderr.splitlines() or [""]
            results.append((n, done.returncode, lines[-1].strip(), time.monotonic() - started))
            figures += [
                (n, f)
                for f in bench_figures(BENCH_RESULTS / f"{n}.json", since=time.time() - (time.monotonic() - started))
            ]
            progress.advance(task)
    table = Table(title="benchmarks")
    for column in ("benchmark", "exit", "seconds", "last line"):
        table.add_column(column)
    for n, rc, last, seconds in results:
        table.add_row(f"bench.{n}", str(rc) if rc == 0 else f"[red]{rc}[/red]", f"{seconds:.0f}", last)
    console.print(table)
    if figures:
        console.print(figure_table(figures))
    if any(rc for _, rc, _, _ in results):
        raise typer.Exit(1)


def bench_figures(path: Path, since: float) -> list[dict[str, Any]]:
    """The figures a benchmark wrote during this run (an older file is a previous run's, and is not shown)."""
    if not path.exists() or path.stat().st_mtime < since:
        return []
    figures: list[dict[str, Any]] = json.loads(path.read_text()).get("figures", [])
    return figures


def figure_table(figures: list[tuple[str, dict[str, Any]]]) -> Table:
    table = Table(title="figures, goals and the bare baseline measured in the same run")
    for column in ("benchmark", "figure", "value", "goal", "met", "bare baseline", "ratio"):
        table.add_column(column)
    for n, f in figures:
        met = "" if f.get("ok") is None else ("yes" if f["ok"] else "[red]no[/red]")
        baseline = f"{f['baseline']:,.1f} ({f.get('baseline_name', '')})" if f.get("baseline") else ""
        ratio = f"{f['ratio']:.2f}x" if f.get("ratio") else ""
        table.add_row(
            f"bench.{n}", f["name"], f"{f['value']:,.1f} {f['unit']}", f.get("goal", ""), met, baseline, ratio
        )
    return table


# --------------------------------------------------------------------------------------------------- down


def record_up(state_dir: Path, pids: dict[str, int], stack_dir: Path | None, up_pid: int) -> Path:
    """What `rectify up` started, for `rectify down`: its own PID, each process's PID and the stack folder."""
    path = state_dir / "up.json"
    state_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"up": up_pid, "processes": pids, "stack": str(stack_dir) if stack_dir else None}))
    return path


def stop_recorded(path: Path, timeout: float = 20.0) -> list[str]:
    """Stop exactly the PIDs in ``path``: the `up` command first (it stops its own children and servers), then any
    process still alive; the broker and PostgreSQL through infra/stack.py if they are still running."""
    from services.cli.local import stack_module

    stack = stack_module()
    _alive = stack.pid_alive
    state = json.loads(path.read_text())
    stopped: list[str] = []
    up_pid = int(state.get("up") or 0)
    if up_pid and _alive(up_pid):
        os.kill(up_pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(up_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        stopped.append(f"rectify up ({up_pid})")
    for name, pid in (state.get("processes") or {}).items():
        if _alive(int(pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
            stopped.append(f"{name} ({pid})")
    if state.get("stack") and Path(state["stack"]).exists():
        with contextlib.suppress(Exception):
            stack.stop(Path(state["stack"]))
    path.unlink(missing_ok=True)
    return stopped


def down(
    state_dir: Annotated[Path, typer.Option(help="the state folder `rectify up` used")] = REPO / ".rectify",
) -> None:
    """Stop what a `rectify up` started (in another terminal), by the PIDs it recorded in .rectify/up.json."""
    path = state_dir / "up.json"
    if not path.exists():
        console.print(f"nothing to stop: {path} does not exist (no `rectify up` running from this folder)")
        return
    stopped = stop_recorded(path)
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "everything had already stopped")
