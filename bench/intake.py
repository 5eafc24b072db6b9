"""Accepted complaints per second through intake's HTTP API, against a bare endpoint of the same framework.

    .venv/bin/python -m bench.intake [--seconds 10] [--rounds 3] [--connections 64] [--rate 1000] [--fixed-seconds 30]

Starts a durable PostgreSQL (fsync on) with infra/stack.py, intake-api as `rectify serve intake-api`
(one uvicorn process), and `bench/bare_app.py` on uvicorn (one process). wrk (Debian package) drives each
at full speed with the same body, intake then bare, for ``--rounds`` rounds: on a shared machine the load
moves between phases, so the ratio is taken per round and its median reported with the spread. Every
intake answer is a 202 whose submission was committed first. Beside the rates, the CPU time each server
process spent per request (from /proc), which moves much less with the machine's load. Then hey (Debian
package) sends a fixed rate to intake to read the p99 latency, after a checkpoint (so that the WAL goes into
recycled segments, as on a server that has run for a while), and the same rate to the bare endpoint: what the
machine itself allows at that moment. Meanwhile a thread times an 8 KiB fdatasync every 10 ms on PostgreSQL's disk:
what the disk allows a commit. Needs `apt-get install wrk hey`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import asyncpg
import httpx
from rich.console import Console
from rich.table import Table

from bench.results import Figure, record
from services.cli.local import REPO, LocalSystem, free_port, prepare_all, stack_module
from services.common.contracts import Role
from services.intake.admin import add_agency

console = Console()
BODY = {
    "category": "service_window",
    "unit_id": "meiwan",
    "description": "梅湾街道便民服务中心窗口工作人员上班时间玩手机，群众排队一小时无人办理。",
    "location": "梅湾街道便民服务中心",
    "severity": "general",
    "complainant": {"name": "张某某", "phone": "13800000000"},
}


def wrk_script(path: Path, key: str) -> Path:
    script = path / "post.lua"
    body = json.dumps(BODY, ensure_ascii=False).replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("STATUS non2xx=%d\\n", summary.errors.status))\n'
        "end\n",
        encoding="utf-8",
    )
    return script


def run_wrk(url: str, script: Path, seconds: int, connections: int) -> tuple[float, int, str]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = int(re.search(r"STATUS non2xx=(\d+)", out).group(1))  # type: ignore[union-attr]
    return rate, non2xx, out


def run_hey(url: str, key: str, rate: int, seconds: int, body_file: Path) -> tuple[dict[str, float], str]:
    workers = 50
    out = subprocess.run(
        [
            "hey",
            "-z",
            f"{seconds}s",
            "-c",
            str(workers),
            "-q",
            str(max(1, rate // workers)),
            "-m",
            "POST",
            "-T",
            "application/json",
            "-H",
            f"Authorization: Bearer {key}",
            "-D",
            str(body_file),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures = {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": 1000 * float(re.search(r"50%+ in ([\d.]+) secs", out).group(1)),  # type: ignore[union-attr]
        "p99_ms": 1000 * float(re.search(r"99%+ in ([\d.]+) secs", out).group(1)),  # type: ignore[union-attr]
    }
    return figures, out


class DiskProbe:
    """While a phase runs, a thread writes 8 KiB to a file in ``folder`` and fdatasyncs it every 10 ms: what the disk
    under PostgreSQL allows a commit at that moment, as the bare endpoint shows what the server allows. A durable
    commit cannot be faster than this; a stall here stalls every commit in flight."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "disk-probe"
        self.durations_ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="disk-probe", daemon=True)

    def _run(self) -> None:
        block = os.urandom(8192)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for n in itertools.count():
                if self._stop.wait(0.01):
                    return
                os.pwrite(fd, block, (n % 128) * 8192)
                began = time.perf_counter()
                os.fdatasync(fd)
                self.durations_ms.append(1000 * (time.perf_counter() - began))
        finally:
            os.close(fd)

    def __enter__(self) -> DiskProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def figures(self) -> dict[str, float]:
        ms = sorted(self.durations_ms) or [0.0]
        return {"p99_ms": ms[int(0.99 * (len(ms) - 1))], "max_ms": ms[-1], "over_50": sum(1 for d in ms if d >= 50)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_wrk(pid: int, url: str, script: Path, seconds: int, connections: int) -> tuple[float, int, float]:
    """(requests/s, non-2xx answers, server CPU microseconds per request)."""
    before = cpu_seconds(pid)
    rate, errors, _ = run_wrk(url, script, seconds, connections)
    return rate, errors, 1e6 * (cpu_seconds(pid) - before) / max(1.0, rate * seconds)


async def stored(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        n: int = await conn.fetchval("SELECT count(*) FROM intake.submissions")
        return n
    finally:
        await conn.close()


async def checkpoint(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="each full-speed phase")
    parser.add_argument(
        "--fixed-seconds",
        type=int,
        default=30,
        help="each fixed-rate phase: the p99 is the slowest 1%% of rate x seconds requests, and a disk stall delays"
        " every commit in flight at once, so a short phase makes the p99 hang on one or two such moments",
    )
    parser.add_argument("--rounds", type=int, default=3, help="intake then bare, this many times")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=int, default=1000)
    args = parser.parse_args()
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install -y wrk hey")

    work = Path(tempfile.mkdtemp(prefix="rectify-bench-intake-"))
    work.chmod(0o755)  # the postgres user must reach its data folder inside
    stack = stack_module()
    env = stack.start(work / "stack", durable=True)
    env["INTAKE_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
    env["LOG_LEVEL"] = "WARNING"
    system = LocalSystem(env, work / "logs")
    bare = None
    try:
        asyncio.run(prepare_all(env))
        key = asyncio.run(add_agency(env["DATABASE_URL"], "bench", "12345", Role.CHANNEL, "hotline_12345", rate=10**9))
        system.start("intake-api")
        system.wait_http("intake-api")
        bare_port = free_port()
        bare = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.bare_app:app",
                "--port",
                str(bare_port),
                "--log-level",
                "warning",
                "--no-access-log",  # as intake-api runs (services/intake/wiring.py): the same server settings
                "--no-proxy-headers",
            ],
            cwd=REPO,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.post(f"http://127.0.0.1:{bare_port}/v1/complaints", json=BODY)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        script = wrk_script(work, key)
        intake_url = f"{system.url('intake-api')}/v1/complaints"
        bare_url = f"http://127.0.0.1:{bare_port}/v1/complaints"
        intake_pid = system.running["intake-api"].popen.pid
        console.print("warming up ...")
        run_wrk(intake_url, script, 3, args.connections)
        run_wrk(bare_url, script, 3, args.connections)
        before = asyncio.run(stored(env["DATABASE_URL"]))
        rounds: list[tuple[tuple[float, int, float], tuple[float, int, float]]] = []
        for n in range(1, args.rounds + 1):
            console.print(f"round {n}/{args.rounds}: intake, then bare, at full speed for {args.seconds}s each ...")
            intake = timed_wrk(intake_pid, intake_url, script, args.seconds, args.connections)
            rounds.append((intake, timed_wrk(bare.pid, bare_url, script, args.seconds, args.connections)))
        after = asyncio.run(stored(env["DATABASE_URL"]))
        body_file = work / "body.json"
        body_file.write_text(json.dumps(BODY, ensure_ascii=False), encoding="utf-8")
        # A server that has run for a checkpoint interval writes its WAL into segments the last checkpoint
        # recycled. This cluster is a minute old and has not checkpointed, so each new 16 MiB segment would be
        # created and zero-filled while the WAL write lock is held, stalling every commit in flight for 40-95 ms
        # (about one segment every 5 s at this rate; docs/benchmarks.md). The checkpoint puts it in that state.
        asyncio.run(checkpoint(env["DATABASE_URL"]))
        console.print(f"intake at a fixed {args.rate}/s for {args.fixed_seconds}s ...")
        with DiskProbe(work) as probe:
            fixed, _ = run_hey(intake_url, key, args.rate, args.fixed_seconds, body_file)
        disk = probe.figures()
        console.print(f"bare endpoint at a fixed {args.rate}/s for {args.fixed_seconds}s ...")
        bare_fixed, _ = run_hey(bare_url, key, args.rate, args.fixed_seconds, body_file)
    finally:
        if bare is not None:
            bare.terminate()
            bare.wait(10)
        system.stop_all()
        stack.stop(work / "stack")
        shutil.rmtree(work, ignore_errors=True)

    table = Table(title=f"Intake over HTTP ({os.cpu_count()} cores, durable PostgreSQL, one uvicorn process each)")
    for col in ("round", "intake accepted/s", "bare requests/s", "ratio", "intake CPU/request", "bare CPU/request"):
        table.add_column(col, justify="right")
    for n, ((rate, _, cpu), (b_rate, _, bare_cpu)) in enumerate(rounds, 1):
        table.add_row(
            str(n),
            f"{rate:,.0f}",
            f"{b_rate:,.0f}",
            f"{rate / b_rate:.0%}",
            f"{cpu:.0f} µs",
            f"{bare_cpu:.0f} µs",
        )
    console.print(table)
    ratios = sorted(i[0] / b[0] for i, b in rounds)
    ratio = statistics.median(ratios)
    intake_rate = statistics.median(i[0] for i, _ in rounds)
    bare_rate = statistics.median(b[0] for _, b in rounds)
    cpu_ratio = statistics.median(b[2] for _, b in rounds) / statistics.median(i[2] for i, _ in rounds)
    errors = sum(i[1] for i, _ in rounds), sum(b[1] for _, b in rounds)
    console.print(
        f"submissions stored during the rounds: {after - before:,}; "
        f"non-2xx answers: intake {errors[0]}, bare {errors[1]}"
    )
    console.print(
        f"at a fixed {args.rate}/s: achieved {fixed['rate']:,.0f}/s, p50 {fixed['p50_ms']:.1f} ms, "
        f"p99 {fixed['p99_ms']:.1f} ms (goal < 50 ms); the bare endpoint: achieved {bare_fixed['rate']:,.0f}/s, "
        f"p50 {bare_fixed['p50_ms']:.1f} ms, p99 {bare_fixed['p99_ms']:.1f} ms; the disk meanwhile (8 KiB fdatasync "
        f"every 10 ms): p99 {disk['p99_ms']:.1f} ms, max {disk['max_ms']:.1f} ms, {disk['over_50']:.0f} over 50 ms"
    )
    bare_name = "bare endpoint, same framework and server"
    p99_ok = fixed["p99_ms"] < 50 and fixed["rate"] >= 0.95 * args.rate and not errors[0]
    record(
        "intake",
        [
            Figure(
                f"accepted complaints (median round; median per-round ratio {ratio:.2f})",
                intake_rate,
                "/s",
                ">= 0.50x bare",
                ratio >= 0.5,
                bare_rate,
                bare_name,
            ),
            Figure(f"p99 at a fixed {args.rate}/s", fixed["p99_ms"], "ms", "< 50 ms", p99_ok),
            Figure(f"bare p99 at a fixed {args.rate}/s", bare_fixed["p99_ms"], "ms", "", None),
            Figure("disk: longest 8 KiB fdatasync meanwhile", disk["max_ms"], "ms", "", None),
        ],
        {"rounds": rounds, "cpu_ratio": cpu_ratio, "bare": bare_name, "disk": disk},
    )
    print(
        f"intake {intake_rate:,.0f}/s vs bare {bare_rate:,.0f}/s = {ratio:.0%}"
        f" (per round {ratios[0]:.0%}..{ratios[-1]:.0%}; CPU per request {cpu_ratio:.0%}; goal >= 50%);"
        f" p99 {fixed['p99_ms']:.1f} ms at {fixed['rate']:,.0f}/s"
        f" (goal < 50 ms at {args.rate}/s; bare p99 {bare_fixed['p99_ms']:.1f} ms;"
        f" disk fdatasync max {disk['max_ms']:.0f} ms)"
    )


if __name__ == "__main__":
    main()
