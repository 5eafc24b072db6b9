"""The operator's `rectify outbox`, `rectify dlq list|redrive` and `rectify down`, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from services.cli.main import app
from services.cli.ops import record_up, stop_recorded
from services.common.inbox import Record, dead_letter
from tests.integration.conftest import migrated_pool

pytestmark = pytest.mark.integration


async def _fill(dsn: str) -> None:
    pool = await migrated_pool(dsn, "publicity")
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO outbox (topic, key, value, published_at) VALUES ('rectify.x.v1', 'k', 'v', now())"
            )
            poison = [(Record("rectify.public.cases.v1", 2, 41, b"RC-1", b"{not json"), "bad_json", "not JSON")]
            await dead_letter(conn, "publicity", poison)
    finally:
        await pool.close()


async def _redriven_row(dsn: str) -> asyncpg.Record:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchrow(
            "SELECT key, value, headers FROM publicity.outbox WHERE topic = 'rectify.public.cases.v1'"
        )
    finally:
        await conn.close()


def run(dsn: str, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"DATABASE_URL": dsn, "COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


def test_outbox_and_dead_letters_listed_and_redriven(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.common.settings import get_settings

    asyncio.run(_fill(dsn))
    monkeypatch.setenv("DATABASE_URL", dsn)
    get_settings.cache_clear()
    try:
        out = run(dsn, "outbox", "--service", "publicity")
        assert "rectify.deadletter.v1" in out and "rectify.x.v1" in out and "backlog in all: 1" in out
        listed = run(dsn, "dlq", "list")
        assert "rectify.public.cases.v1" in listed and "bad_json" in listed and "41" in listed
        assert "re-driven 1 dead letter(s): 1" in run(dsn, "dlq", "redrive", "--service", "publicity", "--all")
        assert "no dead letters" in run(dsn, "dlq", "list", "--service", "publicity")
        assert "bad_json" in run(dsn, "dlq", "list", "--all")
        row = asyncio.run(_redriven_row(dsn))
        assert (row["key"], bytes(row["value"])) == ("RC-1", b"{not json")
        assert "x-redriven-from-dead-letter" in row["headers"]
        assert "re-driven 0" in run(dsn, "dlq", "redrive", "--service", "publicity", "--id", "1")
    finally:
        get_settings.cache_clear()


def test_outbox_replay_marks_every_row_for_publishing_again(
    dsn: str, bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rectify outbox replay`: every published row of the service's outbox is marked unpublished again (no relay
    runs here, so they stay so)."""
    from services.common.settings import get_settings

    asyncio.run(_fill(dsn))
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
    get_settings.cache_clear()
    try:
        assert "backlog in all: 1" in run(dsn, "outbox", "--service", "publicity")
        out = run(dsn, "outbox", "replay", "--service", "publicity")
        assert "publicity" in out and "1" in out
        assert "backlog in all: 2" in run(dsn, "outbox", "--service", "publicity")
    finally:
        get_settings.cache_clear()


def test_redrive_needs_an_id_or_all() -> None:
    result = CliRunner().invoke(app, ["dlq", "redrive", "--service", "publicity"])
    assert result.exit_code == 2


def test_down_stops_exactly_the_recorded_pids(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = record_up(tmp_path, {"intake-api": sleeper.pid}, None, 0)
        assert stop_recorded(path) == [f"intake-api ({sleeper.pid})"]
        assert sleeper.wait(5) is not None and not path.exists()
        time.sleep(0.1)
        assert bystander.poll() is None
    finally:
        for p in (sleeper, bystander):
            if p.poll() is None:
                os.kill(p.pid, 9)
                p.wait()
