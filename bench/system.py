"""The whole system for a benchmark: broker, PostgreSQL and every service process, as `rectify up` starts them.

Reuses ``services.cli.local`` (``LocalSystem``, ``prepare_all``, ``stack_module``) and ``PROCESSES``; adds what a
measurement needs on top: a filing key without a rate limit, the PIDs of PostgreSQL's and the broker's processes,
and readings from ``/proc`` (CPU seconds, resident memory) and from each process's ``/metrics``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from services.cli.local import LocalSystem, prepare_all, stack_module
from services.cli.processes import PROCESSES
from services.common.contracts import Role
from services.intake.admin import add_agency

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class BenchSystem:
    env: dict[str, str]
    local: LocalSystem
    stack_dir: Path
    key: str

    @property
    def dsn(self) -> str:
        return self.env["DATABASE_URL"]

    def intake(self) -> str:
        return self.local.url("intake-api")

    def public(self) -> str:
        return self.local.url("publicity-web")

    def service_pids(self) -> dict[str, int]:
        return {name: r.popen.pid for name, r in self.local.running.items()}

    def server_pids(self) -> dict[str, list[int]]:
        """PostgreSQL's postmaster and every backend it forked; the broker."""
        pids = json.loads((self.stack_dir / "pids.json").read_text())
        postmaster = int(pids["postgres"]["pid"])
        return {"postgresql": [postmaster, *children(postmaster)], "broker": [int(pids["broker"]["pid"])]}

    def all_pids(self) -> dict[str, list[int]]:
        return {name: [pid] for name, pid in self.service_pids().items()} | self.server_pids()

    def metrics(self) -> dict[str, float]:
        """Consumer lag and outbox backlog, summed per process, read from each process's Prometheus listener."""
        out: dict[str, float] = {}
        for name, r in self.local.running.items():
            with contextlib.suppress(httpx.HTTPError):
                text = httpx.get(f"http://127.0.0.1:{r.metrics_port}/metrics", timeout=2).text
                for family in text_string_to_metric_families(text):
                    if family.name in ("rectify_consumer_lag_events", "rectify_outbox_backlog"):
                        value = sum(s.value for s in family.samples)
                        out[f"{name}:{family.name.removeprefix('rectify_')}"] = value
        return out


def children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry.name))
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mib(pid: int) -> float:
    try:
        resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except OSError:
        return 0.0
    return resident * PAGE / 2**20


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy since boot (everything but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


class CpuMeter:
    """CPU used per named group of processes between ``start()`` and ``stop()``, in cores (1.0 = one core busy),
    and ``machine``: every process of the machine, ours and everyone else's."""

    def __init__(self, groups: Callable[[], dict[str, list[int]]]) -> None:
        self.groups = groups
        self.before: dict[int, float] = {}
        self.started = 0.0
        self.machine_before = 0.0

    def start(self) -> None:
        self.before = {pid: cpu_seconds(pid) for pids in self.groups().values() for pid in pids}
        self.machine_before = machine_busy_seconds()
        self.started = time.monotonic()

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.started
        used = {
            name: sum(cpu_seconds(pid) - self.before.get(pid, 0.0) for pid in pids) / elapsed
            for name, pids in self.groups().items()
        }
        return used | {"machine": (machine_busy_seconds() - self.machine_before) / elapsed}


@contextlib.contextmanager
def whole_system(
    work: Path,
    *,
    durable: bool = True,
    before_start: Callable[[dict[str, str]], None] | None = None,
    pg_settings: dict[str, str] | None = None,
) -> Iterator[BenchSystem]:
    """Start the servers and every process of ``PROCESSES``; ``before_start`` runs after the migrations (load
    history there); ``pg_settings``: PostgreSQL settings beyond infra/stack.py's. Everything is stopped by PID on
    the way out."""
    stack = stack_module()
    stack_dir = work / "stack"
    env = stack.start(stack_dir, durable=durable, pg_settings=pg_settings)
    env |= {
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "LOG_LEVEL": "WARNING",
        "INTAKE_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "DEADLINE_SCAN_INTERVAL_S": "15",
        "FAUST_DATA_DIR": str(work / "faust"),
    }
    local = LocalSystem(env, work / "logs")
    try:
        asyncio.run(prepare_all(env))
        key = asyncio.run(
            add_agency(env["DATABASE_URL"], "bench-e2e", "bench", Role.CHANNEL, "hotline_12345", rate=10**9)
        )
        if before_start is not None:
            before_start(env)
        for name in PROCESSES:
            local.start(name)
        local.wait_http("intake-api")
        local.wait_http("publicity-web")
        yield BenchSystem(env, local, stack_dir, key)
    finally:
        local.stop_all()
        stack.stop(stack_dir)
