"""Accepted complaints per second through intake's HTTP API, against a bare endpoint of the same framework.

    .venv/bin/python -m bench.intake [--seconds 10] [--connections 64] [--rate 1000]

Starts a durable PostgreSQL (fsync on) with infra/stack.py, intake-api as `rectify serve intake-api`
(one uvicorn process), and `bench/bare_app.py` on uvicorn. wrk (Debian package) drives each at full
speed with the same body; every intake answer is a 202 whose submission was committed first. Then hey
(Debian package) sends a fixed rate to intake to read the p99 latency. Needs `apt-get install wrk hey`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
from rich.console import Console
from rich.table import Table

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


async def stored(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        n: int = await conn.fetchval("SELECT count(*) FROM intake.submissions")
        return n
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
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
            [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--port", str(bare_port), "--log-level", "warning"],
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
        console.print("warming up ...")
        run_wrk(intake_url, script, 3, args.connections)
        before = asyncio.run(stored(env["DATABASE_URL"]))
        console.print(f"intake at full speed for {args.seconds}s ...")
        intake_rate, intake_errors, _ = run_wrk(intake_url, script, args.seconds, args.connections)
        after = asyncio.run(stored(env["DATABASE_URL"]))
        console.print(f"bare endpoint at full speed for {args.seconds}s ...")
        bare_rate, bare_errors, _ = run_wrk(
            f"http://127.0.0.1:{bare_port}/v1/complaints", script, args.seconds, args.connections
        )
        body_file = work / "body.json"
        body_file.write_text(json.dumps(BODY, ensure_ascii=False), encoding="utf-8")
        console.print(f"intake at a fixed {args.rate}/s for {args.seconds}s ...")
        fixed, _ = run_hey(intake_url, key, args.rate, args.seconds, body_file)
    finally:
        if bare is not None:
            bare.terminate()
            bare.wait(10)
        system.stop_all()
        stack.stop(work / "stack")
        shutil.rmtree(work, ignore_errors=True)

    table = Table(title=f"Intake over HTTP ({os.cpu_count()} cores, durable PostgreSQL, one uvicorn process)")
    for col in ("figure", "value", "goal"):
        table.add_column(col)
    ratio = intake_rate / bare_rate
    table.add_row("intake: accepted complaints/s (202, committed)", f"{intake_rate:,.0f}", "")
    table.add_row("  submissions stored during that run", f"{after - before:,}", "")
    table.add_row("  non-2xx answers", str(intake_errors), "0")
    table.add_row("bare FastAPI endpoint: requests/s", f"{bare_rate:,.0f}", "")
    table.add_row("  non-2xx answers", str(bare_errors), "0")
    table.add_row("ratio intake / bare", f"{ratio:.0%}", ">= 50%")
    table.add_row(f"intake at {args.rate}/s: achieved rate", f"{fixed['rate']:,.0f}/s", "")
    table.add_row(f"intake at {args.rate}/s: p50", f"{fixed['p50_ms']:.1f} ms", "")
    table.add_row(f"intake at {args.rate}/s: p99", f"{fixed['p99_ms']:.1f} ms", "< 50 ms")
    console.print(table)
    print(
        f"intake {intake_rate:,.0f}/s vs bare {bare_rate:,.0f}/s = {ratio:.0%} (goal >= 50%); "
        f"p99 {fixed['p99_ms']:.1f} ms at {fixed['rate']:,.0f}/s (goal < 50 ms at {args.rate}/s)"
    )


if __name__ == "__main__":
    main()
