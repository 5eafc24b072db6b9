"""What every end-to-end test module needs: the whole system, as real processes, on a database of its own."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.cli.local import LocalSystem, prepare_all
from services.cli.processes import PROCESSES
from tests.conftest import fresh_database


@contextmanager
def running_system(servers: dict[str, str], logs: Path) -> Iterator[LocalSystem]:
    """Every process, started against a fresh database on the session's servers, stopped by PID afterwards."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": servers["KAFKA_BOOTSTRAP_SERVERS"],
        "DATABASE_URL": asyncio.run(fresh_database(servers["DATABASE_URL"])),
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "LOG_LEVEL": "INFO",
        "INTAKE_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "DEADLINE_SCAN_INTERVAL_S": "1",
    }
    asyncio.run(prepare_all(env))
    local = LocalSystem(env, logs)
    try:
        for name in PROCESSES:
            local.start(name)
        local.wait_http("intake-api")
        local.wait_http("publicity-web")
        yield local
    finally:
        local.stop_all()
