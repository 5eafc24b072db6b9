import asyncpg
import pytest

from services.common.db import migrate
from tests.integration.conftest import SERVICES

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("schema", ["intake", "rectification", "scoring", "publicity"])
async def test_migrations_apply_once_into_the_service_schema(dsn: str, schema: str) -> None:
    first = await migrate(dsn, schema, SERVICES / schema / "migrations")
    assert first and first[0] == "common/001_outbox_inbox"
    assert await migrate(dsn, schema, SERVICES / schema / "migrations") == []
    conn = await asyncpg.connect(dsn)
    try:
        tables = {
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
            )
        }
        public = await conn.fetchval("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
    finally:
        await conn.close()
    assert {"outbox", "processed_messages", "dead_letters", "schema_migrations"} <= tables
    assert public == 0


async def test_services_do_not_share_tables(dsn: str) -> None:
    for schema in ("intake", "publicity"):
        await migrate(dsn, schema, SERVICES / schema / "migrations")
    conn = await asyncpg.connect(dsn)
    try:
        columns = {
            r["column_name"]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'publicity'"
            )
        }
    finally:
        await conn.close()
    assert not columns & {"name", "phone", "email", "complainant_ref", "description"}
