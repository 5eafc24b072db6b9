"""Real servers for the suite: a tansu broker and a throwaway PostgreSQL cluster, started once and
stopped by PID. When KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL are both set, those are used instead."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from services.cli.local import stack_module


@pytest.fixture(scope="session")
def servers() -> Iterator[dict[str, str]]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("DATABASE_URL"):
        yield {
            "KAFKA_BOOTSTRAP_SERVERS": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            "DATABASE_URL": os.environ["DATABASE_URL"],
        }
        return
    stack = stack_module()
    base = Path(tempfile.mkdtemp(prefix="rectify-test-stack-"))
    env = stack.start(base)
    try:
        yield env
    finally:
        stack.stop(base)


@pytest.fixture(scope="session")
def bootstrap(servers: dict[str, str]) -> str:
    return servers["KAFKA_BOOTSTRAP_SERVERS"]


async def fresh_database(admin_dsn: str) -> str:
    """A new empty database on the test server; returns its DSN."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return admin_dsn.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
async def dsn(servers: dict[str, str]) -> AsyncIterator[str]:
    yield await fresh_database(servers["DATABASE_URL"])
