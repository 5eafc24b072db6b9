"""What every end-to-end test module needs: the whole system, as real processes, on a database of its own."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.cli.local import LocalSystem, prepare_all, stack_module
from services.cli.processes import PROCESSES
from tests.conftest import fresh_database


@contextmanager
def running_system(servers: dict[str, str], logs: Path, *, own_broker: bool = True) -> Iterator[LocalSystem]:
    """Every process, started against a fresh database on the session's PostgreSQL and a broker of its own
    (``own_broker=False``: the broker of ``servers``, for a test that brought its own), stopped by PID afterwards.

    The broker is the system's own because topics and consumer groups are fixed names: on a shared broker a
    fresh system's workers would resume from (or, for a partition never committed, re-read) another system's
    commands, and its intake hands out the same case ids, so cases would collide across modules.
    """
    stack = stack_module()
    logs.mkdir(parents=True, exist_ok=True)
    broker = stack.start_broker(logs) if own_broker else None
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker['port']}" if broker else servers["KAFKA_BOOTSTRAP_SERVERS"],
        "DATABASE_URL": asyncio.run(fresh_database(servers["DATABASE_URL"])),
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "LOG_LEVEL": "INFO",
        "INTAKE_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "DEADLINE_SCAN_INTERVAL_S": "1",
    }
    local: LocalSystem | None = None
    try:
        asyncio.run(prepare_all(env))
        local = LocalSystem(env, logs)
        for name in PROCESSES:
            local.start(name)
        local.wait_http("intake-api")
        local.wait_http("publicity-web")
        yield local
    finally:
        if local is not None:
            local.stop_all()
        if broker is not None:
            stack.stop_pid(int(broker["pid"]))
