"""End to end (issue 9): the whole system on this machine, from filing to the public JSON API.

    .venv/bin/python -m bench.e2e                    # the full run (see bench/README.md for how long it takes)
    .venv/bin/python -m bench.e2e --quick            # a check of the harness: short steps, 10k history only
    .venv/bin/python -m bench.e2e --only latency,rebuild --seconds 20
    .venv/bin/python -m bench.e2e --sizes 10000,100000,1000000

Every part starts the broker (tansu), a durable PostgreSQL and every service process as ``rectify up`` does
(``bench/system.py`` reuses ``services.cli.local``), on free ports, and stops them by PID.

- **latency**: open-loop filing at 50, 200 and 1,000 complaints/s (``bench/load.py``); p50, p99 and max of the
  time from intake's 202 to the case being listed by the public JSON API; intake's own p99 from the scheduled
  send; the time per hop from the services' own timestamps; one broker hop per consumer fetch wait
  (``bench/broker_hop.py``). The bare baseline is the same generator against a bare FastAPI endpoint
  (``bench/bare_app.py``).
- **throughput**: rate steps until one leaves a queue growing (everything sent and not yet public grows over the
  step's second half faster than 5 % of the rate, or intake answers fewer than 95 % on time); CPU per process
  from ``/proc`` and a py-spy profile of every service process on every step; the bottleneck is the busiest
  process of the first step that failed, with its hottest functions (or the machine, when other processes than
  this system's took most of its CPU).
- **scale**: per history size, a month of cases simulated by the real decider is written through the real
  writers (rectification's event store ``PostgresEventStore.append``; the publicity projection's
  ``apply_public_facts``/``apply_rankings``, as bench/publicity.py loads it) and copied inside PostgreSQL to
  the size; then the end-to-end p99 at 200/s, the p99 of the public pages (wrk: leaderboard and a random case
  page), each process's resident memory and PostgreSQL's bytes per case.
- **rebuild**: every projection that has a rebuild function (``REBUILDS``) replays the log of the latency run
  into a shadow schema and compares it with the live one; records per second.
- **faust vs bare**: ``bench/faust_bare.py`` in the same run.

The result goes to ``.rectify/bench/e2e.json`` (figures, goals, baselines) for ``rectify bench``'s table; the last
line printed summarises it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console
from rich.table import Table

from bench import broker_hop, load
from bench.results import RESULTS, Figure
from bench.results import save as save_figures
from bench.system import BenchSystem, CpuMeter, rss_mib, whole_system
from services.cli.local import REPO, free_port
from services.common.settings import Settings

console = Console(width=150)
PAGE_ROUNDS = 3  # wrk runs per public page and history size; the median p99 is the figure
PARTS = ("latency", "throughput", "scale", "rebuild", "faust")


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        console.print(
            f"  {figure.name}: {figure.value:,.1f} {figure.unit}" + (f" (goal {figure.goal})" if figure.goal else "")
        )


# ------------------------------------------------------------------------------------------- the bare endpoint


@contextlib.contextmanager
def bare_endpoint(log: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--port", str(port), "--log-level", "warning"],
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/v1/complaints"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(url, content=load.BODY)
                break
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


# --------------------------------------------------------------------------------------------------- latency


def run(
    system: BenchSystem, rate: float, seconds: float, drain_s: float = 30.0, sent: Callable[[], None] | None = None
) -> load.Tally:
    return asyncio.run(load.run_rate(system.intake(), system.public(), system.key, rate, seconds, drain_s, sent))


LATE_MS = 100.0  # a generator further behind its own schedule than this was starved of CPU: the run says so


def summarise(tally: load.Tally, rate: float, seconds: float) -> dict[str, Any]:
    visible = load.percentiles(tally.visible_ms())
    intake = load.percentiles(tally.intake_ms)
    if tally.late_s * 1000 > LATE_MS:
        console.print(
            f"[yellow]the load generator fell {tally.late_s:.1f} s behind its schedule at {rate:.0f}/s: this machine "
            "could not run it on time; the latencies include that[/yellow]"
        )
    return {
        "rate": rate,
        "seconds": seconds,
        "sent": tally.scheduled,
        "accepted": len(tally.accepted),
        "errors": tally.errors,
        "never_public": len(tally.pending),
        "watch_errors": tally.watch_errors,
        "generator_late_ms": tally.late_s * 1000,
        "visible_ms": visible,
        "intake_ms": intake,
    }


HOPS = """
WITH filed AS (
    SELECT key AS case_id, created_at AS intake_tx, published_at AS intake_sent
    FROM intake.outbox WHERE created_at >= $1 AND topic = 'rectify.intake.commands.v1'
), decided AS (
    SELECT f.*, e.recorded_at AS decided FROM filed f JOIN rectification.events e
    ON e.stream_id = f.case_id AND e.stream_version = 1
), public AS (
    SELECT d.*, o.created_at AS public_tx, o.published_at AS public_sent,
        (convert_from(o.value, 'UTF8')::jsonb ->> 'event_id')::uuid AS fact_id
    FROM decided d JOIN rectification.outbox o ON o.key = d.case_id AND o.topic = 'rectify.public.cases.v1'
), applied AS (
    SELECT p.*, m.processed_at AS projected
    FROM public p JOIN publicity.processed_messages m ON m.message_id = p.fact_id
)
SELECT
    percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM intake_sent - intake_tx))
        AS intake_relay,
    percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM decided - intake_sent)) AS to_decided,
    percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM public_sent - public_tx))
        AS rectification_relay,
    percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM projected - public_sent))
        AS to_projected,
    count(*) AS cases
