"""A faust agent against a bare aiokafka batch consumer, on the same events, in one run.

    .venv/bin/python -m bench.faust_bare --events 100000

One broker and one durable PostgreSQL (infra/stack.py); a simulated log of case events (``bench.scoring.the_log``)
produced once to a fresh 4-partition topic; then, alternating, each consumer reads the whole topic from the start
in a group of its own and applies every poll with the same batched upsert in one transaction
(``bench.scoring._bare_batch``: decode, dedup ids, a counter per case, offsets):

- faust: an agent as the services run it (``services.common.worker.make_app``, ``stream.take_events`` with the
  services' batch size and window), in a worker process of its own, as ``rectify serve`` runs one;
- bare: ``bench.scoring.run_bare``: ``getmany`` and a manual commit after PostgreSQL's.

Each is timed from its first batch to its last commit; CPU seconds of the consuming process over the same span
give the cost per event, which the load on a shared machine moves much less than the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from services.cli.local import REPO, stack_module
from services.common.settings import Settings

BATCH = 2000


@dataclass(frozen=True)
class _TP:
    topic: str
    partition: int


@dataclass(frozen=True)
class _Rec:
    offset: int
    value: bytes


def child(topic: str, count: int, dsn: str, bootstrap: str, out: Path, datadir: str) -> None:
    """The faust worker: an agent that applies each batch of events with the bare upsert."""
    from bench.scoring import BARE_TABLES, _bare_batch
    from services.common.worker import make_app, run_worker

    settings = Settings(
        kafka_bootstrap_servers=bootstrap,
        database_url=dsn,
        kafka_session_timeout_ms=6000,
        consumer_batch_size=BATCH,
        faust_data_dir=datadir,
    )
    app = make_app(f"bench-faust-{uuid.uuid4().hex[:8]}", settings)
    source = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    async def apply(stream: Any) -> None:
        conn = await asyncpg.connect(dsn)
        await conn.execute("DROP SCHEMA IF EXISTS faust CASCADE; CREATE SCHEMA faust; SET search_path TO faust;")
        await conn.execute(BARE_TABLES)
        done, first, cpu0 = 0, 0.0, 0.0
        async for events in stream.take_events(settings.consumer_batch_size, within=settings.consumer_batch_window_s):
            if not first:
                first, cpu0 = time.perf_counter(), time.process_time()
            polled: dict[_TP, list[_Rec]] = {}
            for e in events:
                polled.setdefault(_TP(e.message.topic, e.message.partition), []).append(
                    _Rec(e.message.offset, e.message.value)
                )
            done += await _bare_batch(conn, polled)
            if done >= count:
                seconds, cpu = time.perf_counter() - first, time.process_time() - cpu0
                total = await conn.fetchval("SELECT sum(events) FROM per_case")
                result = {"events": done, "seconds": seconds, "cpu": cpu, "applied": total}
                await asyncio.to_thread(out.write_text, json.dumps(result))
                await conn.close()
                os.kill(os.getpid(), signal.SIGTERM)
                return

    app.agent(source, name=f"{app.conf.id}.apply")(apply)
    sys.argv = [sys.argv[0], "worker"]
    run_worker(app, "warning")


def run_faust(env: dict[str, str], topic: str, count: int, work: Path) -> dict[str, float]:
    out = work / f"faust-{uuid.uuid4().hex[:6]}.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.faust_bare", "--child", topic, str(count), env["DATABASE_URL"],
         env["KAFKA_BOOTSTRAP_SERVERS"], str(out), str(work / "faust-data")],
        cwd=REPO,
        stdout=(work / "faust.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while not out.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the faust worker ended without a result; see {work / 'faust.log'}")
            time.sleep(0.2)
        result: dict[str, float] = json.loads(out.read_text())
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    if result["applied"] != count:
        raise RuntimeError(f"faust applied {result['applied']} of {count} events")
    return result


async def run_bare_timed(settings: Settings, topic: str, count: int) -> dict[str, float]:
    from bench.scoring import run_bare

    cpu0, started = time.process_time(), time.perf_counter()
    rate, _ = await run_bare(settings, topic, count, BATCH)  # (events/s, µs CPU per event from its first poll)
    # run_bare times from its first poll; the CPU here includes the group join, a small overestimate
    return {
        "events": count,
        "seconds": count / rate,
        "cpu": time.process_time() - cpu0,
        "wall": time.perf_counter() - started,
    }


def run(events: int, rounds: int = 2, durable: bool = True) -> dict[str, Any]:
    from bench.scoring import produce

    work = Path(tempfile.mkdtemp(prefix="rectify-bench-faust-"))
    work.chmod(0o755)
    stack = stack_module()
    env = stack.start(work / "stack", durable=durable)
    try:
        settings = Settings(
            kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
            database_url=env["DATABASE_URL"],
            kafka_session_timeout_ms=6000,
        )
        topic = f"bench.faust.{uuid.uuid4().hex[:8]}"
        asyncio.run(produce(settings.kafka_bootstrap_servers, topic, events))
        faust_runs, bare_runs = [], []
        for _ in range(rounds):
            bare_runs.append(asyncio.run(run_bare_timed(settings, topic, events)))
            faust_runs.append(run_faust(env, topic, events, work))
    finally:
        stack.stop(work / "stack")
        shutil.rmtree(work, ignore_errors=True)
    best_faust = min(faust_runs, key=lambda r: r["seconds"])
    best_bare = min(bare_runs, key=lambda r: r["seconds"])
    return {
        "events": events,
        "faust_events_per_s": events / best_faust["seconds"],
        "bare_events_per_s": events / best_bare["seconds"],
        "faust_cpu_us_per_event": 1e6 * min(r["cpu"] for r in faust_runs) / events,
        "bare_cpu_us_per_event": 1e6 * min(r["cpu"] for r in bare_runs) / events,
        "rounds": {"faust": faust_runs, "bare": bare_runs},
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        topic, count, dsn, bootstrap, out, datadir = argv[1:7]
        child(topic, int(count), dsn, bootstrap, Path(out), datadir)
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    r = run(args.events, args.rounds)
    print(
        f"faust {r['faust_events_per_s']:,.0f} events/s ({r['faust_cpu_us_per_event']:.0f} µs CPU/event), "
        f"bare {r['bare_events_per_s']:,.0f} events/s ({r['bare_cpu_us_per_event']:.0f} µs CPU/event), "
        f"ratio {r['faust_events_per_s'] / r['bare_events_per_s']:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
