from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from services.common.db import create_pool, migrate

pytestmark = pytest.mark.integration
SERVICES = Path(__file__).resolve().parents[2] / "services"


async def migrated_pool(dsn: str, schema: str) -> asyncpg.Pool:
    await migrate(dsn, schema, SERVICES / schema / "migrations")
    return await create_pool(dsn, schema)


@pytest.fixture
async def rect_pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await migrated_pool(dsn, "rectification")
    yield pool
    await pool.close()


@pytest.fixture
async def intake_pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await migrated_pool(dsn, "intake")
    yield pool
    await pool.close()