FROM (SELECT DISTINCT ON (case_id) * FROM applied ORDER BY case_id, public_tx) first_fact
"""


async def hops(dsn: str, since: datetime) -> dict[str, Any]:
    """Where the time goes, per hop, from the services' own timestamps (transaction starts and relay stamps), for the
    cases filed since ``since``: p50 and p99 in ms of intake's relay, the hop to rectification's decision, its relay
    and the hop to the publicity projection's transaction. The rest of 202→public is commit, the web's read and
    the watcher's sweep."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(HOPS, since)
    finally:
        await conn.close()
    out: dict[str, Any] = {"cases": row["cases"]}
    for name in ("intake_relay", "to_decided", "rectification_relay", "to_projected"):
        values = row[name] or [float("nan"), float("nan")]
        out[name] = {"p50": values[0] * 1000, "p99": values[1] * 1000}
    return out


def warm_up(system: BenchSystem) -> None:
    """A few cases through the whole path, so every consumer has joined its group before anything is timed."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        tally = run(system, 20, 1, drain_s=15)
        if tally.accepted and not tally.pending:
            return
        system.local.assert_alive()
    raise RuntimeError("the system did not make warm-up cases public within 120 s")


def latency(system: BenchSystem, rates: list[float], seconds: float, work: Path, report: Report) -> None:
    console.rule("latency: intake's 202 to the public JSON API")
    rows = []
    with bare_endpoint(work / "bare.log") as bare_url:
        for rate in rates:
            since = datetime.now(UTC)
            tally = run(system, rate, seconds)
            row = summarise(tally, rate, seconds)
            row["hops_ms"] = asyncio.run(hops(system.dsn, since))
            bare = asyncio.run(load.bare_rate(bare_url, rate, min(seconds, 10)))
            row["bare_http_ms"] = load.percentiles(bare.intake_ms)
            rows.append(row)
            v = row["visible_ms"]
            console.print(
                f"{rate:>6.0f}/s: 202→public p50 {v['p50']:.0f} ms, p99 {v['p99']:.0f} ms, max {v['max']:.0f} ms; "
                f"intake p99 {row['intake_ms']['p99']:.0f} ms (bare endpoint p99 {row['bare_http_ms']['p99']:.1f} ms);"
                f" {row['accepted']:,} accepted, {row['errors']} errors, {row['never_public']} never public"
            )
            console.print(
                "    hops p50/p99 ms: "
                + ", ".join(
                    f"{k} {h['p50']:.0f}/{h['p99']:.0f}" for k, h in row["hops_ms"].items() if isinstance(h, dict)
                )
            )
            complete = row["never_public"] == 0 and row["errors"] == 0
            report.add(
                Figure(
                    f"202→public p99 at {rate:.0f}/s",
                    v["p99"] if complete else float("inf"),
                    "ms",
                    "< 1000 ms" if rate == 200 else "",
                    (v["p99"] < 1000 and complete) if rate == 200 else None,
                    row["bare_http_ms"]["p99"],
                    "bare endpoint's HTTP p99, same generator and rate",
                )
            )
            for name in ("p50", "max"):
                report.add(Figure(f"202→public {name} at {rate:.0f}/s", v[name], "ms"))
    report.details["latency"] = rows
    # 1500: what faust's aiokafka driver hard-codes; 500: aiokafka's default (the bare consumers); 20: tuned
    hop = broker_hop.measure(system.env["KAFKA_BOOTSTRAP_SERVERS"], [1500, 500, 20], 15)
    report.details["broker_hop_ms"] = hop
    console.print(
        "one broker hop (produce → a waiting consumer has it): "
        + ", ".join(f"fetch_max_wait_ms={w} median {h['median_ms']:.0f} ms" for w, h in hop.items())
    )
    report.add(Figure("broker hop median, fetch_max_wait_ms=1500 (faust)", hop[1500]["median_ms"], "ms"))
    report.add(Figure("broker hop median, fetch_max_wait_ms=500 (aiokafka)", hop[500]["median_ms"], "ms"))
    report.add(Figure("broker hop median, fetch_max_wait_ms=20", hop[20]["median_ms"], "ms"))


# ------------------------------------------------------------------------------------------------ throughput


def growth_per_s(samples: list[tuple[float, int, int]]) -> float:
    """Slope of (sent − public) over the second half of a step's sending: how fast the queue grows, in cases per
    second (everything sent and not yet public: in intake, its outbox, the topics, the consumers)."""
    half = samples[len(samples) // 2 :]
    if len(half) < 3:
        return 0.0
    t = [s[0] - half[0][0] for s in half]
    backlog = [float(s[1] - s[2]) for s in half]
    return statistics.linear_regression(t, backlog).slope


def profile(pids: dict[str, int], seconds: int, folder: Path) -> dict[str, subprocess.Popen[bytes]]:
    """py-spy on each service process for ``seconds`` (sampling, non-blocking: the process is never paused)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    folder.mkdir(parents=True, exist_ok=True)
    return {
        name: subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(seconds),
                "--rate",
                "50",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(folder / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    }


def _function(frame: str) -> str:
    """``name (path/file.py:123)`` -> ``name (path/file.py)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def hottest(collapsed: Path, top: int = 6) -> dict[str, list[tuple[str, float]]]:
    """From py-spy's collapsed stacks: ``self``, the functions that were running (the leaf frame), and ``ours``,
    the project's functions (services/) by the share of samples they were on the stack, entry points left out."""
    own: dict[str, int] = {}
    ours: dict[str, int] = {}
    total = 0
    if not collapsed.exists():
        return {"self": [], "ours": []}
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = [_function(f) for f in stack.split(";")]
        total += int(n)
        own[frames[-1]] = own.get(frames[-1], 0) + int(n)
        for frame in set(frames):
            if "services/" in frame and not any(w in frame for w in ("wiring.py", "cli/main.py", "worker.py")):
                ours[frame] = ours.get(frame, 0) + int(n)

    def ranked(counts: dict[str, int]) -> list[tuple[str, float]]:
        return [(f, c / total) for f, c in sorted(counts.items(), key=lambda kv: -kv[1])[:top]]

    return {"self": ranked(own), "ours": ranked(ours)} if total else {"self": [], "ours": []}


def _stop_meter(meter: CpuMeter, into: dict[str, float]) -> None:
    into.update(meter.stop())


def throughput(system: BenchSystem, rates: list[float], seconds: float, work: Path, report: Report) -> None:
    console.rule("throughput: rate steps until a queue grows")
    steps = []
    sustained = 0.0
    failed: dict[str, Any] | None = None
    for rate in rates:
        meter = CpuMeter(lambda: system.all_pids() | {"load generator (bench)": [os.getpid()]})
        folder = work / f"py-spy-{rate:.0f}"
        spies = profile(system.service_pids(), max(2, int(seconds)), folder)
        meter.start()
        cpu: dict[str, float] = {}
        tally = run(system, rate, seconds, drain_s=60, sent=partial(_stop_meter, meter, cpu))
        for spy in spies.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(30)
        growth = growth_per_s(tally.samples_while_sending())
        on_time = sum(1 for ms in tally.intake_ms if ms < 1000) / max(1, tally.scheduled)
        ok = growth < max(5.0, 0.05 * rate) and on_time >= 0.95 and tally.errors == 0 and not tally.pending
        step = {
            "rate": rate,
            "growth_per_s": growth,
            "intake_on_time": on_time,
            "never_public": len(tally.pending),
            "errors": tally.errors,
            "cpu_cores": cpu,
            "metrics_after": system.metrics(),
            "visible_ms": load.percentiles(tally.visible_ms()),
            "hottest": {name: hottest(folder / f"{name}.txt") for name in spies},
            "sustained": ok,
        }
        steps.append(step)
        busy = ", ".join(f"{k} {v:.2f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if k != "machine")
        busy += f"; whole machine {cpu.get('machine', 0):.2f}"
        console.print(
            f"{rate:>6.0f}/s: queue grows {growth:+.1f}/s, intake on time {on_time:.1%}, "
            f"p99 {step['visible_ms']['p99']:.0f} ms, {'sustained' if ok else 'NOT sustained'}; CPU cores: {busy}"
        )
        if ok:
            sustained = rate
        else:
            failed = step
            break
    bottleneck_step = failed or steps[-1]
    cpu = dict(bottleneck_step["cpu_cores"])
    machine_used = cpu.pop("machine")
    busiest = max((k for k in cpu if k != "load generator (bench)"), key=lambda k: cpu[k])
    total = sum(cpu.values())
    profiled = max(bottleneck_step["hottest"], key=lambda k: cpu.get(k, 0.0))  # the busiest Python process
    cores = os.cpu_count() or 1
    if machine_used >= 0.9 * cores and total < 0.6 * machine_used:
        verdict = f"the machine: {machine_used:.2f} of {cores} cores busy, {total:.2f} of them this system's"
    else:
        verdict = f"{busiest} ({cpu[busiest]:.2f} of a core)"
    report.details["throughput"] = {
        "verdict": verdict,
        "steps": steps,
        "sustained": sustained,
        "bottleneck": busiest,
        "our_cpu_used": total,
        "machine_cpu_used": machine_used,
        "profiled": profiled,
        "hottest": bottleneck_step["hottest"].get(profiled, {"self": [], "ours": []}),
    }
    console.print(f"bottleneck at {bottleneck_step['rate']:.0f}/s: {verdict}")
    console.print(
        f"highest sustained rate {sustained:.0f}/s; at {bottleneck_step['rate']:.0f}/s the busiest process is "
        f"{busiest} ({cpu[busiest]:.2f} of a core); this run's processes used {total:.2f} cores, the whole machine "
        f"{machine_used:.2f} of {os.cpu_count()}"
    )
    for kind, frames in report.details["throughput"]["hottest"].items():
        console.print(f"  py-spy, {profiled}, {kind}:")
        for frame, share in frames:
            console.print(f"    {share:5.1%}  {frame}")
    with bare_endpoint(work / "bare-wrk.log") as bare_url:
        bare = bare_capacity(bare_url)
    report.add(Figure("highest sustained filing rate", sustained, "/s", "", None, bare, "bare endpoint, wrk, req/s"))


def bare_capacity(url: str, seconds: int = 5) -> float:
    """Requests per second of the bare endpoint at full speed (wrk), in the same run."""
    if shutil.which("wrk") is None:
        return float("nan")
    script = Path(tempfile.mkdtemp()) / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.body = [['
        + load.BODY.decode()
        + ']]\nwrk.headers["Content-Type"] = "application/json"\n',
        encoding="utf-8",
    )
    from bench.publicity import wrk

    return wrk(url, seconds, 32, script).rps


# ------------------------------------------------------------------------------------------------- rebuild


class Marks:
    """When a rebuild last reported progress: its replay is timed to there, not through the comparison after it."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.last = self.started

    def __call__(self, *_: object) -> None:
        self.last = time.perf_counter()

    @property
    def seconds(self) -> float:
        return self.last - self.started


async def _rebuild_scoring(settings: Settings) -> tuple[int, float, bool]:
    from services.scoring.wiring import rebuild_scoring

    marks = Marks()
    report = await rebuild_scoring(settings, idle_s=3, progress=marks)
    return report.events, marks.seconds, report.identical


async def _rebuild_rectification(settings: Settings) -> tuple[int, float, bool]:
    from services.rectification.rebuild import rebuild_rectification

    marks = Marks()
    report = await rebuild_rectification(settings.database_url, progress=marks)
    return report.events, marks.seconds, report.identical


async def _rebuild_intake(settings: Settings) -> tuple[int, float, bool]:
    from services.intake.rebuild import rebuild_intake

    marks = Marks()
    report = await rebuild_intake(settings.database_url, settings.kafka_bootstrap_servers, idle_s=3, progress=marks)
    return report.records, marks.seconds, report.identical


async def _rebuild_publicity(settings: Settings) -> tuple[int, float, bool]:
    from services.publicity import wiring

    marks = Marks()
    report = await wiring.rebuild_publicity(settings, idle_s=3, progress=marks)  # type: ignore[attr-defined]
    return report.facts + report.rankings, marks.seconds, report.identical


# projection -> replay its log into a fresh shadow copy through the service's own code and compare:
# (events applied, seconds until the last was applied, whether the copy equals the live projection).
# A projection whose rebuild does not exist (yet) in this tree is skipped, and said so.
REBUILDS: dict[str, Callable[[Settings], Awaitable[tuple[int, float, bool]]]] = {
    "rectification": _rebuild_rectification,
    "intake": _rebuild_intake,
    "scoring": _rebuild_scoring,
    "publicity": _rebuild_publicity,
}


def rebuild(system: BenchSystem, report: Report) -> None:
    console.rule("rebuild of every projection from the log")
    settings = Settings(kafka_bootstrap_servers=system.env["KAFKA_BOOTSTRAP_SERVERS"], database_url=system.dsn)
    rows: dict[str, Any] = {}
    for name, fn in REBUILDS.items():
        try:
            events, seconds, identical = asyncio.run(fn(settings))
        except (ImportError, AttributeError) as exc:
            console.print(f"{name}: no rebuild in this tree ({exc}); skipped")
            rows[name] = {"skipped": str(exc)}
            continue
        rows[name] = {"events": events, "seconds": seconds, "identical": identical}
        console.print(
            f"{name}: {events:,} in {seconds:.1f} s = {events / seconds:,.0f}/s; "
            + ("identical to the live projection" if identical else "[red]differs from the live projection[/red]")
        )
    report.details["rebuild"] = rows
    done = {n: r for n, r in rows.items() if "events" in r}
    events_all = sum(r["events"] for r in done.values())
    seconds_all = sum(r["seconds"] for r in done.values())
    if seconds_all:
        report.add(
            Figure(
                f"rebuild of {', '.join(done)}: events/s",
                events_all / seconds_all,
                "events/s",
                "identical",
                all(r["identical"] for r in done.values()),
            )
        )


# --------------------------------------------------------------------------------------------------- scale


async def load_history(dsn: str, size: int) -> dict[str, Any]:
    """``size`` cases of history in rectification's event store and in the publicity projection."""
    from bench import history

    return await history.load(dsn, size)


def page_p99(system: BenchSystem, case_ids: list[str], copies: int, seconds: int, work: Path) -> dict[str, float]:
    from bench.publicity import random_case_script, wrk

    if shutil.which("wrk") is None:
        return {}
    script = random_case_script(work, case_ids, copies)
    url = system.public()
    wrk(f"{url}/rankings", 1, 8)

    def median_p99(*args: Any) -> float:  # of PAGE_ROUNDS runs: one 10 s p99 at saturation moves by tens of percent
        return statistics.median(wrk(*args).p99_ms for _ in range(PAGE_ROUNDS))

    return {
        "leaderboard_p99_ms": median_p99(f"{url}/rankings", seconds, 8),
        "case_page_p99_ms": median_p99(f"{url}/", seconds, 8, script),
    }


async def db_size(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT n.nspname AS schema, sum(pg_total_relation_size(c.oid))::bigint AS bytes FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm') "
            "AND n.nspname IN ('intake', 'rectification', 'scoring', 'publicity') GROUP BY 1"
        )
        out = {r["schema"]: int(r["bytes"]) for r in rows}
        out["database"] = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
        out["cases"] = int(await conn.fetchval("SELECT count(*) FROM publicity.cases"))
        return out
    finally:
        await conn.close()


def scale(
    sizes: list[int],
    rate: float,
    seconds: float,
    page_s: int,
    durable: bool,
    work: Path,
    report: Report,
    pg: dict[str, str] | None = None,
) -> None:
    console.rule("scale: the same work on a growing history")
    rows = []
    for size in sizes:
        loaded: dict[str, Any] = {}

        def fill(env: dict[str, str], size: int = size, loaded: dict[str, Any] = loaded) -> None:
            started = time.perf_counter()
            loaded.update(asyncio.run(load_history(env["DATABASE_URL"], size)))
            loaded["load_s"] = time.perf_counter() - started
            console.print(f"history of {size:,} cases loaded in {loaded['load_s']:.0f} s")

        with whole_system(work / f"scale-{size}", durable=durable, before_start=fill, pg_settings=pg) as system:
            warm_up(system)
            since = datetime.now(UTC)
            tally = run(system, rate, seconds)
            row = summarise(tally, rate, seconds)
            row["hops_ms"] = asyncio.run(hops(system.dsn, since))
            row |= page_p99(system, loaded["case_ids"], loaded["copies"], page_s, work)
            row["rss_mib"] = {name: rss_mib(pid) for name, pid in system.service_pids().items()}
            sizes_now = asyncio.run(db_size(system.dsn))
            row["db_bytes"] = sizes_now
            row["bytes_per_case"] = sizes_now["database"] / max(1, sizes_now["cases"])
            row["history"] = size
        rows.append(row)
        console.print(
            f"{size:>9,} cases: 202→public p99 {row['visible_ms']['p99']:.0f} ms; leaderboard p99 "
            f"{row.get('leaderboard_p99_ms', float('nan')):.1f} ms, "
            f"case page p99 {row.get('case_page_p99_ms', float('nan')):.1f} ms; "
            f"RSS {', '.join(f'{k} {v:.0f}' for k, v in row['rss_mib'].items())} MiB; "
            f"{row['bytes_per_case']:,.0f} bytes per case"
        )
    report.details["scale"] = rows
    for row in rows:
        at = f"{row['history']:,} cases"
        report.add(Figure(f"{at}: 202→public p99 at {rate:.0f}/s", row["visible_ms"]["p99"], "ms"))
        report.add(Figure(f"{at}: case page p99", row.get("case_page_p99_ms", float("nan")), "ms"))
        report.add(Figure(f"{at}: leaderboard p99", row.get("leaderboard_p99_ms", float("nan")), "ms"))
        report.add(Figure(f"{at}: services' RSS, all six", sum(row["rss_mib"].values()), "MiB"))
        report.add(Figure(f"{at}: PostgreSQL bytes per case", row["bytes_per_case"], "B"))
    first, last = rows[0], rows[-1]
    if len(rows) > 1:
        for key, label in (
            (lambda r: r["visible_ms"]["p99"], "202→public p99"),
            (lambda r: r.get("case_page_p99_ms", float("nan")), "case page p99"),
            (lambda r: r.get("leaderboard_p99_ms", float("nan")), "leaderboard p99"),
            (lambda r: sum(r["rss_mib"].values()), "services' RSS"),
            (lambda r: r["bytes_per_case"], "PostgreSQL bytes per case"),
        ):
            grown = key(last) / key(first)
            report.add(
                Figure(
                    f"{label}: {last['history']:,} vs {first['history']:,} cases",
                    grown,
                    "x",
                    "<= 1.5x" if last["history"] >= 1_000_000 else "",
                    grown <= 1.5 if last["history"] >= 1_000_000 else None,
                )
            )


# ------------------------------------------------------------------------------------------------------ main


def faust_vs_bare(events: int, report: Report) -> None:
    from bench import faust_bare

    console.rule("faust agent vs bare aiokafka batch consumer, same events")
    result = faust_bare.run(events)
    report.details["faust"] = result
    report.add(
        Figure(
            "faust agent events/s (same batched upsert)",
            result["faust_events_per_s"],
            "events/s",
            "",
            None,
            result["bare_events_per_s"],
            "bare aiokafka getmany loop, same events",
        )
    )


def machine() -> str:
    mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    gib = int(mem.split()[1]) / 2**20
    load1, load5, _ = os.getloadavg()
    return f"{os.cpu_count()} cores, {gib:.0f} GiB; load average {load1:.1f}/{load5:.1f} at start"


def print_report(report: Report) -> None:
    table = Table(title=f"end to end — {report.details['machine']}")
    for column in ("figure", "value", "goal", "met", "bare baseline", "ratio"):
        table.add_column(column)
    for f in report.figures:
        table.add_row(
            f.name,
            f"{f.value:,.1f} {f.unit}",
            f.goal,
            "" if f.ok is None else ("yes" if f.ok else "[red]no[/red]"),
            f"{f.baseline:,.1f} ({f.baseline_name})" if f.baseline else "",
            f"{f.ratio:.2f}x" if f.ratio else "",
        )
    console.print(table)


def save(report: Report, path: Path) -> None:
    save_figures(report.figures, report.details, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts: {', '.join(PARTS)}")
    parser.add_argument("--rates", default="50,200,1000", help="latency: filing rates, per second")
    parser.add_argument("--seconds", type=float, default=30, help="latency: seconds of filing per rate")
    parser.add_argument("--steps", default="100,200,300,400,500,600,800,1000,1200,1500", help="throughput steps")
    parser.add_argument("--step-seconds", type=float, default=30, help="throughput: seconds per step")
    parser.add_argument("--sizes", default="10000,100000,1000000", help="scale: history sizes, in cases")
    parser.add_argument("--scale-seconds", type=float, default=30, help="scale: seconds of filing at 200/s")
    parser.add_argument("--page-seconds", type=int, default=10, help="scale: seconds of wrk per public page")
    parser.add_argument("--faust-events", type=int, default=100_000, help="faust vs bare: events consumed")
    parser.add_argument("--fast-pg", action="store_true", help="PostgreSQL without fsync, as the tests run it")
    parser.add_argument(
        "--shared-buffers",
        default="6GB",
        help="PostgreSQL's shared_buffers (default 6GB: a quarter of this 24 GiB machine, the usual sizing; the "
        "server's own default of 128MB leaves a large history to the OS page cache, which this virtual machine "
        "pages out after about a minute unused)",
    )
    parser.add_argument("--quick", action="store_true", help="check the harness: short runs, 10k history")
    parser.add_argument("--out", type=Path, default=RESULTS / "e2e.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.step_seconds, args.scale_seconds, args.page_seconds = 8, 8, 8, 3
        args.sizes, args.faust_events = "10000", 20_000
        args.steps = "50,200,600,1000"
    parts = set(args.only.split(","))
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    pg = {"shared_buffers": args.shared_buffers}
    report = Report(details={"machine": machine(), "args": vars(args) | {"out": str(args.out)}})
    console.print(report.details["machine"])
    work = Path(tempfile.mkdtemp(prefix="rectify-bench-e2e-"))
    work.chmod(0o755)  # the postgres user must reach its data folder inside
    started = time.perf_counter()
    try:
        if parts & {"latency", "throughput", "rebuild"}:
            with whole_system(work / "system", durable=not args.fast_pg, pg_settings=pg) as system:
                warm_up(system)
                if "latency" in parts:
                    latency(system, [float(r) for r in args.rates.split(",")], args.seconds, work, report)
                if "throughput" in parts:
                    throughput(system, [float(r) for r in args.steps.split(",")], args.step_seconds, work, report)
                if "rebuild" in parts:
                    rebuild(system, report)
        if "scale" in parts:
            sizes = [int(s) for s in args.sizes.split(",")]
            scale(sizes, 200, args.scale_seconds, args.page_seconds, not args.fast_pg, work, report, pg)
        if "faust" in parts:
            faust_vs_bare(args.faust_events, report)
    finally:
        report.details["seconds"] = time.perf_counter() - started
        report.details["load_after"] = os.getloadavg()
        save(report, args.out)
        shutil.rmtree(work, ignore_errors=True)
    print_report(report)
    console.print(f"took {report.details['seconds']:.0f} s; load average after {os.getloadavg()[0]:.1f}; {args.out}")
    met = [f for f in report.figures if f.ok is not None]
    print(
        f"e2e: {len(report.figures)} figures, goals met {sum(1 for f in met if f.ok)}/{len(met)}; "
        + "; ".join(f"{f.name} {f.value:,.0f} {f.unit}" for f in report.figures if f.goal or f.baseline)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
